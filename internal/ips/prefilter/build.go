package prefilter

import (
	"bytes"
	"fmt"
	"slices"
)

// bytesPerState bounds the sparse part of the automaton per state: child
// offset, child class and target, failure link, output offset and
// dictionary link. Compile refuses pattern sets whose total length (an
// upper bound on the state count) times this exceeds Options.MaxBytes,
// before allocating anything in proportion to it.
const bytesPerState = 4 + 1 + 4 + 4 + 4 + 4

// Compile builds a Matcher for pats; a pattern's id is its index. Patterns
// may repeat (each id is reported). It fails, naming the pattern, on an
// empty or over-long pattern, and with ErrTooLarge when the set exceeds
// opts' bounds (nil: defaults).
func Compile(pats []Pattern, opts *Options) (*Matcher, error) {
	o := opts.withDefaults()
	if len(pats) > o.MaxPatterns {
		return nil, fmt.Errorf("%w: %d patterns, limit %d", ErrTooLarge, len(pats), o.MaxPatterns)
	}
	total := 0
	for i, p := range pats {
		if len(p.Bytes) == 0 {
			return nil, fmt.Errorf("prefilter: pattern %d is empty", i)
		}
		if len(p.Bytes) > MaxPatternLen {
			return nil, fmt.Errorf("prefilter: pattern %d is %d bytes, limit %d", i, len(p.Bytes), MaxPatternLen)
		}
		total += len(p.Bytes)
	}
	if (total+1)*bytesPerState > o.MaxBytes {
		return nil, fmt.Errorf("%w: %d pattern bytes need up to %d MiB, limit %d MiB",
			ErrTooLarge, total, (total+1)*bytesPerState>>20, o.MaxBytes>>20)
	}

	b := builder{pats: pats}
	b.foldAll(total)
	b.buildTrie()
	m := b.finish(o)
	if m.stats.Bytes > o.MaxBytes {
		return nil, fmt.Errorf("%w: automaton needs %d MiB, limit %d MiB", ErrTooLarge, m.stats.Bytes>>20, o.MaxBytes>>20)
	}
	return m, nil
}

// builder holds the construction state; it is dropped once the Matcher is
// built.
type builder struct {
	pats []Pattern
	// folded holds every pattern lower-cased; pattern i is
	// folded[off[i]:off[i+1]].
	folded []byte
	off    []uint32
	// class maps a folded byte to its column; byte values that no pattern
	// uses share column 0. Columns ascend with byte value, so a trie built
	// from byte-sorted patterns has class-sorted children.
	class  [256]uint8
	stride int

	// The construction trie, in insertion order: first and last child and
	// next sibling (0: none; the root, 0, is never a child), the class on
	// the edge into a node, and the node each pattern ends at.
	first, last, next []uint32
	label             []uint8
	patNode           []uint32
}

func (b *builder) foldAll(total int) {
	b.folded = make([]byte, 0, total)
	b.off = make([]uint32, len(b.pats)+1)
	var used [256]bool
	for i, p := range b.pats {
		for _, c := range p.Bytes {
			f := fold[c]
			used[f] = true
			b.folded = append(b.folded, f)
		}
		b.off[i+1] = uint32(len(b.folded))
	}
	n := 1
	for c := 0; c < 256; c++ {
		if used[c] {
			b.class[c] = uint8(n)
			n++
		}
	}
	// At most 230 folded byte values exist (upper-case letters never
	// occur), so n fits a uint8 column index.
	b.stride = n
}

func (b *builder) pat(i uint32) []byte { return b.folded[b.off[i]:b.off[i+1]] }

// buildTrie inserts the folded patterns in sorted order. A pattern then
// shares with the previous one exactly their common prefix, so the path of
// the previous pattern (a stack) gives the branching node without any
// child lookup, and every node's children are created in ascending order.
func (b *builder) buildTrie() {
	order := make([]uint32, len(b.pats))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return bytes.Compare(b.pat(x), b.pat(y)) })

	n := len(b.folded) + 1
	b.first = make([]uint32, 1, n)
	b.last = make([]uint32, 1, n)
	b.next = make([]uint32, 1, n)
	b.label = make([]uint8, 1, n)
	b.patNode = make([]uint32, len(b.pats))
	var path [MaxPatternLen + 1]uint32 // path[d]: node at depth d of prev
	var prev []byte
	for _, pi := range order {
		q := b.pat(pi)
		l := 0
		for l < len(q) && l < len(prev) && q[l] == prev[l] {
			l++
		}
		node := path[l]
		for d := l; d < len(q); d++ {
			c := uint32(len(b.first))
			b.first = append(b.first, 0)
			b.last = append(b.last, 0)
			b.next = append(b.next, 0)
			b.label = append(b.label, b.class[q[d]])
			if b.last[node] == 0 {
				b.first[node] = c
			} else {
				b.next[b.last[node]] = c
			}
			b.last[node] = c
			node = c
			path[d+1] = c
		}
		b.patNode[pi] = node
		prev = q
	}
}

