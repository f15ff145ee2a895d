package prefilter

import (
	"bytes"
	"errors"
	"fmt"
)

// Limits on what Compile accepts.
const (
	// MaxPatternLen is the longest pattern a Matcher indexes. Pattern
	// lengths are stored in one byte; Prefilter indexes the first
	// MaxPatternLen bytes of a longer fast pattern, which is still a
	// necessary condition for the rule.
	MaxPatternLen = 255
	// DefaultMaxPatterns bounds the pattern count (rules.DefaultMaxRules
	// is the same figure: at most one fast pattern per rule).
	DefaultMaxPatterns = 200_000
	// DefaultMaxBytes bounds the finished automaton's memory.
	DefaultMaxBytes = 256 << 20
	// DefaultDenseBytes is the memory given to one automaton's dense
	// transition rows; the states that do not fit are kept sparse. With
	// ET Open's payload and HTTP patterns, 32 MiB keeps about 92 % of a
	// scan's steps on dense rows (8 MiB: 74 %) and scans about 1.7 times
	// as fast as 8 MiB.
	DefaultDenseBytes = 32 << 20
)

// ErrTooLarge is returned (wrapped) when the patterns need more states or
// memory than Options allow.
var ErrTooLarge = errors.New("prefilter: pattern set too large")

// Pattern is one pattern to find. Bytes may hold any byte values.
type Pattern struct {
	Bytes []byte
	// Nocase matches ASCII letters in either case, as Suricata's nocase.
	Nocase bool
}

// Options bound Compile. The zero value (or nil) means the defaults.
type Options struct {
	MaxPatterns int // default DefaultMaxPatterns
	MaxBytes    int // default DefaultMaxBytes: finished automaton
	DenseBytes  int // default DefaultDenseBytes: dense rows, within MaxBytes
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxPatterns <= 0 {
		r.MaxPatterns = DefaultMaxPatterns
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = DefaultMaxBytes
	}
	if r.DenseBytes <= 0 {
		r.DenseBytes = DefaultDenseBytes
	}
	if r.DenseBytes > r.MaxBytes {
		r.DenseBytes = r.MaxBytes
	}
	return r
}

// Stats describes a built Matcher.
type Stats struct {
	Patterns    int // patterns given
	States      int // automaton states, root included
	DenseStates int // states with a dense transition row
	Classes     int // input byte classes (row width)
	// Bytes is the memory the finished automaton holds.
	Bytes int
	// BuildBytes is the peak memory the build held besides Bytes: the
	// folded pattern copies, the sort order and the construction trie.
	BuildBytes int
}

// matchBit flags, in a transition's target, a state at which at least one
// pattern ends (its own or along its failure chain).
const matchBit = 1 << 31

// noState ends an output chain.
const noState = ^uint32(0)

// Matcher finds many patterns in one pass. It is immutable once built and
// safe for concurrent use.
type Matcher struct {
	// class maps an input byte (folded) to its column.
	class  [256]uint8
	stride int
	nDense uint32
	// A scan carries a state as its code: dense state s is s*stride, the
	// offset of its row in dense (so the next code is one load, no
	// multiply), and sparse state s is denseLimit + s - nDense. Codes in
	// dense and childTarget carry matchBit.
	denseLimit uint32 // nDense * stride
	// dense holds nDense rows of stride codes.
	dense []uint32
	// childOff[s]..childOff[s+1] index the children of state s in
	// childClass (ascending) and childTarget (codes); only sparse states'
	// ranges are read by a scan.
	childOff    []uint32
	childClass  []uint8
	childTarget []uint32
	fail        []uint32
	// outOff[s]..outOff[s+1] index the patterns ending exactly at s in
	// outPat; dict[s] is the nearest state on s's failure chain with
	// patterns of its own, or noState.
	outOff []uint32
	outPat []uint32
	dict   []uint32
	// depth[s] is state s's depth (the length of the string it stands
	// for), at most MaxPatternLen.
	depth []uint8

	// Per pattern: length, and for case-sensitive patterns with a letter
	// (the only ones folding can confuse) the exact bytes in exact.
	patLen   []uint8
	maxLen   uint8
	exactOff []uint32 // noState: nothing to verify
	exact    []byte

	stats Stats
}

// fold is ASCII lower-casing, the only case folding Suricata's nocase does.
var fold = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] = byte(i) + 'a' - 'A'
		}
	}
	return t
}()

func hasLetter(p []byte) bool {
	for _, c := range p {
		if c|0x20 >= 'a' && c|0x20 <= 'z' {
			return true
		}
	}
	return false
}

// Stats returns figures about the automaton.
func (m *Matcher) Stats() Stats { return m.stats }

// Patterns returns the number of patterns the Matcher was built from; ids
// passed to callbacks are in [0, Patterns()).
func (m *Matcher) Patterns() int { return len(m.patLen) }

