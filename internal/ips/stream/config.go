package stream

import (
	"sync"
	"sync/atomic"
)

// Defaults for Config fields left zero (or set negative).
const (
	// DefaultDepth is Suricata's stream.reassembly.depth default: the
	// first MiB of each direction is inspected, the rest passes.
	DefaultDepth = 1 << 20
	// DefaultMaxBuffered bounds the bytes one direction holds: delivered
	// bytes the receiver has not acknowledged yet, plus the span of
	// out-of-order data up to the furthest byte buffered.
	DefaultMaxBuffered = 512 << 10
	// DefaultMaxRanges bounds the disjoint out-of-order ranges one
	// direction holds (each a hole before it): endless tiny segments
	// with holes between them stop here.
	DefaultMaxRanges = 128
	// DefaultMemcap is the default budget of a Pool, shared by all flows
	// (Suricata's suricata.yaml ships stream.reassembly.memcap 256mb).
	DefaultMemcap = 256 << 20
)

// Implementation limits, not configurable.
const (
	// maxSeqDistance is TCP's largest window (65535 << 14, about 1 GiB).
	// A segment further than this from the stream's position is outside
	// any window the receiver could have advertised.
	maxSeqDistance = 1 << 30
	// MaxMaxBuffered caps Config.MaxBuffered (it must stay far below
	// 2^31 so that sequence differences inside a buffer never wrap).
	MaxMaxBuffered = 64 << 20
	// MaxMaxRanges caps Config.MaxRanges: every segment walks the ranges.
	MaxMaxRanges = 4096
	// minBuffer is the smallest buffer taken from the allocator.
	minBuffer = 4 << 10
	// rangeBytes is what one range costs in the Pool's accounting.
	rangeBytes = 8
)

// Config bounds one connection's reassembly. The zero value takes every
// default.
type Config struct {
	// Depth is how many bytes of each direction (delivered data plus
	// gaps) are reassembled and handed to the consumer; after that the
	// direction is no longer buffered or compared, and its segments pass
	// uninspected. Default DefaultDepth.
	Depth int64
	// MaxBuffered bounds the bytes held per direction. Default
	// DefaultMaxBuffered, at most MaxMaxBuffered.
	MaxBuffered int
	// MaxRanges bounds the out-of-order ranges held per direction.
	// Default DefaultMaxRanges, at most MaxMaxRanges.
	MaxRanges int
}

func (c Config) withDefaults() Config {
	if c.Depth <= 0 {
		c.Depth = DefaultDepth
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = DefaultMaxBuffered
	}
	c.MaxBuffered = min(c.MaxBuffered, MaxMaxBuffered)
	if c.MaxRanges <= 0 {
		c.MaxRanges = DefaultMaxRanges
	}
	c.MaxRanges = min(c.MaxRanges, MaxMaxRanges)
	return c
}

// Pool is the memory budget (memcap) and the event counters shared by
// every Conn of an engine. It is safe for concurrent use; Conns on
// different goroutines may share one Pool.
//
// The budget counts the capacity of every buffer and range table a Conn
// holds. A Conn that needs more than the Pool has left refuses the
// segment with EventMemcap (see the package documentation); memory
// already held is never taken away from a flow.
type Pool struct {
	limit int64
	used  atomic.Int64
	peak  atomic.Int64

	counts [numEvents]atomic.Uint64
}

// NewPool returns a Pool holding at most memcap bytes; memcap <= 0 takes
// DefaultMemcap.
func NewPool(memcap int64) *Pool {
	if memcap <= 0 {
		memcap = DefaultMemcap
	}
	return &Pool{limit: memcap}
}

// reserve takes n bytes from the budget, or reports false and takes
// nothing. Concurrent reservations may fail together near the limit, but
// the sum held never exceeds it.
func (p *Pool) reserve(n int64) bool {
	if n <= 0 {
		return true
	}
	u := p.used.Add(n)
	if u > p.limit {
		p.used.Add(-n)
		return false
	}
	for {
		pk := p.peak.Load()
		if u <= pk || p.peak.CompareAndSwap(pk, u) {
			return true
		}
	}
}

func (p *Pool) release(n int64) {
	if n > 0 {
		p.used.Add(-n)
	}
}

// Memcap returns the Pool's budget in bytes.
func (p *Pool) Memcap() int64 { return p.limit }

// InUse returns the bytes held now by all Conns of the Pool.
func (p *Pool) InUse() int64 { return p.used.Load() }

// Peak returns the most bytes ever held at once.
func (p *Pool) Peak() int64 { return p.peak.Load() }

// Count returns how many times event e was raised by the Pool's Conns.
func (p *Pool) Count(e Event) uint64 {
	if int(e) >= numEvents {
		return 0
	}
	return p.counts[e].Load()
}

// Counts returns every event counter by name (see Event.String), zeros
// included, for metrics.
func (p *Pool) Counts() map[string]uint64 {
	m := make(map[string]uint64, numEvents)
	for e := Event(0); int(e) < numEvents; e++ {
		m[e.String()] = p.counts[e].Load()
	}
	return m
}

func (p *Pool) count(ev Events) {
	for e := Event(0); ev != 0; e++ {
		if ev&(1<<e) != 0 {
			p.counts[e].Add(1)
			ev &^= 1 << e
		}
	}
}

// buffer is one direction's byte store. It is pooled by capacity class so
// that a flow whose buffer empties (everything acknowledged) gives the
// memory back to the budget without the next segment allocating.
type buffer struct{ b []byte }

// bufferPools[i] holds buffers of capacity minBuffer<<i.
var bufferPools [16]sync.Pool

func bufferClass(n int) int {
	c := 0
	for minBuffer<<c < n {
		c++
	}
	return c
}

// getBuffer returns a buffer of capacity at least n (n <= MaxMaxBuffered),
// length 0.
func getBuffer(n int) *buffer {
	c := bufferClass(n)
	if v := bufferPools[c].Get(); v != nil {
		b := v.(*buffer)
		b.b = b.b[:0]
		return b
	}
	return &buffer{b: make([]byte, 0, minBuffer<<c)}
}

func putBuffer(b *buffer) {
	c := bufferClass(cap(b.b))
	if minBuffer<<c == cap(b.b) {
		bufferPools[c].Put(b)
	}
}
