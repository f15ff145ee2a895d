package engine

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// DefaultMaxRetries bounds how often one buffer's match chain may go back
// and retry an earlier content, pcre or byte_jump at a later position when
// a relative step after it failed (Suricata's backtracking). Suricata bounds
// the same work with its inspection recursion limit (3,000 by default); a
// buffer that exhausts the bound is treated as not matching and counted.
const DefaultMaxRetries = 3000

// matcher evaluates one buffer's ordered match list. It is not safe for
// concurrent use; a Detector holds one.
type matcher struct {
	// budget is what is left of the retries of the current buffer.
	budget int
	// exhausted counts buffers whose retries ran out.
	exhausted  uint64
	maxRetries int
	// tbuf holds a transformed buffer.
	tbuf []byte
}

// matchBuffer reports whether data satisfies bm (bsize, then every match
// in order). Transforms are applied first.
func (m *matcher) matchBuffer(bm *rules.BufferMatch, data []byte) bool {
	if len(bm.Transforms) > 0 {
		m.tbuf = applyTransforms(m.tbuf[:0], data, bm.Transforms)
		data = m.tbuf
	}
	if bm.Bsize != nil && !bm.Bsize.Match(uint64(len(data))) {
		return false
	}
	m.budget = m.maxRetries
	if m.budget <= 0 {
		m.budget = DefaultMaxRetries
	}
	ok := m.steps(bm.Matches, data, 0)
	if !ok && m.budget < 0 {
		m.exhausted++
	}
	return ok
}

// relative reports whether a match step is anchored to the detection
// pointer (the end of the previous match).
func relative(s *rules.Match) bool {
	switch s.Kind {
	case rules.MatchContent:
		return s.Content.Relative()
	case rules.MatchPCRE:
		return s.PCRE.Relative
	case rules.MatchByteTest:
		return s.ByteTest.Relative
	case rules.MatchByteJump:
		return s.ByteJump.Relative
	case rules.MatchIsDataAt:
		return s.IsDataAt.Relative
	}
	return false
}

// steps evaluates ms in order from detection pointer prev. A positive step
// that can match at several places (content, pcre) is retried at its next
// occurrence when the rest fails and the next step is relative (so its
// outcome depends on where this one matched); each retry costs one unit
// of the budget, and when the budget is gone the chain fails.
func (m *matcher) steps(ms []rules.Match, data []byte, prev int) bool {
	if len(ms) == 0 {
		return true
	}
	s := &ms[0]
	rest := ms[1:]
	retry := len(rest) > 0 && relative(&rest[0])
	switch s.Kind {
	case rules.MatchContent:
		c := s.Content
		lo, hi := contentWindow(c, prev, len(data))
		if c.Negated {
			if lo <= hi && findContent(c, data, lo, hi) >= 0 {
				return false
			}
			return m.steps(rest, data, prev)
		}
		for lo <= hi {
			at := findContent(c, data, lo, hi)
			if at < 0 {
				return false
			}
			if m.steps(rest, data, at+len(c.Pattern)) {
				return true
			}
			if !retry {
				return false
			}
			if m.budget--; m.budget < 0 {
				return false
			}
			lo = at + 1
		}
		return false
	case rules.MatchPCRE:
		p := s.PCRE
		start := 0
		if p.Relative {
			start = prev
		}
		if start > len(data) {
			return p.Negated && m.steps(rest, data, prev)
		}
		if p.Negated {
			if p.Re.Match(data[start:]) {
				return false
			}
			return m.steps(rest, data, prev)
		}
		for from := start; from <= len(data); {
			loc := p.Re.FindIndex(data[from:])
			if loc == nil {
				return false
			}
			if m.steps(rest, data, from+loc[1]) {
				return true
			}
			if !retry {
				return false
			}
			if m.budget--; m.budget < 0 {
				return false
			}
			// Retry from just after this match's start. A relative
			// pcre anchored with ^ cannot match again there; that is
			// Suricata's behaviour too.
			from += loc[0] + 1
		}
		return false
	case rules.MatchByteTest:
		if !byteTest(s.ByteTest, data, prev) {
			return false
		}
		return m.steps(rest, data, prev)
	case rules.MatchByteJump:
		to, ok := byteJump(s.ByteJump, data, prev)
		if !ok {
			return false
		}
		return m.steps(rest, data, to)
	case rules.MatchIsDataAt:
		d := s.IsDataAt
		var ok bool
		if d.Relative {
			// Suricata: relative isdataat:N holds when N bytes follow
			// the previous match (prev+N <= length).
			ok = int64(prev)+int64(d.Offset) <= int64(len(data))
		} else {
			ok = int64(d.Offset) < int64(len(data))
		}
		if ok == d.Negated {
			return false
		}
		return m.steps(rest, data, prev)
	}
	return false
}