// code returns state s's code.
func (m *Matcher) code(s uint32) uint32 {
	if s < m.nDense {
		return s * uint32(m.stride)
	}
	return m.denseLimit + s - m.nDense
}

// state returns the state a code (without matchBit) stands for. Scans call
// it only where a pattern ends, so the division stays off the common path.
func (m *Matcher) state(v uint32) uint32 {
	if v < m.denseLimit {
		return v / uint32(m.stride)
	}
	return v - m.denseLimit + m.nDense
}

// stepSparse returns the code reached from the sparse state with code v on
// class c.
func (m *Matcher) stepSparse(v uint32, c uint8) uint32 {
	s := v - m.denseLimit + m.nDense
	for s >= m.nDense {
		lo, hi := m.childOff[s], m.childOff[s+1]
		for j := lo; j < hi; j++ {
			cc := m.childClass[j]
			if cc == c {
				return m.childTarget[j]
			}
			if cc > c {
				break
			}
		}
		// fail[s] has a smaller depth, hence a smaller breadth-first
		// number: the loop ends at a dense state.
		s = m.fail[s]
	}
	return m.dense[int(s)*m.stride+int(c)]
}

// verified reports whether pattern p, ending just before end in buf,
// matches exactly when it has to.
func (m *Matcher) verified(p uint32, buf []byte, end int) bool {
	off := m.exactOff[p]
	if off == noState {
		return true
	}
	n := int(m.patLen[p])
	return bytes.Equal(buf[end-n:end], m.exact[off:int(off)+n])
}

// Scan reports every occurrence of every pattern in buf, in order of end
// offset: fn gets the pattern's id (its index in Compile's slice) and the
// offset just past its last byte. Returning false from fn stops the scan.
// Overlapping occurrences are all reported, so the number of calls can
// reach len(buf) times the number of patterns that are suffixes of one
// another; use AppendSet where only the set of patterns matters.
func (m *Matcher) Scan(buf []byte, fn func(id, end int) bool) {
	var v uint32 // the root's code
	lim := m.denseLimit
	for i := 0; i < len(buf); i++ {
		c := m.class[buf[i]]
		if v < lim {
			v = m.dense[v+uint32(c)]
		} else {
			v = m.stepSparse(v, c)
		}
		if v&matchBit == 0 {
			continue
		}
		v &^= matchBit
		for x := m.state(v); x != noState; x = m.dict[x] {
			for _, p := range m.outPat[m.outOff[x]:m.outOff[x+1]] {
				if m.verified(p, buf, i+1) && !fn(int(p), i+1) {
					return
				}
			}
		}
	}
}

// interleaveMin is the buffer length from which AppendSet runs two
// automaton walks at once, over the two halves of the buffer. A walk is a
// chain of dependent loads (each state picks the next row), so one walk
// leaves the CPU waiting on memory; two independent chains overlap their
// latencies. The second walk starts at the middle from the root; the
// first goes on past the middle until it agrees with the second (see
// AppendSet), usually after a few bytes, so a full-size packet's stream
// window is walked in little more than half the steps.
const interleaveMin = 512

// AppendSet appends to dst the id of every pattern occurring in buf, each
// once, in no particular order, and returns the extended slice. sc carries
// the deduplication state between scans; it is grown on first use and then
// reused, so steady-state scans allocate nothing (dst with enough capacity
// provided).
func (m *Matcher) AppendSet(dst []int32, buf []byte, sc *Scratch) []int32 {
	sc.begin(len(m.patLen), len(m.dict))
	if len(buf) < interleaveMin {
		dst, _ = m.walk(dst, buf, 0, 0, sc)
		return dst
	}
	// Walk a covers [0, mid), walk b [mid, len(buf)) from the root.
	mid := len(buf) / 2
	gen := sc.gen
	lim := m.denseLimit
	var va, vb uint32 // the root's code
	a, b := buf[:mid], buf[mid:2*mid]
	for i := range a {
		ca, cb := m.class[a[i]], m.class[b[i]]
		if va < lim {
			va = m.dense[va+uint32(ca)]
		} else {
			va = m.stepSparse(va, ca)
		}
		if vb < lim {
			vb = m.dense[vb+uint32(cb)]
		} else {
			vb = m.stepSparse(vb, cb)
		}
		if (va|vb)&matchBit == 0 {
			continue
		}
		if va&matchBit != 0 {
			va &^= matchBit
			if s := m.state(va); sc.stateDone[s] != gen {
				dst = m.collect(dst, s, buf, i+1, sc)
			}
		}
		if vb&matchBit != 0 {
			vb &^= matchBit
			if s := m.state(vb); sc.stateDone[s] != gen {
				dst = m.collect(dst, s, buf, mid+i+1, sc)
			}
		}
	}
	dst, _ = m.walk(dst, buf, 2*mid, vb, sc)
	return m.walkToSync(dst, buf, mid, va, sc)
}

