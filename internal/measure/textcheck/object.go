package textcheck

import (
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// Limits on what is read from an ELF file. The files are root-owned and
// trusted, but a bound turns a damaged file into an error, not an
// allocation of its claimed size.
const (
	maxDynamic    = 1 << 20  // PT_DYNAMIC
	maxRelocTable = 64 << 20 // one relocation table
	maxSymbolName = 256
)

// Dynamic tags debug/elf does not name.
const (
	dtRelrSz  = 35
	dtRelr    = 36
	dfTextrel = 0x4
)

// segment is a PT_LOAD program header.
type segment struct {
	off, filesz, vaddr uint64
	exec               bool
}

// span is a half-open range of file offsets.
type span struct{ off, end uint64 }

// symbol is a function (or other sized symbol) of an object.
type symbol struct {
	value, size uint64
	rank        int // binding: local 0, weak 1, global 2; ties prefer higher
	name        string
}

// object is what the check needs from one ELF file: its loadable segments,
// the code bytes the dynamic loader rewrites, and (loaded on first use) its
// symbols. It is derived from the file alone and shared between checks.
type object struct {
	size  int64
	segs  []segment
	masks []span // file ranges in executable segments that relocations write; sorted, disjoint
	// textrel is true when the object declares DT_TEXTREL (or DF_TEXTREL).
	textrel bool

	symMu  sync.Mutex
	symErr error
	syms   []symbol // sorted by value, then rank
	symSet bool
}

// parseObject reads r (size bytes) as a 64-bit ELF file.
func parseObject(r io.ReaderAt, size int64) (*object, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%v: only 64-bit ELF files are checked", f.Class)
	}
	o := &object{size: size}
	var dyn *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if p.Off > uint64(size) || p.Filesz > uint64(size)-p.Off {
				return nil, fmt.Errorf("PT_LOAD at %#x+%#x is past the end of the %d-byte file", p.Off, p.Filesz, size)
			}
			o.segs = append(o.segs, segment{off: p.Off, filesz: p.Filesz, vaddr: p.Vaddr, exec: p.Flags&elf.PF_X != 0})
		case elf.PT_DYNAMIC:
			dyn = p
		}
	}
	if dyn != nil {
		if err := o.readRelocations(f, r, dyn); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// fileOffset maps a virtual address to its file offset through the
// PT_LOAD segment holding it in the file; exec limits the search to
// executable segments.
func (o *object) fileOffset(vaddr uint64, exec bool) (uint64, bool) {
	for _, s := range o.segs {
		if (!exec || s.exec) && vaddr >= s.vaddr && vaddr-s.vaddr < s.filesz {
			return s.off + (vaddr - s.vaddr), true
		}
	}
	return 0, false
}

// vaddr maps a file offset to the virtual address it loads at, preferring
// an executable segment.
func (o *object) vaddr(off uint64) (uint64, bool) {
	for _, exec := range []bool{true, false} {
		for _, s := range o.segs {
			if (!exec || s.exec) && off >= s.off && off-s.off < s.filesz {
				return s.vaddr + (off - s.off), true
			}
		}
	}
	return 0, false
}

// execSpans are the file ranges of the executable segments.
func (o *object) execSpans() []span {
	var out []span
	for _, s := range o.segs {
		if s.exec && s.filesz > 0 {
			out = append(out, span{s.off, s.off + s.filesz})
		}
	}
	return out
}

// readRelocations finds, through the dynamic section the loader reads (not
// the section headers, which a loader ignores), every relocation whose
// target lies in an executable segment, and records those bytes as masks.
// Normal PIE and shared-library code has none: its relocations target the
// GOT and data. A DT_TEXTREL object has some, and their bytes legitimately
// differ from the file.
func (o *object) readRelocations(f *elf.File, r io.ReaderAt, dyn *elf.Prog) error {
	if dyn.Filesz > maxDynamic {
		return fmt.Errorf("PT_DYNAMIC of %d bytes (at most %d)", dyn.Filesz, maxDynamic)
	}
	d := make([]byte, dyn.Filesz)
	if _, err := dyn.ReadAt(d, 0); err != nil {
		return fmt.Errorf("PT_DYNAMIC: %w", err)
	}
	tags := map[elf.DynTag]uint64{}
	for ; len(d) >= 16; d = d[16:] {
		t := elf.DynTag(f.ByteOrder.Uint64(d))
		if t == elf.DT_NULL {
			break
		}
		tags[t] = f.ByteOrder.Uint64(d[8:])
		if t == elf.DT_TEXTREL {
			o.textrel = true
		}
	}
	if tags[elf.DT_FLAGS]&dfTextrel != 0 {
		o.textrel = true
	}
	pltEnt := uint64(24)
	if tags[elf.DT_PLTREL] == uint64(elf.DT_REL) {
		pltEnt = 16
	}
	tables := []struct {
		addr, size, ent uint64
		relr            bool
	}{
		{tags[elf.DT_RELA], tags[elf.DT_RELASZ], 24, false},
		{tags[elf.DT_REL], tags[elf.DT_RELSZ], 16, false},
		{tags[elf.DT_JMPREL], tags[elf.DT_PLTRELSZ], pltEnt, false},
		{tags[dtRelr], tags[dtRelrSz], 8, true},
	}
	var masks []span
	for _, t := range tables {
		if t.size == 0 {
			continue
		}
		raw, err := o.readTable(r, t.addr, t.size)
		if err != nil {
			return err
		}
		if t.relr {
			masks = o.relrMasks(f.ByteOrder, raw, masks)
			continue
		}
		for ; len(raw) >= int(t.ent); raw = raw[t.ent:] {
			off := f.ByteOrder.Uint64(raw)
			typ := uint32(f.ByteOrder.Uint64(raw[8:]))
			n := relocSize(f.Machine, typ)
			if n == 0 {
				continue
			}
			if fo, ok := o.fileOffset(off, true); ok {
				masks = append(masks, span{fo, fo + n})
			}
		}
	}
	o.masks = mergeSpans(masks)
	return nil
}

// readTable reads a relocation table given by its address and size.
func (o *object) readTable(r io.ReaderAt, addr, size uint64) ([]byte, error) {
	if size > maxRelocTable {
		return nil, fmt.Errorf("relocation table at %#x: %d bytes (at most %d)", addr, size, maxRelocTable)
	}
	off, ok := o.fileOffset(addr, false)
	if !ok {
		return nil, fmt.Errorf("relocation table at %#x is not in a loaded segment", addr)
	}
	raw := make([]byte, size)
	sr := io.NewSectionReader(r, int64(off), int64(size))
	if _, err := io.ReadFull(sr, raw); err != nil {
		return nil, fmt.Errorf("relocation table at %#x: %w", addr, err)
	}
	return raw, nil
}

// relrMasks decodes a DT_RELR table (each entry an address, or a bitmap of
// the 63 words after the last one) and masks the words that fall in code.
func (o *object) relrMasks(bo binary.ByteOrder, raw []byte, masks []span) []span {
	var where uint64
	add := func(a uint64) {
		if fo, ok := o.fileOffset(a, true); ok {
			masks = append(masks, span{fo, fo + 8})
		}
	}
	for ; len(raw) >= 8; raw = raw[8:] {
		e := bo.Uint64(raw)
		if e&1 == 0 {
			add(e)
			where = e + 8
			continue
		}
		for i := uint64(0); i < 63; i++ {
			if e>>(i+1)&1 != 0 {
				add(where + i*8)
			}
		}
		where += 63 * 8
	}
	return masks
}

// relocSize is the number of bytes a relocation of type typ writes. Types
// this table does not know are taken as 8 bytes, the widest x86-64 write,
// so an unknown relocation masks too much rather than reporting a false
// mismatch.
func relocSize(m elf.Machine, typ uint32) uint64 {
	if m != elf.EM_X86_64 {
		return 8
	}
	switch elf.R_X86_64(typ) {
	case elf.R_X86_64_NONE, elf.R_X86_64_COPY:
		return 0
	case elf.R_X86_64_8, elf.R_X86_64_PC8:
		return 1
	case elf.R_X86_64_16, elf.R_X86_64_PC16:
		return 2
	case elf.R_X86_64_32, elf.R_X86_64_32S, elf.R_X86_64_PC32, elf.R_X86_64_PLT32, elf.R_X86_64_GOTPCREL,
		elf.R_X86_64_TPOFF32, elf.R_X86_64_DTPOFF32, elf.R_X86_64_GOTTPOFF, elf.R_X86_64_TLSGD,
		elf.R_X86_64_TLSLD, elf.R_X86_64_GOT32, elf.R_X86_64_SIZE32, elf.R_X86_64_GOTPC32:
		return 4
	}
	return 8
}

// mergeSpans sorts spans and merges overlapping or touching ones.
func mergeSpans(s []span) []span {
	if len(s) == 0 {
		return nil
	}
	sort.Slice(s, func(i, j int) bool { return s[i].off < s[j].off })
	out := s[:1]
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if x.off <= last.end {
			last.end = max(last.end, x.end)
			continue
		}
		out = append(out, x)
	}
	return out
}