// contentWindow returns the range of start positions [lo, hi] at which
// content c may begin in a buffer of n bytes, given the detection pointer
// prev; lo > hi when none.
func contentWindow(c *rules.Content, prev, n int) (lo, hi int) {
	plen := len(c.Pattern)
	end := n // the match must end at or before end
	if c.Relative() {
		start := int64(prev)
		if c.HasDistance {
			start += int64(c.Distance)
		}
		if c.HasWithin {
			e := start + int64(c.Within)
			if e < int64(end) {
				end = int(max(e, -1))
			}
		}
		lo = int(max(start, 0))
	} else {
		if c.HasOffset {
			lo = int(c.Offset)
		}
		if c.HasDepth {
			e := int64(lo) + int64(c.Depth)
			if c.HasOffset {
				e = int64(c.Offset) + int64(c.Depth)
			}
			if e < int64(end) {
				end = int(e)
			}
		}
		if c.StartsWith {
			lo, end = 0, min(end, plen)
		}
	}
	hi = end - plen
	if c.EndsWith {
		// The match must end at the buffer's end.
		if hi < n-plen || n-plen < lo {
			return 1, 0
		}
		return n - plen, n - plen
	}
	return lo, hi
}

// findContent returns the first start position in [lo, hi] where c's
// pattern occurs in data, or -1.
func findContent(c *rules.Content, data []byte, lo, hi int) int {
	plen := len(c.Pattern)
	if lo < 0 {
		lo = 0
	}
	if hi > len(data)-plen {
		hi = len(data) - plen
	}
	if lo > hi {
		return -1
	}
	win := data[lo : hi+plen]
	var i int
	if c.Nocase {
		i = indexFold(win, c.Pattern)
	} else {
		i = bytes.Index(win, c.Pattern)
	}
	if i < 0 {
		return -1
	}
	return lo + i
}

// lower folds ASCII letters only, as Suricata's nocase does.
var lower [256]byte

func init() {
	for i := range lower {
		c := byte(i)
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
}

// indexFold is bytes.Index with ASCII case folding. It scans for the
// pattern's first byte in both cases with IndexByte (vectorized), then
// compares the rest; linear in practice, at worst len(s)*len(p).
func indexFold(s, p []byte) int {
	if len(p) == 0 {
		return 0
	}
	f0 := lower[p[0]]
	u0 := f0
	if f0 >= 'a' && f0 <= 'z' {
		u0 = f0 - ('a' - 'A')
	}
	for i := 0; i+len(p) <= len(s); {
		j := indexEither(s[i:len(s)-len(p)+1], f0, u0)
		if j < 0 {
			return -1
		}
		i += j
		if equalFold(s[i+1:i+len(p)], p[1:]) {
			return i
		}
		i++
	}
	return -1
}

func indexEither(s []byte, a, b byte) int {
	if a == b {
		return bytes.IndexByte(s, a)
	}
	i := bytes.IndexByte(s, a)
	lim := s
	if i >= 0 {
		lim = s[:i]
	}
	if j := bytes.IndexByte(lim, b); j >= 0 {
		return j
	}
	return i
}

func equalFold(a, b []byte) bool {
	for i := range b {
		if lower[a[i]] != lower[b[i]] {
			return false
		}
	}
	return true
}

// readNumber reads byte_test/byte_jump's value at pos: n bytes as a binary
// integer, or as digits in base (n 0 with a string base: all leading
// digits, at most 20).
func readNumber(data []byte, pos, n int, endian rules.Endian, base rules.NumBase) (v uint64, used int, ok bool) {
	if pos < 0 || pos > len(data) {
		return 0, 0, false
	}
	if base == rules.NumBinary {
		if n < 1 || n > 8 || pos+n > len(data) {
			return 0, 0, false
		}
		var b [8]byte
		if endian == rules.EndianLittle {
			for i := 0; i < n; i++ {
				b[i] = data[pos+i]
			}
			return binary.LittleEndian.Uint64(b[:]), n, true
		}
		copy(b[8-n:], data[pos:pos+n])
		return binary.BigEndian.Uint64(b[:]), n, true
	}
	limit := n
	if n == 0 {
		limit = 20
	}
	if pos+limit > len(data) {
		if n != 0 {
			return 0, 0, false
		}
		limit = len(data) - pos
	}
	radix := uint64(10)
	switch base {
	case rules.NumHex:
		radix = 16
	case rules.NumOct:
		radix = 8
	}
	digits := 0
	for _, c := range data[pos : pos+limit] {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			d = uint64(c|0x20-'a') + 10
		default:
			d = 99
		}
		if d >= radix {
			break
		}
		hi, lo := bits.Mul64(v, radix)
		if hi != 0 || lo+d < lo {
			return 0, 0, false
		}
		v = lo + d
		digits++
	}
	if digits == 0 {
		return 0, 0, false
	}
	if n == 0 {
		return v, digits, true
	}
	return v, n, true
}

