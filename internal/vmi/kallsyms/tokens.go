package kallsyms

import (
	"bytes"
)

const (
	// maxTokenLen bounds one token. Real tokens are a few bytes (pairs of
	// pairs); the bound keeps the scan linear on hostile input.
	maxTokenLen = 256
	// maxTableCandidates bounds how many digit-pattern hits are examined.
	maxTableCandidates = 1024
)

// digitTokens is what tokens 0x30..0x39 look like: the digits themselves,
// because every kernel has symbols with digits, so those byte values are never
// reassigned to multi-character tokens.
var digitTokens = []byte("0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00")

// tokenTable is a verified kallsyms_token_table with its kallsyms_token_index.
type tokenTable struct {
	start, end int // table bytes [start, end)
	index      int // offset of kallsyms_token_index
	tokens     [256][]byte
}

// findTokenTables calls yield for each verified token table, in file order,
// until yield returns false.
func findTokenTables(b []byte, yield func(*tokenTable) bool) {
	from := 0
	for range maxTableCandidates {
		i := bytes.Index(b[from:], digitTokens)
		if i < 0 {
			return
		}
		d := from + i
		from = d + 1
		if tt := tokenTableAt(b, d); tt != nil {
			if !yield(tt) {
				return
			}
		}
	}
}

// tokenTableAt checks whether the digit tokens at d belong to a token table.
// The tokens after the digits are walked forward to the table's end; the
// u16 index that follows (after up to 7 bytes of alignment) then says where
// the table starts (index[0x30] is the offset of "0") and where every token
// begins, which is checked against the NUL terminators.
func tokenTableAt(b []byte, d int) *tokenTable {
	pos := d
	for range 256 - '0' {
		n := bytes.IndexByte(b[pos:min(len(b), pos+maxTokenLen+1)], 0)
		if n < 0 {
			return nil
		}
		pos += n + 1
	}
	end := pos
	for pad := 0; pad < 8; pad++ {
		idx := end + pad
		if !zeros(b, end, idx) {
			return nil
		}
		first, ok1 := u16At(b, idx)
		zero, ok2 := u16At(b, idx+2*'0')
		if !ok1 || !ok2 || first != 0 {
			continue
		}
		start := d - int(zero)
		if start < 0 || (idx-start)%8 != 0 {
			continue
		}
		if tt := verifyTokenIndex(b, start, end, idx); tt != nil {
			return tt
		}
	}
	return nil
}

func verifyTokenIndex(b []byte, start, end, idx int) *tokenTable {
	tt := &tokenTable{start: start, end: end, index: idx}
	want := start
	for i := range 256 {
		off, ok := u16At(b, idx+2*i)
		if !ok || start+int(off) != want {
			return nil
		}
		n := bytes.IndexByte(b[want:min(end, want+maxTokenLen+1)], 0)
		if n < 0 {
			return nil
		}
		tt.tokens[i] = b[want : want+n]
		want += n + 1
	}
	if want != end {
		return nil
	}
	return tt
}
