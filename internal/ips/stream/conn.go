package stream

// Dir is a direction of the connection.
type Dir uint8

const (
	// ToServer is the originator's byte stream (conntrack's Original
	// direction, http1.ToServer).
	ToServer Dir = iota
	// ToClient is the responder's byte stream (conntrack's Reply).
	ToClient
)

// String returns "to_server" or "to_client".
func (d Dir) String() string {
	if d == ToServer {
		return "to_server"
	}
	return "to_client"
}

// Flags are TCP header flags, with the header's bit values, so the
// caller may pass the header byte as it is.
type Flags uint8

// TCP flags the reassembler reads; others are ignored.
const (
	FlagFIN Flags = 0x01
	FlagSYN Flags = 0x02
	FlagRST Flags = 0x04
	FlagACK Flags = 0x10
	FlagURG Flags = 0x20
)

// Segment is one TCP segment of a flow, as the guest sent it.
type Segment struct {
	Seq, Ack uint32
	Flags    Flags
	// Window is the header's window field, unscaled.
	Window uint16
	// WScale is the shift of the window-scale option of a SYN (0 when
	// the option is absent; that only makes the window check more
	// lenient). Read on SYN segments only.
	WScale uint8
	// Payload is not retained: Segment copies what it must keep.
	Payload []byte
}

// Consumer receives each direction's reassembled byte stream, in order.
// Its methods are called from inside Conn.Segment and must not call back
// into the Conn.
type Consumer interface {
	// Data hands over the next bytes of direction d. b is valid only
	// during the call.
	Data(d Dir, b []byte)
	// Gap says that the next n bytes of direction d will never come:
	// the receiver acknowledged bytes the reassembler never held.
	Gap(d Dir, n int64)
	// End says that direction d ended: its FIN was reached in order, or
	// the connection was reset. It is called at most once per direction.
	End(d Dir)
}

// ConsumerFuncs adapts functions to a Consumer; nil functions are
// skipped.
type ConsumerFuncs struct {
	OnData func(d Dir, b []byte)
	OnGap  func(d Dir, n int64)
	OnEnd  func(d Dir)
}

// Data calls OnData.
func (f ConsumerFuncs) Data(d Dir, b []byte) {
	if f.OnData != nil {
		f.OnData(d, b)
	}
}

// Gap calls OnGap.
func (f ConsumerFuncs) Gap(d Dir, n int64) {
	if f.OnGap != nil {
		f.OnGap(d, n)
	}
}

// End calls OnEnd.
func (f ConsumerFuncs) End(d Dir) {
	if f.OnEnd != nil {
		f.OnEnd(d)
	}
}

// half is one direction's state. Sequence numbers are absolute (they
// wrap); offsets into buf are differences from base, which the bounds
// keep far below 2^31.
type half struct {
	started   bool // SYN or first segment seen
	synSeen   bool
	finSeen   bool
	ended     bool // Consumer.End called
	depthDone bool // Config.Depth reached: nothing is held or compared
	ackSeen   bool // the peer acknowledged something of this direction
	edgeKnown bool // edge holds the receiver's advertised right edge
	wscale    uint8

	isn    uint32
	base   uint32 // first byte held: everything before it is acknowledged
	next   uint32 // next byte to deliver; [base, next) is delivered, held
	maxEnd uint32 // end of the furthest byte accepted
	finSeq uint32 // sequence number of the FIN (end of the data)
	ack    uint32 // the peer's highest ACK of this direction
	edge   uint32 // furthest right edge of the peer's receive window
	offset int64  // stream offset of next: bytes delivered plus gaps

	buf    *buffer // buf.b[head:] holds the bytes from base on
	head   int
	ranges []rng // out-of-order bytes beyond next: sorted, disjoint, not adjacent
}

// rng is a range [start, end) of buffered out-of-order bytes.
type rng struct{ start, end uint32 }

// before reports a < b in sequence space (RFC 793 modular comparison).
func before(a, b uint32) bool { return int32(a-b) < 0 }

func after(a, b uint32) bool { return int32(a-b) > 0 }

// Conn reassembles one TCP connection's two directions. It is not safe
// for concurrent use: a flow's segments are fed from one goroutine, in
// the order they cross the switch.
type Conn struct {
	cfg    Config
	pool   *Pool
	out    Consumer
	h      [2]half
	closed bool // reset by a valid RST, or Close called
	events Events
}