// finish numbers the states breadth first, computes failure links, dense
// rows, output lists and dictionary links, and returns the Matcher.
func (b *builder) finish(o Options) *Matcher {
	n := len(b.first)
	// Breadth-first order: bfs[k] is the trie node numbered k. Children
	// of one state get consecutive numbers, and state k (k > 0) is the
	// k-th child entry overall, so child entry j leads to state j+1.
	bfs := make([]uint32, 1, n)
	num := make([]uint32, n)
	m := &Matcher{stride: b.stride}
	m.childOff = make([]uint32, n+1)
	m.childClass = make([]uint8, 0, n-1)
	m.depth = make([]uint8, n)
	for k := 0; k < n; k++ {
		m.childOff[k] = uint32(len(m.childClass))
		for c := b.first[bfs[k]]; c != 0; c = b.next[c] {
			num[c] = uint32(len(bfs))
			m.depth[len(bfs)] = m.depth[k] + 1
			bfs = append(bfs, c)
			m.childClass = append(m.childClass, b.label[c])
		}
	}
	m.childOff[n] = uint32(len(m.childClass))
	b.first, b.last, b.next = nil, nil, nil

	for c := 0; c < 256; c++ {
		m.class[c] = b.class[fold[c]]
	}
	rowBytes := b.stride * 4
	nd := o.DenseBytes / rowBytes
	nd = max(1, min(nd, n))
	m.nDense = uint32(nd)
	m.dense = make([]uint32, nd*b.stride)
	m.fail = make([]uint32, n)
	m.childTarget = make([]uint32, n-1)
	for j := range m.childTarget {
		m.childTarget[j] = uint32(j + 1)
	}

	// Failure links and dense rows in breadth-first order: a state's
	// failure target is shallower, so it is complete when needed.
	for s := 0; s < n; s++ {
		lo, hi := m.childOff[s], m.childOff[s+1]
		if s < nd {
			row := m.dense[s*b.stride : (s+1)*b.stride]
			if s != 0 {
				copy(row, m.dense[int(m.fail[s])*b.stride:int(m.fail[s]+1)*b.stride])
			}
			for j := lo; j < hi; j++ {
				row[m.childClass[j]] = j + 1
			}
		}
		for j := lo; j < hi; j++ {
			t := j + 1
			if s == 0 {
				m.fail[t] = 0
			} else {
				m.fail[t] = m.gotoID(m.fail[s], m.childClass[j])
			}
		}
	}

	// Outputs: patterns ending exactly at each state, in id order.
	m.outOff = make([]uint32, n+1)
	for _, node := range b.patNode {
		m.outOff[num[node]+1]++
	}
	for s := 0; s < n; s++ {
		m.outOff[s+1] += m.outOff[s]
	}
	m.outPat = make([]uint32, len(b.pats))
	fill := slices.Clone(m.outOff[:n])
	for p, node := range b.patNode {
		s := num[node]
		m.outPat[fill[s]] = uint32(p)
		fill[s]++
	}
	m.dict = make([]uint32, n)
	m.dict[0] = noState
	for s := 1; s < n; s++ {
		f := m.fail[s]
		if m.outOff[f] != m.outOff[f+1] {
			m.dict[s] = f
		} else {
			m.dict[s] = m.dict[f]
		}
	}

	// Turn every target into its code, flagged where some pattern ends.
	m.denseLimit = m.nDense * uint32(m.stride)
	flag := func(t uint32) uint32 {
		v := m.code(t)
		if m.outOff[t] != m.outOff[t+1] || m.dict[t] != noState {
			return v | matchBit
		}
		return v
	}
	for i, t := range m.dense {
		m.dense[i] = flag(t)
	}
	for j, t := range m.childTarget {
		m.childTarget[j] = flag(t)
	}

	m.patLen = make([]uint8, len(b.pats))
	m.exactOff = make([]uint32, len(b.pats))
	for i, p := range b.pats {
		m.patLen[i] = uint8(len(p.Bytes))
		m.maxLen = max(m.maxLen, m.patLen[i])
		m.exactOff[i] = noState
		if !p.Nocase && hasLetter(p.Bytes) {
			m.exactOff[i] = uint32(len(m.exact))
			m.exact = append(m.exact, p.Bytes...)
		}
	}
	m.exact = slices.Clip(m.exact)

	m.stats = Stats{
		Patterns:    len(b.pats),
		States:      n,
		DenseStates: nd,
		Classes:     b.stride,
		Bytes: 4*len(m.dense) + 4*len(m.childOff) + len(m.childClass) + 4*len(m.childTarget) +
			4*len(m.fail) + 4*len(m.outOff) + 4*len(m.outPat) + 4*len(m.dict) +
			len(m.patLen) + 4*len(m.exactOff) + len(m.exact) + len(m.depth) + 256,
		BuildBytes: len(b.folded) + 4*len(b.off) + 4*len(b.pats) + // folded copies, sort order
			(4*3+1)*n + 4*len(b.patNode) + // construction trie
			4*2*n + 4*n, // breadth-first order, numbering, output fill
	}
	return m
}

// gotoID is the resolved transition of state s on class c during the build,
// before targets become codes.
func (m *Matcher) gotoID(s uint32, c uint8) uint32 {
	for s >= m.nDense {
		lo, hi := m.childOff[s], m.childOff[s+1]
		for j := lo; j < hi; j++ {
			if m.childClass[j] == c {
				return j + 1 // child entry j leads to state j+1
			}
		}
		s = m.fail[s]
	}
	return m.dense[int(s)*m.stride+int(c)]
}
