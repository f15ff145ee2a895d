package conntrack

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Shard sizing: small tables use one shard (exact global LRU, deterministic
// eviction); larger ones split into up to maxShards shards of at least
// minShardFlows flows, so that port goroutines rarely contend on one mutex.
const (
	maxShards     = 16
	minShardFlows = 4096
)

// LRU list classes. Only classEstablished is protected from eviction.
const (
	classOther = iota
	classEstablished
)

// Table is a bounded connection-tracking table. It is safe for concurrent
// use.
type Table struct {
	cfg     Config
	perPort sync.Map // int32 origin port -> *atomic.Int64 flows it holds
	seed    uint64   // per-table hash seed: a guest cannot aim flows at one shard
	mask    uint64
	shards  []shard
}

type shard struct {
	mu    sync.Mutex
	flows map[packet.Tuple]*Flow // both directions' tuples of each flow
	lru   [2]flowList            // indexed by class
	n     int                    // flows in the shard
	max   int
	stats Stats
	buf   []*Flow // Range's snapshot, reused

	_ [64]byte // keep neighbouring shards' mutexes off one cache line
}

// New returns an empty table.
func New(cfg Config) *Table {
	cfg = cfg.withDefaults()
	n := 1
	for n < maxShards && cfg.MaxFlows/(n*2) >= minShardFlows {
		n *= 2
	}
	t := &Table{cfg: cfg, seed: rand.Uint64(), mask: uint64(n - 1), shards: make([]shard, n)}
	for i := range t.shards {
		per := cfg.MaxFlows / n
		if i < cfg.MaxFlows%n {
			per++
		}
		// Maps grow on demand: a network's table costs memory for the flows
		// it has, not for the bound.
		t.shards[i] = shard{flows: make(map[packet.Tuple]*Flow), max: per}
	}
	return t
}

// Config returns the table's configuration with defaults filled in.
func (t *Table) Config() Config { return t.cfg }

// shardFor picks the shard of a tuple; a tuple and its reverse share one.
func (t *Table) shardFor(tp *packet.Tuple) *shard {
	if t.mask == 0 {
		return &t.shards[0]
	}
	h := endpointHash(tp.Src, tp.SrcPort, t.seed) ^ endpointHash(tp.Dst, tp.DstPort, t.seed)
	return &t.shards[mix(h^uint64(tp.Proto))&t.mask]
}

func endpointHash(a netip.Addr, port uint16, seed uint64) uint64 {
	b := a.As16()
	return mix(binary.LittleEndian.Uint64(b[:8])^seed) ^ mix(binary.LittleEndian.Uint64(b[8:])+uint64(port)<<1)
}

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Lookup finds the flow that f belongs to, in either direction, and advances
// its state machine. It returns:
//   - (nil, Original, OK) when there is no live flow: the caller consults
//     the firewall and calls Create;
//   - (fl, dir, OK) for a packet the flow accepts (its timeout refreshed);
//   - (fl, dir, CTInvalid) for a packet the flow's state refuses, and
//     (nil, Original, CTInvalid) for a frame that is not trackable (not IP,
//     or an ICMP error: use LookupRelated).
//
// Lookup on an existing flow does not allocate.
func (t *Table) Lookup(now int64, f *packet.Frame) (*Flow, Dir, packet.Reason) {
	if !f.IPValid || f.ICMPError {
		t.countInvalid(&f.Tuple)
		return nil, Original, packet.CTInvalid
	}
	s := t.shardFor(&f.Tuple)
	s.mu.Lock()
	defer s.mu.Unlock()
	fl, dir, r := t.lookupLocked(s, now, f)
	if r == packet.CTInvalid {
		s.stats.Invalid++
	}
	return fl, dir, r
}

func (t *Table) lookupLocked(s *shard, now int64, f *packet.Frame) (*Flow, Dir, packet.Reason) {
	fl := s.flows[f.Tuple]
	if fl == nil {
		return nil, Original, packet.OK
	}
	if fl.expires.Load() <= now {
		s.removeLocked(fl)
		s.stats.Expired++
		return nil, Original, packet.OK
	}
	dir := Original
	if f.Tuple != fl.Orig {
		dir = Reply
	}
	switch t.advanceLocked(s, fl, dir, now, f) {
	case stepInvalid:
		return fl, dir, packet.CTInvalid
	case stepReopen:
		s.removeLocked(fl)
		s.stats.Deleted++
		return nil, Original, packet.OK
	}
	return fl, dir, packet.OK
}

func (t *Table) countInvalid(tp *packet.Tuple) {
	s := t.shardFor(tp)
	s.mu.Lock()
	s.stats.Invalid++
	s.mu.Unlock()
}

// Create admits a new flow for f, a packet for which Lookup found no flow
// and the firewall allowed. gen is the policy generation that allowed it;
// origPort and replyPort are the caller's ids for the ports on the two ends.
//
// Only packets that can open a connection create one: a TCP SYN without
// ACK, FIN or RST ("tcp non-syn" otherwise), an ICMP echo request, or any
// UDP or other-protocol packet; anything else gives CTInvalid. When the
// shard is full Create makes room as the package documentation describes,
// or gives CTFull. If a flow for f already exists (two ports raced), Create
// advances it as Lookup would and returns it.
func (t *Table) Create(now int64, f *packet.Frame, gen uint64, origPort, replyPort int32) (*Flow, packet.Reason) {
	if !canCreate(f) {
		t.countInvalid(&f.Tuple)
		return nil, packet.CTInvalid
	}
	s := t.shardFor(&f.Tuple)
	s.mu.Lock()
	defer s.mu.Unlock()
	if fl, _, r := t.lookupLocked(s, now, f); fl != nil || r != packet.OK {
		if r == packet.CTInvalid {
			s.stats.Invalid++
		}
		return fl, r
	}
	quota, r := t.admitLocked(s, now, origPort)
	if r != packet.OK {
		return nil, r
	}
	fl := &Flow{Orig: f.Tuple, OrigPort: origPort, ReplyPort: replyPort, Created: now, moved: now, quota: quota}
	quota.Add(1)
	if isICMP(f.Tuple.Proto) {
		fl.ICMPType = f.ICMPType
	}
	fl.gen.Store(gen)
	fl.state.Store(uint32(StateNew))
	fl.expires.Store(now + int64(t.timeout(f.Tuple.Proto, StateNew)))
	s.flows[fl.Orig] = fl
	s.flows[fl.Orig.Reverse()] = fl // the same key when the tuple is its own reverse
	s.lru[classOther].pushBack(fl)
	s.n++
	s.stats.Created++
	return fl, packet.OK
}

// canCreate reports whether f may open a flow.
func canCreate(f *packet.Frame) bool {
	if !f.IPValid || f.ICMPError {
		return false
	}
	switch p := f.Tuple.Proto; {
	case p == packet.ProtoTCP:
		return f.TCPFlags&(packet.TCPSyn|packet.TCPAck|packet.TCPFin|packet.TCPRst) == packet.TCPSyn
	case isICMP(p):
		return isEchoRequest(p, f.ICMPType)
	}
	return true
}

// makeRoomLocked frees one slot, preferring expired flows, then the least
// recently used non-established flow. Established live flows are never
// evicted. It reports whether a slot was freed.
func (s *shard) makeRoomLocked(now int64) bool {
	for c := range s.lru {
		if h := s.lru[c].head; h != nil && h.expires.Load() <= now {
			s.removeLocked(h)
			s.stats.Expired++
			return true
		}
	}
	if h := s.lru[classOther].head; h != nil {
		s.removeLocked(h)
		s.stats.Evicted++
		return true
	}
	return false
}

// lruGranularity is how stale a flow's place in its LRU list may get. Moving
// a flow to the tail touches two or three other flows' cache lines; doing
// it at most once a second per flow keeps that off the per-packet path, and
// eviction only needs to know which flows have been idle for seconds.
const lruGranularity = int64(time.Second)

// touchLocked moves fl to the most recently used end of the list for its
// state, if its class changed or its place is older than lruGranularity.
func (s *shard) touchLocked(fl *Flow, now int64) {
	c := uint8(classOther)
	if fl.State() == StateEstablished {
		c = classEstablished
	}
	if c == fl.class && now-fl.moved < lruGranularity {
		return
	}
	s.lru[fl.class].remove(fl)
	fl.class, fl.moved = c, now
	s.lru[c].pushBack(fl)
}

// admitLocked makes room for one more flow of origPort: it evicts if the
// shard is full and checks the port's quota. It returns the port's counter.
func (t *Table) admitLocked(s *shard, now int64, origPort int32) (*atomic.Int64, packet.Reason) {
	if s.n >= s.max && !s.makeRoomLocked(now) {
		s.stats.FullDrops++
		return nil, packet.CTFull
	}
	quota := t.portCount(origPort)
	if quota.Load() >= int64(t.cfg.MaxFlowsPerPort) {
		s.stats.QuotaDrops++
		return nil, packet.CTQuota
	}
	return quota, packet.OK
}

// portCount returns the flow counter of an originating port.
func (t *Table) portCount(port int32) *atomic.Int64 {
	if c, ok := t.perPort.Load(port); ok {
		return c.(*atomic.Int64)
	}
	c, _ := t.perPort.LoadOrStore(port, new(atomic.Int64))
	return c.(*atomic.Int64)
}

func (s *shard) removeLocked(fl *Flow) {
	if fl.quota != nil {
		fl.quota.Add(-1)
	}
	delete(s.flows, fl.Orig)
	delete(s.flows, fl.Orig.Reverse())
	s.lru[fl.class].remove(fl)
	s.n--
	fl.removed.Store(true)
}

// FlowGen returns the policy generation fl was admitted or last re-checked
// under (the same as fl.Gen()).
func (t *Table) FlowGen(fl *Flow) uint64 { return fl.gen.Load() }

// SetFlowGen records that fl was re-checked against policy generation gen
// and is still allowed. It is an atomic store: concurrent re-checks of one
// flow by both of its ports are harmless.
func (t *Table) SetFlowGen(fl *Flow, gen uint64) { fl.gen.Store(gen) }

// Untracked reports whether f is a packet conntrack never tracks and the
// switch must judge by rules alone: ICMP and ICMPv6 messages that are
// neither echo nor errors (neighbour and router discovery, MLD, timestamp
// and the like). Create refuses them with CTInvalid.
func Untracked(f *packet.Frame) bool {
	return f.IPValid && isICMP(f.Tuple.Proto) && !f.ICMPError &&
		!isEchoRequest(f.Tuple.Proto, f.ICMPType) && !isEchoReply(f.Tuple.Proto, f.ICMPType)
}

// LookupRelated finds the flow that an ICMP error belongs to (RELATED):
// f.Inner is the quoted packet's tuple as the error's recipient sent it, so
// it must come from the error's destination. Either direction of the flow
// matches. It returns nil for frames that are not ICMP errors, errors whose
// quoted sender is not their recipient (forged errors aimed at someone
// else's flow) and errors for no live flow. It does not refresh the flow;
// expiry is judged against the last time a Lookup refreshed it, since no
// clock is passed.
func (t *Table) LookupRelated(f *packet.Frame) *Flow {
	if !f.IPValid || !f.ICMPError || !f.InnerValid || f.Inner.Src != f.Tuple.Dst {
		return nil
	}
	s := t.shardFor(&f.Inner)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flows[f.Inner]
}

// Delete removes the flow whose original-direction tuple is orig and
// reports whether there was one.
func (t *Table) Delete(orig packet.Tuple) bool {
	s := t.shardFor(&orig)
	s.mu.Lock()
	defer s.mu.Unlock()
	fl := s.flows[orig]
	if fl == nil || fl.Orig != orig {
		return false
	}
	s.removeLocked(fl)
	s.stats.Deleted++
	return true
}

// Expire removes every flow whose timeout has passed at now and returns how
// many it removed. The work is O(flows): each shard is locked in turn while
// its flows are walked (a few tens of microseconds for 4096 flows), so call
// it periodically (every few seconds) from a housekeeping goroutine, not per
// packet. Lookup and Create also remove expired flows they meet.
func (t *Table) Expire(now int64) int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for c := range s.lru {
			for fl := s.lru[c].head; fl != nil; {
				next := fl.next
				if fl.expires.Load() <= now {
					s.removeLocked(fl)
					s.stats.Expired++
					n++
				}
				fl = next
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of flows in the table.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// Stats returns the table's cumulative counters.
func (t *Table) Stats() Stats {
	var st Stats
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		st.add(&s.stats)
		s.mu.Unlock()
	}
	return st
}

// Range calls fn for each flow until fn returns false. It snapshots one
// shard at a time and calls fn with no lock held, so fn may call any Table
// method (Delete, typically, to cut flows a new policy denies). Flows
// created during Range may or may not be visited; flows removed before
// their turn are skipped. Expired flows not yet collected are visited: use
// Expires to tell.
func (t *Table) Range(fn func(*Flow) bool) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		buf := s.buf[:0]
		for c := range s.lru {
			for fl := s.lru[c].head; fl != nil; fl = fl.next {
				buf = append(buf, fl)
			}
		}
		s.buf = nil // owned by this call until it is done with it
		s.mu.Unlock()
		for _, fl := range buf {
			if !fl.Removed() && !fn(fl) {
				t.putBuf(s, buf)
				return
			}
		}
		t.putBuf(s, buf)
	}
}

// putBuf returns Range's snapshot slice for reuse, cleared so that it does
// not keep removed flows reachable.
func (t *Table) putBuf(s *shard, buf []*Flow) {
	clear(buf)
	s.mu.Lock()
	if s.buf == nil {
		s.buf = buf[:0]
	}
	s.mu.Unlock()
}