// New returns the reassembler of one connection; it delivers to out and
// takes its memory from pool (shared by all flows). cfg's zero fields
// take their defaults.
func New(cfg Config, pool *Pool, out Consumer) *Conn {
	return &Conn{cfg: cfg.withDefaults(), pool: pool, out: out}
}

// Events returns every event the connection raised so far.
func (c *Conn) Events() Events { return c.events }

// Offset returns how far direction d's stream has been delivered: data
// bytes plus gap bytes handed to the consumer.
func (c *Conn) Offset(d Dir) int64 { return c.h[d&1].offset }

// Buffered returns the bytes direction d holds: delivered bytes not yet
// acknowledged, and the span of out-of-order bytes after them.
func (c *Conn) Buffered(d Dir) int {
	h := &c.h[d&1]
	if h.buf == nil {
		return 0
	}
	return len(h.buf.b) - h.head
}

// Close gives the connection's memory back to the Pool, without calling
// the Consumer; call it when the flow is removed. Later segments are
// refused with EventDataAfterClose.
func (c *Conn) Close() {
	c.closed = true
	c.free(&c.h[0])
	c.free(&c.h[1])
}

// Segment processes one segment sent in direction d (its ACK and window
// describe the other direction). It delivers whatever became contiguous
// and reports the events raised; see Result.Drop for the inline verdict.
func (c *Conn) Segment(d Dir, seg Segment) Result {
	var r Result
	d &= 1
	switch {
	case c.closed:
		if len(seg.Payload) > 0 || seg.Flags&(FlagSYN|FlagFIN) != 0 {
			r.add(EventDataAfterClose)
		}
	case seg.Flags&FlagRST != 0:
		c.rst(d, seg, &r)
	default:
		c.segment(d, seg, &r)
	}
	if r.Events != 0 {
		c.events |= r.Events
		c.pool.count(r.Events)
	}
	return r
}

func (c *Conn) segment(d Dir, seg Segment, r *Result) {
	h := &c.h[d]
	seq := seg.Seq
	if seg.Flags&FlagURG != 0 && len(seg.Payload) > 0 {
		// A receiving socket without SO_OOBINLINE (the default) takes the
		// urgent byte out of the stream, so the application would read
		// bytes other than those inspected.
		r.add(EventUrgent)
		return
	}
	if seg.Flags&FlagSYN != 0 {
		switch {
		case !h.started:
			h.started, h.synSeen = true, true
			h.isn = seq
			h.base, h.next, h.maxEnd = seq+1, seq+1, seq+1
			h.wscale = min(seg.WScale, 14)
		case !h.synSeen || seq != h.isn:
			r.add(EventSynChanged)
			return
		}
		seq++ // data (TCP Fast Open) starts after the SYN
	} else if !h.started {
		c.pickup(h, seq)
		r.add(EventMidstream)
	}
	if !c.data(d, h, seq, seg, r) {
		return
	}
	if seg.Flags&FlagACK != 0 {
		c.ackPeer(d^1, seg, r)
	}
}

// pickup starts a direction whose SYN was never seen: at the peer's ACK
// if the peer already acknowledged some of it (then bytes between that
// ACK and seq are a hole still to come), else at seq. Bytes before the
// start are treated as acknowledged retransmissions and never inspected,
// which is why the event exists.
func (c *Conn) pickup(h *half, seq uint32) {
	start := seq
	if h.ackSeen && int64(int32(seq-h.ack)) < maxSeqDistance && !before(seq, h.ack) {
		start = h.ack
	}
	h.started = true
	h.base, h.next, h.maxEnd = start, start, start
}