// symbolize names the function holding file offset off as "name+0xOFF",
// or "" when no sized symbol holds it. r is the object's file; the symbol
// table is read from it on the first call and kept.
func (o *object) symbolize(r io.ReaderAt, off uint64) string {
	va, ok := o.vaddr(off)
	if !ok {
		return ""
	}
	o.symMu.Lock()
	if !o.symSet {
		o.syms, o.symErr = loadSymbols(r)
		o.symSet = true
	}
	syms := o.syms
	o.symMu.Unlock()
	return lookupSymbol(syms, va)
}

// lookupSymbol finds the sized symbol holding va. syms is sorted by value
// then preference; among symbols starting at the same address (aliases)
// the last one, the most preferred, wins; a few earlier ones are tried for
// nested symbols.
func lookupSymbol(syms []symbol, va uint64) string {
	i := sort.Search(len(syms), func(i int) bool { return syms[i].value > va })
	for j := i - 1; j >= 0 && j >= i-64; j-- {
		s := syms[j]
		if va-s.value < s.size {
			return fmt.Sprintf("%s+%#x", s.name, va-s.value)
		}
	}
	return ""
}

// loadSymbols reads the static symbol table, or the dynamic one when the
// file is stripped.
func loadSymbols(r io.ReaderAt) ([]symbol, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	es, err := f.Symbols()
	if err != nil || len(es) == 0 {
		// A Go binary linked with -s (test binaries are) keeps its
		// function table in .gopclntab, which the runtime needs.
		if out, err := goSymbols(f); err == nil && len(out) > 0 {
			return out, nil
		}
		if es, err = f.DynamicSymbols(); err != nil {
			return nil, err
		}
	}
	out := make([]symbol, 0, len(es))
	for _, s := range es {
		t := elf.ST_TYPE(s.Info)
		if s.Section == elf.SHN_UNDEF || s.Value == 0 || s.Size == 0 ||
			(t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC && t != elf.STT_NOTYPE && t != elf.STT_OBJECT) {
			continue
		}
		rank := 0
		switch elf.ST_BIND(s.Info) {
		case elf.STB_WEAK:
			rank = 1
		case elf.STB_GLOBAL:
			rank = 2
		}
		name := s.Name
		if len(name) > maxSymbolName {
			name = name[:maxSymbolName]
		}
		out = append(out, symbol{value: s.Value, size: s.Size, rank: rank, name: name})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.value != b.value {
			return a.value < b.value
		}
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		return a.name > b.name
	})
	return out, nil
}

// goSymbols reads the function table of a Go binary from .gopclntab.
func goSymbols(f *elf.File) ([]symbol, error) {
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		return nil, errNoSymbols
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, err
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, err
	}
	out := make([]symbol, 0, len(tab.Funcs))
	for _, fn := range tab.Funcs {
		if fn.End > fn.Entry {
			name := fn.Name
			if len(name) > maxSymbolName {
				name = name[:maxSymbolName]
			}
			out = append(out, symbol{value: fn.Entry, size: fn.End - fn.Entry, rank: 2, name: name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].value < out[j].value })
	return out, nil
}

var errNoSymbols = errors.New("no .gopclntab and .text sections")
