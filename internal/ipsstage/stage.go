// Package ipsstage runs the IPS detection engine (internal/ips/engine)
// inline in the virtual switch: a netsw.Stage installed with
// (*netsw.Switch).SetInspectStages that inspects every IP packet the
// firewall admitted between ports of an inspected network and, in block
// mode, drops what drop and reject rules match before the receiver gets it.
//
// Detection is sharded: each shard has its own engine.Detector behind a
// mutex, and a packet goes to the shard a symmetric hash of its 5-tuple
// picks, so both directions of a flow meet in one Detector (TCP
// reassembly sees both sides). A shard with too many goroutines waiting is
// overloaded: its packets pass uninspected (fail-open) or are dropped
// (fail-closed), per network. Alerts become Events, handed to a sink by
// one goroutine of the stage behind a bounded queue, never on the data
// path.
package ipsstage

import (
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Options configures a Stage. Zero fields take the defaults.
type Options struct {
	Log *slog.Logger
	// Sink receives every event, from one delivery goroutine owned by the
	// stage, never on the data path; a queue of 4,096 events is in
	// between, and events beyond it are dropped (counted queue_dropped,
	// logged at most once a second). nil: events are not built.
	Sink func(*Event)
	// Shards is the number of Detectors. Default 2×GOMAXPROCS.
	Shards int
	// Detector bounds each shard's Detector (flows, stream memory, ...).
	Detector engine.Config
	// MaxWaiters is how many goroutines may wait for a shard before its
	// packets are overload (Overload). Default 8; negative: none may
	// wait, every contended packet is overload.
	MaxWaiters int
}

// DefaultMaxWaiters is Options.MaxWaiters's default.
const DefaultMaxWaiters = 8

// Stage is the IPS stage. Its methods are safe for concurrent use.
type Stage struct {
	opts       Options
	log        *slog.Logger
	maxWaiters int32
	shards     []shard

	eng atomic.Pointer[engineState] // nil: no rules
	pol atomic.Pointer[compiled]
	// base converts the switch clock (monotonic nanoseconds since the
	// switch started) to wall-clock Unix nanoseconds; set from the first
	// frame.
	base atomic.Int64

	mu       sync.Mutex // control plane: SetEngine, SetPolicy, counters
	counters map[string]*netCounters

	queue        chan *Event
	queueDropped atomic.Uint64
	stop, done   chan struct{}
	closeOnce    sync.Once

	queueLog, dropLog, overloadLog limiter
}

// engineState is a loaded rule set with its per-rule hit counters.
type engineState struct {
	e    *engine.Engine
	gen  uint64
	hits []atomic.Uint64
	last []atomic.Int64 // unix nanoseconds of the last hit
}

// shard is one Detector. mu guards the fields below it.
type shard struct {
	// waiting counts goroutines blocked on mu (the overload signal).
	waiting atomic.Int32
	mu      sync.Mutex
	det     *engine.Detector
	gen     uint64 // the engine generation det belongs to
	pkt     engine.Packet
	inner   engine.Packet // a GRE packet's inner packet
	recent  [recentFrames]recentFrame
	next    int
	_       [64]byte // keep shards' locks on separate cache lines
}

// recentFrames is how many group-addressed frames a shard remembers to
// inspect each once, whatever the number of ports it is flooded to.
const recentFrames = 4

// recentFrame is a group-addressed frame already inspected and its result.
type recentFrame struct {
	in    *netsw.Port
	now   int64
	frame []byte
	v     engine.InlineVerdict
}

// New returns a stage with no rules and no inspected network: everything
// passes until SetEngine and SetPolicy.
func New(opts Options) *Stage {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Shards <= 0 {
		opts.Shards = 2 * runtime.GOMAXPROCS(0)
	}
	mw := int32(DefaultMaxWaiters)
	switch {
	case opts.MaxWaiters < 0:
		mw = 0
	case opts.MaxWaiters > 0:
		mw = int32(min(opts.MaxWaiters, 1<<20))
	}
	s := &Stage{opts: opts, log: opts.Log, maxWaiters: mw, shards: make([]shard, opts.Shards),
		counters: map[string]*netCounters{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.pol.Store(&compiled{})
	if opts.Sink != nil {
		s.queue = make(chan *Event, queueLen)
		go s.deliver()
	} else {
		close(s.done)
	}
	return s
}

// Name is the stage's name in the pipeline.
func (s *Stage) Name() string { return "ips" }

// Close stops event delivery (events still queued are discarded).
func (s *Stage) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
}

// SetEngine installs a compiled rule set (nil: no rules, everything passes
// uninspected, counted). Each shard gets a new Detector that carries the
// old one's flows (engine.AdoptFlows): an established connection still
// matches flow:established rules, a blocked one stays blocked; stream
// reassembly and rule state start afresh.
func (s *Stage) SetEngine(e *engine.Engine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e == nil {
		s.eng.Store(nil)
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			sh.det, sh.recent = nil, [recentFrames]recentFrame{}
			sh.mu.Unlock()
		}
		return
	}
	gen := uint64(1)
	if old := s.eng.Load(); old != nil {
		gen = old.gen + 1
	}
	n := len(e.Rules())
	es := &engineState{e: e, gen: gen, hits: make([]atomic.Uint64, n), last: make([]atomic.Int64, n)}
	// Detectors are built outside the shard locks (a Detector holds a
	// stamp per rule); then each shard swaps under its lock.
	dets := make([]*engine.Detector, len(s.shards))
	for i := range dets {
		dets[i] = engine.NewDetector(e, s.opts.Detector)
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if sh.det != nil {
			dets[i].AdoptFlows(sh.det)
		}
		sh.det, sh.gen, sh.recent = dets[i], gen, [recentFrames]recentFrame{}
		sh.mu.Unlock()
	}
	s.eng.Store(es)
}

// SetPolicy installs where inspection runs, after Validate.
func (s *Stage) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := &compiled{nets: map[string]*netEntry{}}
	for name, np := range p.Networks {
		c := s.counters[name]
		if c == nil {
			c = &netCounters{}
			s.counters[name] = c
		}
		cp.nets[name] = &netEntry{name: name, mode: np.Mode, failOpen: np.Overload == FailOpen, c: c}
	}
	if len(p.Groups) > 0 {
		cp.groups = make(map[string]Mode, len(p.Groups))
		for g, m := range p.Groups {
			cp.groups[g] = m
		}
	}
	s.pol.Store(cp)
	return nil
}

