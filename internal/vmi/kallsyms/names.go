package kallsyms

import (
	"fmt"
)

const (
	// MaxSymbols bounds kallsyms_num_syms. A distribution kernel has about
	// 100,000 symbols and an allyesconfig build under 1,000,000.
	MaxSymbols = 2_000_000
	// maxNameTokens bounds the compressed length of one name. Lengths of 128
	// or more are stored in two bytes (low 7 bits first, 0x80 flags the
	// second byte; "big" symbols, Linux 6.1+), so 0x3fff is the format's
	// maximum, but KSYM_NAME_LEN (512) is the real one.
	maxNameTokens = 512
	// maxNameLen bounds a decoded name including its type letter.
	maxNameLen = 1024
)

// nameLen reads the length prefix of the entry at pos: it returns the number
// of token bytes and the size of the prefix.
func nameLen(b []byte, pos int) (n, prefix int, ok bool) {
	if pos < 0 || pos >= len(b) {
		return 0, 0, false
	}
	n = int(b[pos])
	if n&0x80 == 0 {
		return n, 1, n > 0
	}
	if pos+1 >= len(b) {
		return 0, 0, false
	}
	n = n&0x7f | int(b[pos+1])<<7
	return n, 2, n >= 0x80 && n <= maxNameTokens
}

// walkNames checks that n entries starting at s end, after zero padding, at
// the markers array m (count entries of size w), and that every 256th entry
// starts where its marker says. It returns the end of the last entry.
func walkNames(b []byte, s, n, m, w int, bud *budget) (int, bool) {
	pos := s
	for i := range n {
		if !bud.spend(1) {
			return 0, false
		}
		if i%256 == 0 {
			mk, ok := markerAt(b, m, w, i/256)
			if !ok || mk != uint64(pos-s) {
				return 0, false
			}
		}
		l, p, ok := nameLen(b, pos)
		if !ok {
			return 0, false
		}
		pos += p + l
		if pos > m {
			return 0, false
		}
	}
	if m-pos >= 8 || !zeros(b, pos, m) {
		return 0, false
	}
	return pos, true
}

func markerAt(b []byte, m, w, i int) (uint64, bool) {
	if w == 4 {
		v, ok := u32At(b, m+4*i)
		return uint64(v), ok
	}
	return u64At(b, m+8*i)
}

// markersValid checks that count markers of size w at m start at 0 and
// strictly increase (every group of 256 names takes at least 256 bytes).
func markersValid(b []byte, m, w, count int) bool {
	prev, ok := markerAt(b, m, w, 0)
	if !ok || prev != 0 {
		return false
	}
	for i := 1; i < count; i++ {
		v, ok := markerAt(b, m, w, i)
		if !ok || v < prev+256*2 || v > prev+256*(2+maxNameTokens) {
			return false
		}
		prev = v
	}
	return true
}

// decodeNames expands the n entries at s with the token table.
func decodeNames(b []byte, s, n int, tt *tokenTable) ([]Symbol, error) {
	syms := make([]Symbol, n)
	buf := make([]byte, 0, maxNameLen)
	pos := s
	for i := range syms {
		l, p, ok := nameLen(b, pos)
		if !ok || pos+p+l > len(b) {
			return nil, fmt.Errorf("kallsyms: symbol %d: bad name entry at offset %#x", i, pos)
		}
		buf = buf[:0]
		for _, t := range b[pos+p : pos+p+l] {
			tok := tt.tokens[t]
			if len(buf)+len(tok) > maxNameLen {
				return nil, fmt.Errorf("kallsyms: symbol %d: name longer than %d bytes", i, maxNameLen)
			}
			buf = append(buf, tok...)
		}
		pos += p + l
		if len(buf) < 2 {
			return nil, fmt.Errorf("kallsyms: symbol %d: decoded entry %q has no type letter and name", i, buf)
		}
		// Kernel symbol names are plain ASCII identifiers (with '.' and '$'
		// from compilers). Anything else, control characters above all,
		// would end up in logs and alerts, so it is refused.
		if err := checkName(string(buf[1:]), buf[0]); err != nil {
			return nil, fmt.Errorf("kallsyms: symbol %d: %w", i, err)
		}
		syms[i] = Symbol{Type: buf[0], Name: string(buf[1:])}
	}
	return syms, nil
}

func isTypeLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
