package conntrack

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Defaults for Config fields left zero (or set negative).
const (
	DefaultMaxFlows = 65536
	// DefaultTCPSynTimeout bounds a half-open connection (SYN seen, handshake
	// not complete). Linux uses 120s for SYN_SENT; a shorter value frees
	// the non-established list sooner under a SYN flood.
	DefaultTCPSynTimeout = 30 * time.Second
	// DefaultTCPEstablishedTimeout is 3h: longer than the 2h idle time after
	// which Linux and Windows send their first TCP keepalive (so keepalives
	// keep idle connections alive), far shorter than Linux's 5 days so dead
	// connections leave a bounded table.
	DefaultTCPEstablishedTimeout = 3 * time.Hour
	// DefaultTCPClosingTimeout covers FIN_WAIT/CLOSE_WAIT/TIME_WAIT.
	DefaultTCPClosingTimeout = 60 * time.Second
	// DefaultTCPClosedTimeout keeps a reset flow so that retransmitted RSTs
	// still match it.
	DefaultTCPClosedTimeout = 10 * time.Second
	DefaultUDPTimeout       = 30 * time.Second
	// DefaultUDPStreamTimeout applies once a UDP flow has seen a reply.
	DefaultUDPStreamTimeout = 180 * time.Second
	DefaultICMPTimeout      = 30 * time.Second
)

// MaxMaxFlows caps Config.MaxFlows so that a configuration mistake cannot
// reserve gigabytes of maps.
const MaxMaxFlows = 1 << 22

// Config sets the table's bound and timeouts. Zero or negative values take
// the documented defaults.
type Config struct {
	MaxFlows int // at most MaxMaxFlows
	// MaxFlowsPerPort bounds the flows one originating port holds, so one
	// VM cannot fill its network's table with established flows. Default
	// MaxFlows/4.
	MaxFlowsPerPort       int
	TCPSynTimeout         time.Duration
	TCPEstablishedTimeout time.Duration
	TCPClosingTimeout     time.Duration
	TCPClosedTimeout      time.Duration
	UDPTimeout            time.Duration // UDP and other protocols before a reply
	UDPStreamTimeout      time.Duration // after a reply
	ICMPTimeout           time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxFlows <= 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	c.MaxFlows = min(c.MaxFlows, MaxMaxFlows)
	if c.MaxFlowsPerPort <= 0 {
		c.MaxFlowsPerPort = max(c.MaxFlows/4, 1)
	}
	c.MaxFlowsPerPort = min(c.MaxFlowsPerPort, c.MaxFlows)
	def(&c.TCPSynTimeout, DefaultTCPSynTimeout)
	def(&c.TCPEstablishedTimeout, DefaultTCPEstablishedTimeout)
	def(&c.TCPClosingTimeout, DefaultTCPClosingTimeout)
	def(&c.TCPClosedTimeout, DefaultTCPClosedTimeout)
	def(&c.UDPTimeout, DefaultUDPTimeout)
	def(&c.UDPStreamTimeout, DefaultUDPStreamTimeout)
	def(&c.ICMPTimeout, DefaultICMPTimeout)
	return c
}

// State is a flow's connection state.
type State uint8

// Flow states. See the package documentation for the transitions.
const (
	StateNew         State = iota // seen one way only (TCP: handshake not complete)
	StateEstablished              // seen both ways (TCP: handshake complete)
	StateClosing                  // TCP: a FIN was seen
	StateClosed                   // TCP: an RST was seen
)

var stateNames = [...]string{"new", "established", "closing", "closed"}

// String returns the state's lower-case name.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Dir is the direction of a packet relative to its flow.
type Dir uint8

// Directions.
const (
	Original Dir = iota // same direction as the packet that created the flow
	Reply               // the reverse direction
)

// String returns "original" or "reply".
func (d Dir) String() string {
	if d == Reply {
		return "reply"
	}
	return "original"
}

// Stats are cumulative table counters.
type Stats struct {
	Created    uint64 // flows created
	Deleted    uint64 // flows removed by Delete or by reuse of a closed tuple
	Expired    uint64 // flows removed after their timeout
	Evicted    uint64 // live non-established flows removed to make room
	FullDrops  uint64 // Create refused with CTFull
	QuotaDrops uint64 // Create refused with CTQuota
	Invalid    uint64 // packets refused with CTInvalid
}

func (s *Stats) add(o *Stats) {
	s.Created += o.Created
	s.Deleted += o.Deleted
	s.Expired += o.Expired
	s.Evicted += o.Evicted
	s.FullDrops += o.FullDrops
	s.QuotaDrops += o.QuotaDrops
	s.Invalid += o.Invalid
}

// Flow is one tracked connection. The exported fields never change after
// Create; the rest is read through methods. See the package documentation
// for ownership.
type Flow struct {
	Orig      packet.Tuple // the tuple of the packet that created the flow
	OrigPort  int32        // opaque port ids from the caller, for re-evaluation
	ReplyPort int32
	ICMPType  uint8 // ICMP type of the creating packet (echo request); 0 otherwise
	Created   int64 // creation time, ns

	state   atomic.Uint32 // State
	gen     atomic.Uint64
	expires atomic.Int64
	removed atomic.Bool
	quota   *atomic.Int64 // the originating port's flow count

	// Guarded by the owning shard's mu.
	tcp        uint8 // tcpSynAckSeen, tcpFinOrig, tcpFinReply
	class      uint8 // index of the LRU list holding the flow
	moved      int64 // when the flow last moved to its list's tail
	prev, next *Flow
}

// State returns the flow's current state.
func (f *Flow) State() State { return State(f.state.Load()) }

// Gen returns the policy generation under which the flow was admitted or
// last re-checked.
func (f *Flow) Gen() uint64 { return f.gen.Load() }

// Expires returns the time (ns) after which the flow is dead unless a
// packet refreshes it.
func (f *Flow) Expires() int64 { return f.expires.Load() }

// Removed reports whether the flow has left its table.
func (f *Flow) Removed() bool { return f.removed.Load() }

// flowList is an intrusive doubly linked LRU list: head is the least
// recently used flow.
type flowList struct {
	head, tail *Flow
}

func (l *flowList) pushBack(f *Flow) {
	f.prev, f.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = f
	} else {
		l.head = f
	}
	l.tail = f
}

func (l *flowList) remove(f *Flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		l.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		l.tail = f.prev
	}
	f.prev, f.next = nil, nil
}