var pass = netsw.Verdict{}

// Process inspects c's frame (netsw.Stage). It runs on the sending port's
// reader goroutine, concurrently for different ports.
func (s *Stage) Process(c *netsw.FrameContext) netsw.Verdict {
	f := c.Frame
	if !f.IPValid {
		return pass // ARP and other non-IP frames
	}
	cp := s.pol.Load()
	if len(cp.nets) == 0 {
		return pass
	}
	ne := cp.nets[c.In.Network()]
	if ne == nil {
		return pass
	}
	mode := cp.modeFor(ne, c.In, c.Out)
	if mode == ModeOff {
		return pass
	}
	es := s.eng.Load()
	if es == nil {
		ne.c.uninspected.Add(1)
		return pass
	}
	sh := &s.shards[flowHash(&f.Tuple)%uint64(len(s.shards))]
	if !sh.mu.TryLock() {
		if sh.waiting.Add(1) > s.maxWaiters {
			sh.waiting.Add(-1)
			return s.overload(c, ne)
		}
		sh.mu.Lock()
		sh.waiting.Add(-1)
	}
	v, fresh, ok := s.inspectLocked(sh, es, c, ne, mode)
	sh.mu.Unlock()
	if !ok {
		ne.c.uninspected.Add(1)
		return pass
	}
	return s.verdict(c, ne, mode, v, fresh)
}

// inspectLocked runs the shard's Detector on c's frame, or finds the
// verdict of the same group-addressed frame inspected for an earlier
// destination (fresh false). ok is false when the shard has no Detector
// of the current rules (SetEngine is swapping them).
func (s *Stage) inspectLocked(sh *shard, es *engineState, c *netsw.FrameContext, ne *netEntry, mode Mode) (v engine.InlineVerdict, fresh, ok bool) {
	if sh.det == nil || sh.gen != es.gen {
		return v, false, false
	}
	group := c.Frame.Dst.IsMulticast()
	if group {
		for i := range sh.recent {
			r := &sh.recent[i]
			if r.in == c.In && r.now == c.Now && string(r.frame) == string(c.Raw) {
				return r.v, false, true
			}
		}
	}
	if engine.Decode(engine.LinkEthernet, c.Raw, &sh.pkt) != engine.DecodeOK {
		return v, false, false // the switch parsed it as IP; never happens
	}
	sh.pkt.Time = time.Unix(0, s.wallNanos(c.Now))
	alerts, v := sh.det.Inline(&sh.pkt, mode == ModeBlock)
	if v.Why != engine.InlineFlowBlocked {
		ne.c.packets.Add(1)
		ne.c.bytes.Add(uint64(len(c.Raw)))
	}
	if len(alerts) > 0 {
		s.alertsLocked(es, alerts, c, ne, mode, v)
	}
	// A GRE packet between VMs: what it carries is inspected too, with
	// its own flow, and the stricter verdict stands (a tunnel is no way
	// around the rules).
	if v.Action == engine.InlinePass {
		if ia, iv, ok := sh.det.InlineInner(&sh.pkt, &sh.inner, mode == ModeBlock); ok {
			if len(ia) > 0 {
				s.alertsLocked(es, ia, c, ne, mode, iv)
			}
			if iv.Action != engine.InlinePass {
				v = iv
			}
		}
	}
	if group {
		r := &sh.recent[sh.next]
		sh.next = (sh.next + 1) % recentFrames
		r.in, r.now, r.v = c.In, c.Now, v
		r.frame = append(r.frame[:0], c.Raw...)
	}
	return v, true, true
}