func applyMask(v uint64, mask uint32) uint64 {
	if mask == 0 {
		return v
	}
	v &= uint64(mask)
	return v >> bits.TrailingZeros32(mask)
}

func byteTest(t *rules.ByteTest, data []byte, prev int) bool {
	pos := int64(t.Offset)
	if t.Relative {
		pos += int64(prev)
	}
	if pos < 0 || pos > int64(len(data)) {
		return false
	}
	v, _, ok := readNumber(data, int(pos), int(t.NBytes), t.Endian, t.Base)
	if !ok {
		return false
	}
	v = applyMask(v, t.Bitmask)
	var r bool
	switch t.Op {
	case rules.ByteLT:
		r = v < t.Value
	case rules.ByteGT:
		r = v > t.Value
	case rules.ByteEQ:
		r = v == t.Value
	case rules.ByteLE:
		r = v <= t.Value
	case rules.ByteGE:
		r = v >= t.Value
	case rules.ByteAnd:
		r = v&t.Value != 0
	case rules.ByteXor:
		r = v^t.Value != 0
	}
	return r != t.Negated
}

// byteJump returns the new detection pointer, which must lie inside the
// buffer (its end included).
func byteJump(j *rules.ByteJump, data []byte, prev int) (int, bool) {
	pos := int64(j.Offset)
	if j.Relative {
		pos += int64(prev)
	}
	if pos < 0 || pos > int64(len(data)) {
		return 0, false
	}
	v, used, ok := readNumber(data, int(pos), int(j.NBytes), j.Endian, j.Base)
	if !ok {
		return 0, false
	}
	v = applyMask(v, j.Bitmask)
	if j.Multiplier > 1 {
		hi, lo := bits.Mul64(v, uint64(j.Multiplier))
		if hi != 0 {
			return 0, false
		}
		v = lo
	}
	if v > 1<<32 {
		return 0, false
	}
	if j.Align && v%4 != 0 {
		v += 4 - v%4
	}
	var to int64
	switch {
	case j.FromBeginning:
		to = int64(v)
	case j.FromEnd:
		to = int64(len(data)) + int64(v)
	default:
		to = pos + int64(used) + int64(v)
	}
	to += int64(j.PostOffset)
	if to < 0 || to > int64(len(data)) {
		return 0, false
	}
	return int(to), true
}

// applyTransforms appends data transformed by ts to dst.
func applyTransforms(dst, data []byte, ts []rules.Transform) []byte {
	cur := append(dst, data...)
	var tmp []byte
	for _, t := range ts {
		switch t {
		case rules.TransformToLower:
			for i, c := range cur {
				cur[i] = lower[c]
			}
		case rules.TransformToUpper:
			for i, c := range cur {
				if c >= 'a' && c <= 'z' {
					cur[i] = c - ('a' - 'A')
				}
			}
		case rules.TransformDotPrefix:
			cur = append(cur, 0)
			copy(cur[1:], cur)
			cur[0] = '.'
		case rules.TransformStripWhitespace, rules.TransformCompressWhitespace:
			tmp = tmp[:0]
			strip := t == rules.TransformStripWhitespace
			inSpace := false
			for _, c := range cur {
				if isSpace(c) {
					if !strip && !inSpace {
						tmp = append(tmp, ' ')
					}
					inSpace = true
					continue
				}
				inSpace = false
				tmp = append(tmp, c)
			}
			cur = append(cur[:0], tmp...)
		}
	}
	return cur
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