// data checks the segment's position and FIN against the direction's
// state, then holds and delivers its payload. It reports false when the
// segment was refused.
func (c *Conn) data(d Dir, h *half, seq uint32, seg Segment, r *Result) bool {
	n := len(seg.Payload)
	fin := seg.Flags&FlagFIN != 0
	if n == 0 && !fin {
		return true
	}
	if int64(int32(seq-h.next)) > maxSeqDistance ||
		(n > 0 && h.edgeKnown && !before(seq, h.edge)) {
		r.add(EventOutsideWindow)
		return false
	}
	end := seq + uint32(n)
	if h.finSeen {
		if fin && end != h.finSeq {
			r.add(EventFinChanged)
			return false
		}
		if after(end, h.finSeq) {
			r.add(EventDataAfterFin)
			return false
		}
	} else if fin && (before(end, h.next) || before(end, h.maxEnd)) {
		r.add(EventFinChanged) // the FIN would cut bytes already accepted
		return false
	}
	if h.depthDone {
		// Not inspected any more; follow the in-order position only, so
		// that an RST is still judged as the receiver judges it.
		if !after(seq, h.next) && after(end, h.next) {
			h.next = end
		}
	} else if n > 0 && !c.place(d, h, seq, seg.Payload, r) {
		if r.Events&resourceEvents != 0 && after(end, h.maxEnd) {
			// Refused for want of room, not for its content: an engine
			// failing open lets it pass, and the receiver's ACK of it
			// must then become a gap rather than an unseen ACK.
			h.maxEnd = end
		}
		return false
	}
	if after(end, h.maxEnd) {
		h.maxEnd = end
	}
	if fin && !h.finSeen {
		h.finSeen, h.finSeq = true, end
	}
	c.checkEnd(d, h)
	return true
}

// checkEnd calls End once the direction's FIN is reached in order (or,
// past the depth, once it is seen).
func (c *Conn) checkEnd(d Dir, h *half) {
	if h.finSeen && !h.ended && (h.depthDone || h.next == h.finSeq) {
		h.ended = true
		c.out.End(d)
	}
}

// ackPeer applies the ACK and window of a segment to direction pd, whose
// bytes it acknowledges.
func (c *Conn) ackPeer(pd Dir, seg Segment, r *Result) {
	p, h := &c.h[pd], &c.h[pd^1]
	a := seg.Ack
	if !p.started {
		if !p.ackSeen || after(a, p.ack) {
			p.ack, p.ackSeen = a, true
		}
		return
	}
	limit := p.maxEnd
	if p.finSeen {
		limit = p.finSeq + 1
	}
	if after(a, limit) {
		r.add(EventAckUnseen)
		return
	}
	if p.synSeen && h.synSeen {
		// The window scale is known once both SYNs were seen; a SYN's
		// own window is never scaled.
		shift := h.wscale
		if seg.Flags&FlagSYN != 0 {
			shift = 0
		}
		e := a + uint32(seg.Window)<<shift
		if !p.edgeKnown || after(e, p.edge) {
			p.edge, p.edgeKnown = e, true
		}
	}
	if p.ackSeen && !after(a, p.ack) {
		return
	}
	p.ack, p.ackSeen = a, true
	upto := a // the last byte acknowledged, plus one
	if p.finSeen && a == p.finSeq+1 {
		upto = p.finSeq
	}
	if p.depthDone {
		if after(upto, p.next) {
			p.next = upto
		}
	} else {
		if after(upto, p.next) {
			c.forceTo(pd, p, upto, r)
		}
		if !p.depthDone && after(upto, p.base) {
			c.release(p, min(upto-p.base, p.next-p.base))
		}
	}
	c.checkEnd(pd, p)
}

// rst ends the connection if the RST is one the receiver would accept:
// its sequence number is exactly the next expected (RFC 5961, which
// current Linux, Windows and BSD stacks follow), or, from a direction
// that never sent anything, it acknowledges exactly what the peer sent
// (the answer to a refused SYN). Any other RST is refused, so that no
// receiver acts on an RST the reassembler ignored, and inspection goes on.
func (c *Conn) rst(d Dir, seg Segment, r *Result) {
	h, p := &c.h[d], &c.h[d^1]
	var valid bool
	if h.started {
		valid = seg.Seq == h.next || (h.finSeen && seg.Seq == h.finSeq+1)
	} else {
		valid = seg.Flags&FlagACK != 0 && p.started && seg.Ack == p.next
	}
	if !valid {
		r.add(EventRstInvalid)
		return
	}
	c.closed = true
	for i := range c.h {
		if x := &c.h[i]; x.started && !x.ended {
			x.ended = true
			c.out.End(Dir(i))
		}
	}
	c.free(&c.h[0])
	c.free(&c.h[1])
}