// alertsLocked counts a packet's alerts and queues their events.
func (s *Stage) alertsLocked(es *engineState, alerts []engine.Alert, c *netsw.FrameContext, ne *netEntry, mode Mode, v engine.InlineVerdict) {
	ne.c.alerts.Add(uint64(len(alerts)))
	now := time.Now().UnixNano()
	for i := range alerts {
		a := &alerts[i]
		if int(a.RuleIndex) < len(es.hits) {
			es.hits[a.RuleIndex].Add(1)
			es.last[a.RuleIndex].Store(now)
		}
		if s.queue == nil {
			continue
		}
		own := a.FlowID == v.FlowID
		blocked := own && mode == ModeBlock && v.Why == engine.InlineRule && v.Action != engine.InlinePass
		s.enqueue(newEvent(a, c, ne.name, mode, blocked, own))
	}
}

// verdict turns the engine's verdict into the stage's: in block mode a
// drop; in alert mode always a pass. fresh is false for a group-addressed
// frame's later destinations (already counted and answered).
func (s *Stage) verdict(c *netsw.FrameContext, ne *netEntry, mode Mode, v engine.InlineVerdict, fresh bool) netsw.Verdict {
	if v.Action == engine.InlinePass || mode != ModeBlock {
		return pass
	}
	ne.c.blockedPackets.Add(1)
	var r packet.Reason
	switch v.Why {
	case engine.InlineFlowBlocked:
		ne.c.flowBlockedDrops.Add(1)
		r = packet.IPSFlowBlocked
	case engine.InlineStream:
		ne.c.streamDrops.Add(1)
		r = packet.IPSStream
	default:
		r = packet.IPSDrop
		if fresh {
			ne.c.blockedFlows.Add(1)
			answered := v.Action == engine.InlineReject && c.RejectToSender(packet.ICMPv4PortUnreachable)
			s.logLimited(&s.dropLog, "ips: blocked a flow", "reason", r.String(), "sid", v.Rule.SID,
				"rev", v.Rule.Rev, "msg", v.Rule.Msg, "action", v.Rule.Action.String(), "rejected", answered,
				"network", ne.name, "src_vm", c.In.VM, "in_port", c.In.Name, "out_port", c.Out.Name,
				"proto", c.Frame.Tuple.Proto, "src", c.Frame.Tuple.Src, "src_port", c.Frame.Tuple.SrcPort,
				"dst", c.Frame.Tuple.Dst, "dst_port", c.Frame.Tuple.DstPort, "flow_id", v.FlowID)
		}
	}
	// Not Accounted: the switch counts the drop at the sender's port and
	// writes its rate-limited drop line (reason, VM, ports, addresses).
	return netsw.Verdict{Action: netsw.Drop, Reason: r}
}

// overload decides a packet its shard had no time for.
func (s *Stage) overload(c *netsw.FrameContext, ne *netEntry) netsw.Verdict {
	if ne.failOpen {
		ne.c.overloadPass.Add(1)
		s.logLimited(&s.overloadLog, "ips: overloaded, packet passed uninspected (fail-open)",
			"network", ne.name, "in_port", c.In.Name, "out_port", c.Out.Name,
			"overload_pass_total", ne.c.overloadPass.Load())
		return pass
	}
	// The switch logs the drop (reason ips_overload) at the sender's port.
	ne.c.overloadDrop.Add(1)
	return netsw.Verdict{Action: netsw.Drop, Reason: packet.IPSOverload}
}

// wallNanos converts a switch clock reading to Unix nanoseconds. The
// offset is taken once, from the first frame: the switch clock is
// monotonic, so packet times never jump when the wall clock is stepped.
func (s *Stage) wallNanos(now int64) int64 {
	b := s.base.Load()
	if b == 0 {
		b = time.Now().UnixNano() - now
		if !s.base.CompareAndSwap(0, b) {
			b = s.base.Load()
		}
	}
	return b + now
}

// flowHash hashes a 5-tuple so that both directions give the same value.
func flowHash(t *packet.Tuple) uint64 {
	a := mix(addrWord(t.Src) + uint64(t.SrcPort))
	b := mix(addrWord(t.Dst) + uint64(t.DstPort))
	return mix(a + b + uint64(t.Proto))
}

func addrWord(a netip.Addr) uint64 {
	b := a.As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return hi*0x9e3779b97f4a7c15 ^ lo
}

// mix is SplitMix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
