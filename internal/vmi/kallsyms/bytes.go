package kallsyms

import "encoding/binary"

// Bounds-checked little-endian reads. Offsets come from untrusted data, so
// every access goes through these instead of slicing directly.

func u16At(b []byte, off int) (uint16, bool) {
	if off < 0 || off > len(b)-2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(b[off:]), true
}

func u32At(b []byte, off int) (uint32, bool) {
	if off < 0 || off > len(b)-4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[off:]), true
}

func u64At(b []byte, off int) (uint64, bool) {
	if off < 0 || off > len(b)-8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[off:]), true
}

// zeros reports whether b[from:to] exists and is all zero (alignment padding).
func zeros(b []byte, from, to int) bool {
	if from < 0 || to < from || to > len(b) {
		return false
	}
	for _, c := range b[from:to] {
		if c != 0 {
			return false
		}
	}
	return true
}

// alignUp rounds n up to a multiple of align (a power of two).
func alignUp(n, align int) int { return (n + align - 1) &^ (align - 1) }

// budget bounds the total work of a search over hostile input: every probe
// spends one unit, and the search gives up when the budget is gone.
type budget struct{ left int }

func (b *budget) spend(n int) bool {
	b.left -= n
	return b.left >= 0
}