// walkToSync continues walk a, in code v at offset from (the middle),
// until it is in the state walk b, started there at the root, was in:
// at offset i, once a's state is no deeper than i-from, the string it
// stands for lies after the middle, and b, which read the same bytes from
// the middle, is in that state too. From there on b reported every match;
// before, a reports those that began before the middle (each such match
// keeps a's state deeper than the bytes since the middle). A match b
// found as well is deduplicated like any other. At most MaxPatternLen
// steps.
func (m *Matcher) walkToSync(dst []int32, buf []byte, from int, v uint32, sc *Scratch) []int32 {
	gen := sc.gen
	lim := m.denseLimit
	for i := from; i < len(buf); i++ {
		if int(m.depth[m.state(v)]) <= i-from {
			return dst
		}
		c := m.class[buf[i]]
		if v < lim {
			v = m.dense[v+uint32(c)]
		} else {
			v = m.stepSparse(v, c)
		}
		if v&matchBit == 0 {
			continue
		}
		v &^= matchBit
		if s := m.state(v); sc.stateDone[s] != gen {
			dst = m.collect(dst, s, buf, i+1, sc)
		}
	}
	return dst
}

// walk runs the automaton from code v over buf[from:], collecting matches
// into dst, and returns the extended dst and the final code.
func (m *Matcher) walk(dst []int32, buf []byte, from int, v uint32, sc *Scratch) ([]int32, uint32) {
	gen := sc.gen
	lim := m.denseLimit
	for i := from; i < len(buf); i++ {
		c := m.class[buf[i]]
		if v < lim {
			v = m.dense[v+uint32(c)]
		} else {
			v = m.stepSparse(v, c)
		}
		if v&matchBit == 0 {
			continue
		}
		v &^= matchBit
		if s := m.state(v); sc.stateDone[s] != gen {
			dst = m.collect(dst, s, buf, i+1, sc)
		}
	}
	return dst, v
}

// collect walks the output chain from s, appending patterns not yet seen.
// A state is marked done once every pattern it ends has been seen and the
// rest of its chain is done too, so a later visit skips the whole chain:
// each state's outputs are walked at most once per scan unless a
// case-sensitive pattern keeps failing its exact compare.
func (m *Matcher) collect(dst []int32, s uint32, buf []byte, end int, sc *Scratch) []int32 {
	gen := sc.gen
	// Walk the chain, remembering (in sc.chain) which states to consider
	// for marking, then mark from the tail back.
	sc.chain = sc.chain[:0]
	for x := s; x != noState && sc.stateDone[x] != gen; x = m.dict[x] {
		all := true
		for _, p := range m.outPat[m.outOff[x]:m.outOff[x+1]] {
			if sc.patSeen[p] == gen {
				continue
			}
			if !m.verified(p, buf, end) {
				all = false
				continue
			}
			sc.patSeen[p] = gen
			dst = append(dst, int32(p))
		}
		sc.chain = append(sc.chain, chainEntry{x, all})
	}
	for i := len(sc.chain) - 1; i >= 0; i-- {
		e := sc.chain[i]
		d := m.dict[e.state]
		if !e.all || (d != noState && sc.stateDone[d] != gen) {
			break
		}
		sc.stateDone[e.state] = gen
	}
	return dst
}

type chainEntry struct {
	state uint32
	all   bool
}

// Scratch is the per-goroutine state of deduplicating scans. The zero value
// is ready; one Scratch may serve several Matchers (it grows to the
// largest), but not two scans at once.
type Scratch struct {
	gen       uint32
	patSeen   []uint32
	stateDone []uint32
	chain     []chainEntry
	// ids and rules are Prefilter.Candidates' working and result slices.
	ids   []int32
	rules []int32
}

// begin starts a scan: a new generation makes every mark stale without
// clearing, except when the counter wraps.
func (sc *Scratch) begin(patterns, states int) {
	if len(sc.patSeen) < patterns {
		sc.patSeen = make([]uint32, patterns)
		sc.gen = 0
		clear(sc.stateDone)
	}
	if len(sc.stateDone) < states {
		sc.stateDone = make([]uint32, states)
		sc.gen = 0
		clear(sc.patSeen)
	}
	sc.gen++
	if sc.gen == 0 {
		clear(sc.patSeen)
		clear(sc.stateDone)
		sc.gen = 1
	}
}

// String summarises the automaton for logs.
func (s Stats) String() string {
	return fmt.Sprintf("%d patterns, %d states (%d dense), %d classes, %.1f MiB (build %.1f MiB more)",
		s.Patterns, s.States, s.DenseStates, s.Classes, float64(s.Bytes)/(1<<20), float64(s.BuildBytes)/(1<<20))
}
