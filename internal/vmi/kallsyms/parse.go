package kallsyms

import (
	"errors"
	"fmt"
)

// searchBudget bounds the probes one Parse call may make. Parsing a real
// kernel takes well under a million; the bound keeps crafted input (many
// look-alike tables) from turning the search quadratic.
const searchBudget = 64 << 20

// ErrNotFound reports that no consistent kallsyms tables were found.
var ErrNotFound = errors.New("kallsyms: no kallsyms tables found")

// Parse finds and decodes the kallsyms tables in b, a kernel image or any
// other buffer that holds .rodata with its original alignment (offsets in b
// must be congruent to link-time addresses modulo 8). Layout offsets are
// relative to b.
func Parse(b []byte) (*Table, error) {
	bud := &budget{left: searchBudget}
	var (
		tables int
		result *Table
		err    error
	)
	findTokenTables(b, func(tt *tokenTable) bool {
		tables++
		var e error
		result, e = parseFrom(b, tt, bud)
		if err == nil {
			err = e // keep the first diagnostic
		}
		return result == nil && bud.left > 0
	})
	switch {
	case result != nil:
		return result, nil
	case tables == 0:
		return nil, fmt.Errorf("%w: no kallsyms_token_table (tokens \"0\"..\"9\" followed by a matching token index)", ErrNotFound)
	case bud.left <= 0:
		return nil, fmt.Errorf("%w: search budget exhausted after %d candidate token tables", ErrNotFound, tables)
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%w: %d candidate token tables, none with consistent names and markers", ErrNotFound, tables)
}

// namesAt is a verified kallsyms_names/markers pair.
type namesAt struct {
	names, namesEnd int
	markers, w      int
	n               int
	seqs            int // -1 when absent
}

// parseFrom finds everything else around a verified token table.
func parseFrom(b []byte, tt *tokenTable, bud *budget) (*Table, error) {
	na, ok := findNames(b, tt.start, bud)
	if !ok {
		return nil, nil
	}
	n := na.n
	if na.seqs >= 0 && !seqsValid(b, na.seqs, n) {
		return nil, nil
	}
	idxEnd := tt.index + 2*256
	numField := na.names - 8
	cands := []addrCandidate{
		// Up to 6.3: offsets, relative_base, num_syms, names...
		{arr: numField - 8 - alignUp(4*n, 8), base: numField - 8},
		// 6.4+: ... token_index, offsets, relative_base, seqs_of_names.
		{arr: alignUp(idxEnd-tt.start, 8) + tt.start, reordered: true},
		// Without CONFIG_KALLSYMS_BASE_RELATIVE: u64 addresses.
		{arr: numField - 8*n, base: -1},
		{arr: alignUp(idxEnd-tt.start, 8) + tt.start, base: -1, reordered: true},
	}
	cands[1].base = cands[1].arr + alignUp(4*n, 8)
	for _, c := range cands {
		if !bud.spend(n) {
			return nil, nil
		}
		addrs, mode, base, ok := readAddresses(b, c, n)
		if !ok {
			continue
		}
		syms, err := decodeNames(b, na.names, n, tt)
		if err != nil {
			return nil, err
		}
		for i := range syms {
			syms[i].Addr = addrs[i]
		}
		l := Layout{
			NumSyms: n, MarkerSize: na.w, Mode: mode, Reordered: c.reordered, RelativeBase: base,
			TokenTable:   Region{Off: int64(tt.start), Size: int64(tt.end - tt.start)},
			TokenIndex:   Region{Off: int64(tt.index), Size: 512},
			Markers:      Region{Off: int64(na.markers), Size: int64(na.w * ((n + 255) / 256))},
			Names:        Region{Off: int64(na.names), Size: int64(na.namesEnd - na.names)},
			NumSymsField: Region{Off: int64(numField), Size: 8},
		}
		if mode == ModeAbsolute {
			l.Addresses = Region{Off: int64(c.arr), Size: int64(8 * n)}
		} else {
			l.Addresses = Region{Off: int64(c.arr), Size: int64(4 * n)}
			l.BaseField = Region{Off: int64(c.base), Size: 8}
		}
		if na.seqs >= 0 {
			l.SeqsOfNames = Region{Off: int64(na.seqs), Size: int64(3 * n)}
		}
		return newTable(syms, l), nil
	}
	return nil, fmt.Errorf("kallsyms: token table at %#x and %d names at %#x, but no sorted address table next to them", tt.start, n, na.names)
}

// findNames locates kallsyms_markers and kallsyms_names below the token table
// at t. The markers either end right before it (up to 6.1, and 6.4+) or are
// followed by kallsyms_seqs_of_names, 3 bytes per symbol (6.2-6.3 and
// backports such as Debian's 6.1). Every array is 8-aligned, so for a given
// symbol count the markers' position is fixed; each position is checked
// cheaply (zero padding, increasing markers) before the names are walked.
func findNames(b []byte, t int, bud *budget) (namesAt, bool) {
	// Without seqs_of_names: try each marker count.
	for groups := 1; groups <= (MaxSymbols+255)/256; groups++ {
		if !bud.spend(1) {
			return namesAt{}, false
		}
		if t-alignUp(4*groups, 8) < 0 {
			break
		}
		for _, w := range []int{4, 8} {
			m := t - alignUp(w*groups, 8)
			if m < 0 || !zeros(b, m+w*groups, t) || !markersValid(b, m, w, groups) {
				continue
			}
			lo, hi := 256*(groups-1)+1, 256*groups
			if na, ok := namesBefore(b, m, w, groups, lo, hi, bud); ok {
				na.seqs = -1
				return na, true
			}
		}
	}
	// With seqs_of_names: the symbol count fixes everything.
	for n := 1; n <= MaxSymbols; n++ {
		if !bud.spend(1) {
			return namesAt{}, false
		}
		s := t - alignUp(3*n, 8)
		if s < 0 {
			break
		}
		if !zeros(b, s+3*n, t) {
			continue
		}
		groups := (n + 255) / 256
		for _, w := range []int{4, 8} {
			m := s - alignUp(w*groups, 8)
			if m < 0 || !zeros(b, m+w*groups, s) || !markersValid(b, m, w, groups) {
				continue
			}
			if na, ok := namesBefore(b, m, w, groups, n, n, bud); ok {
				na.seqs = s
				return na, true
			}
		}
	}
	return namesAt{}, false
}

// namesBefore looks for the start of kallsyms_names ending at the markers m:
// an 8-aligned position preceded by kallsyms_num_syms (a u32 in [lo, hi],
// zero-padded to 8 bytes) from which the names walk exactly to m.
func namesBefore(b []byte, m, w, groups, lo, hi int, bud *budget) (namesAt, bool) {
	last, _ := markerAt(b, m, w, groups-1)
	// The last group holds at most 256 entries of at most 2+maxNameTokens
	// bytes, so the names start within this window below m.
	top := m - int(last) - 2
	bottom := max(8, top-256*(2+maxNameTokens))
	// kallsyms_names is 8-aligned like the markers: keep s congruent to m.
	for s := m - alignUp(m-top, 8); s >= bottom; s -= 8 {
		if !bud.spend(1) {
			return namesAt{}, false
		}
		v, _ := u32At(b, s-8)
		hiWord, _ := u32At(b, s-4)
		n := int(v)
		if hiWord != 0 || n < lo || n > hi {
			continue
		}
		if end, ok := walkNames(b, s, n, m, w, bud); ok {
			return namesAt{names: s, namesEnd: end, markers: m, w: w, n: n}, true
		}
	}
	return namesAt{}, false
}

// seqsValid checks kallsyms_seqs_of_names: big-endian 24-bit symbol indexes,
// each below n.
func seqsValid(b []byte, s, n int) bool {
	if s < 0 || s > len(b)-3*n {
		return false
	}
	for i := range n {
		p := s + 3*i
		if int(b[p])<<16|int(b[p+1])<<8|int(b[p+2]) >= n {
			return false
		}
	}
	return true
}
