package kimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Ko is a loadable kernel module (an x86-64 ELF relocatable object) as far
// as verifying its loaded copy needs: section headers, the symbol table
// and the RELA relocations. Slices alias the object's bytes.
type Ko struct {
	Sections []KoSection
	Symbols  []KoSymbol // by ELF symbol index; 0 is the null symbol
	Relas    []KoRelas
	raw      []byte
}

// KoSection is one section header.
type KoSection struct {
	Name                string
	Type                uint32
	Flags               uint64
	Offset, Size, Align uint64
	Link, Info          uint32
}

// KoSymbol is one symbol; Shndx is a section index or SHN_UNDEF/ABS/COMMON.
type KoSymbol struct {
	Name       string
	NameOff    uint32 // st_name
	Value      uint64
	Size       uint64
	Shndx      uint16
	Bind, Type uint8
	Other      uint8
}

// KoRelas are the relocations of one section (Target, a section index).
type KoRelas struct {
	Target int
	Relas  []KoRela
}

// KoRela is one RELA entry.
type KoRela struct {
	Off    uint64
	Sym    uint32
	Type   uint32
	Addend int64
}

// ELF constants used here.
const (
	shtProgbits = 1
	shtSymtab   = 2
	shtRela     = 4
	shtNobits   = 8
	shtRel      = 9

	shfWrite     = 0x1
	shfAlloc     = 0x2
	shfExecinstr = 0x4
	// shfROAfterInit is the kernel's own flag for sections sealed after
	// the module's init (include/linux/elf.h: SHF_RO_AFTER_INIT).
	shfROAfterInit = 0x00200000

	SHNUndef  = 0
	SHNAbs    = 0xfff1
	SHNCommon = 0xfff2

	sttSection = 3
	sttFile    = 4
	sttFunc    = 2
)

// Limits on a module object.
const (
	maxKoSections = 1 << 14
	maxKoSymbols  = 1 << 20
	maxKoRelas    = 1 << 22
)

// ErrKoFormat is returned for objects that are not x86-64 relocatable ELF.
var ErrKoFormat = errors.New("ko: not an x86-64 ELF relocatable object")

// ParseKo reads a module object, checking every header, table and name
// against the object's size.
func ParseKo(b []byte) (*Ko, error) {
	le := binary.LittleEndian
	if len(b) < 64 || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 || le.Uint16(b[16:]) != 1 || le.Uint16(b[18:]) != 62 {
		return nil, ErrKoFormat
	}
	shoff, shentsize, shnum, shstrndx := le.Uint64(b[40:]), le.Uint16(b[58:]), int(le.Uint16(b[60:])), int(le.Uint16(b[62:]))
	if shentsize != 64 || shnum == 0 || shnum > maxKoSections || shstrndx >= shnum {
		return nil, fmt.Errorf("ko: section headers: entsize %d, %d sections, names in %d", shentsize, shnum, shstrndx)
	}
	if shoff > uint64(len(b)) || uint64(shnum)*64 > uint64(len(b))-shoff {
		return nil, fmt.Errorf("ko: %d section headers at %d run past %d bytes", shnum, shoff, len(b))
	}
	k := &Ko{raw: b, Sections: make([]KoSection, shnum)}
	names := make([]uint32, shnum)
	for i := range k.Sections {
		h := b[shoff+uint64(i)*64:]
		s := KoSection{Type: le.Uint32(h[4:]), Flags: le.Uint64(h[8:]), Offset: le.Uint64(h[24:]), Size: le.Uint64(h[32:]),
			Link: le.Uint32(h[40:]), Info: le.Uint32(h[44:]), Align: le.Uint64(h[48:])}
		names[i] = le.Uint32(h[0:])
		if s.Type != shtNobits && (s.Offset > uint64(len(b)) || s.Size > uint64(len(b))-s.Offset) {
			return nil, fmt.Errorf("ko: section %d: %d bytes at %d run past the object", i, s.Size, s.Offset)
		}
		if s.Align > 1<<16 || s.Size > MaxModuleFile {
			return nil, fmt.Errorf("ko: section %d: alignment %d, size %d", i, s.Align, s.Size)
		}
		k.Sections[i] = s
	}
	shstr := k.data(shstrndx)
	for i := range k.Sections {
		n, err := cstring(shstr, names[i])
		if err != nil {
			return nil, fmt.Errorf("ko: section %d name: %w", i, err)
		}
		k.Sections[i].Name = n
	}
	symtab := -1
	for i, s := range k.Sections {
		switch s.Type {
		case shtSymtab:
			if symtab >= 0 {
				return nil, errors.New("ko: two symbol tables")
			}
			symtab = i
		case shtRel:
			if s.Flags&shfAlloc == 0 && s.Info < uint32(shnum) && k.Sections[s.Info].Flags&shfAlloc != 0 {
				return nil, fmt.Errorf("ko: section %s: REL relocations are not used on x86-64", s.Name)
			}
		}
	}
	if symtab < 0 {
		return nil, errors.New("ko: no symbol table")
	}
	if err := k.readSymbols(symtab); err != nil {
		return nil, err
	}
	total := 0
	for i, s := range k.Sections {
		if s.Type != shtRela {
			continue
		}
		if int(s.Link) != symtab || s.Info == 0 || s.Info >= uint32(shnum) || s.Size%24 != 0 {
			return nil, fmt.Errorf("ko: relocation section %s: symbols %d, target %d, %d bytes", s.Name, s.Link, s.Info, s.Size)
		}
		if total += int(s.Size / 24); total > maxKoRelas {
			return nil, fmt.Errorf("ko: more than %d relocations", maxKoRelas)
		}
		d := k.data(i)
		rs := KoRelas{Target: int(s.Info), Relas: make([]KoRela, 0, len(d)/24)}
		for j := 0; j+24 <= len(d); j += 24 {
			info := le.Uint64(d[j+8:])
			r := KoRela{Off: le.Uint64(d[j:]), Sym: uint32(info >> 32), Type: uint32(info), Addend: int64(le.Uint64(d[j+16:]))}
			if int(r.Sym) >= len(k.Symbols) {
				return nil, fmt.Errorf("ko: %s entry %d: symbol %d of %d", s.Name, j/24, r.Sym, len(k.Symbols))
			}
			rs.Relas = append(rs.Relas, r)
		}
		k.Relas = append(k.Relas, rs)
	}
	return k, nil
}

func (k *Ko) readSymbols(idx int) error {
	s := k.Sections[idx]
	if s.Size%24 != 0 || s.Size/24 > maxKoSymbols || int(s.Link) >= len(k.Sections) {
		return fmt.Errorf("ko: symbol table: %d bytes, strings in %d", s.Size, s.Link)
	}
	strs := k.data(int(s.Link))
	d := k.data(idx)
	le := binary.LittleEndian
	k.Symbols = make([]KoSymbol, 0, len(d)/24)
	for j := 0; j+24 <= len(d); j += 24 {
		name, err := cstring(strs, le.Uint32(d[j:]))
		if err != nil {
			return fmt.Errorf("ko: symbol %d: %w", j/24, err)
		}
		k.Symbols = append(k.Symbols, KoSymbol{Name: name, NameOff: le.Uint32(d[j:]), Bind: d[j+4] >> 4, Type: d[j+4] & 0xf, Other: d[j+5],
			Shndx: le.Uint16(d[j+6:]), Value: le.Uint64(d[j+8:]), Size: le.Uint64(d[j+16:])})
	}
	return nil
}

// data returns a section's bytes (nil for SHT_NOBITS).
func (k *Ko) data(i int) []byte {
	s := k.Sections[i]
	if s.Type == shtNobits {
		return nil
	}
	return k.raw[s.Offset : s.Offset+s.Size]
}

func cstring(tab []byte, off uint32) (string, error) {
	if uint64(off) >= uint64(len(tab)) {
		if off == 0 {
			return "", nil
		}
		return "", fmt.Errorf("name offset %d past %d bytes", off, len(tab))
	}
	end := off
	for end < uint32(len(tab)) && tab[end] != 0 {
		if end-off > 1024 {
			return "", fmt.Errorf("name at %d longer than 1024 bytes", off)
		}
		end++
	}
	return string(tab[off:end]), nil
}

// Section returns the index of the section named name, or -1.
func (k *Ko) Section(name string) int {
	for i, s := range k.Sections {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// KoLayout is where the kernel puts each section of a module in its core
// allocation (kernel/module/main.c, layout_sections, on kernels with
// core_layout: up to 6.3): executable sections first, then read-only
// data, then data sealed after init, then data, each class in
// section-header order, each section at its own alignment, each class
// boundary but the last page-aligned (CONFIG_STRICT_MODULE_RWX). Sections
// named .init* go to the init allocation, freed after the module's init.
type KoLayout struct {
	Offset          []int64 // per section: offset in the core allocation, or -1
	TextSize        uint64  // [0, TextSize): text
	ROSize          uint64  // [TextSize, ROSize): read-only data
	ROAfterInitSize uint64  // [ROSize, ROAfterInitSize): sealed after init
	Size            uint64  // sections only (the kernel appends symbols)
}

const koPage = 4096

// CoreLayout computes the core layout.
func (k *Ko) CoreLayout() KoLayout {
	n := len(k.Sections)
	flags := make([]uint64, n)
	for i, s := range k.Sections {
		f := s.Flags
		switch s.Name {
		case ".modinfo", "__versions", ".data..percpu":
			// Not kept (modinfo, versions) or allocated per CPU.
			f &^= shfAlloc
		case ".data..ro_after_init", "__jump_table":
			f |= shfROAfterInit
		}
		flags[i] = f
	}
	l := KoLayout{Offset: make([]int64, n)}
	for i := range l.Offset {
		l.Offset[i] = -1
	}
	masks := [4][2]uint64{
		{shfExecinstr | shfAlloc, 0},
		{shfAlloc, shfWrite},
		{shfROAfterInit | shfAlloc, 0},
		{shfWrite | shfAlloc, 0},
	}
	size := uint64(0)
	for m, mk := range masks {
		for i, s := range k.Sections {
			if flags[i]&mk[0] != mk[0] || flags[i]&mk[1] != 0 || l.Offset[i] >= 0 || strings.HasPrefix(s.Name, ".init") {
				continue
			}
			size = alignUp(size, max(s.Align, 1))
			l.Offset[i] = int64(size)
			size += s.Size
		}
		switch m {
		case 0:
			size = alignUp(size, koPage)
			l.TextSize = size
		case 1:
			size = alignUp(size, koPage)
			l.ROSize = size
		case 2:
			size = alignUp(size, koPage)
			l.ROAfterInitSize = size
		}
	}
	l.Size = size
	return l
}

func alignUp(v, a uint64) uint64 {
	if a&(a-1) != 0 { // the kernel's ALIGN assumes a power of two
		return v
	}
	return (v + a - 1) &^ (a - 1)
}

// x86-64 relocation types the kernel's module loader accepts
// (arch/x86/kernel/module.c).
const (
	RX8664None  = 0
	RX866464    = 1
	RX8664PC32  = 2
	RX8664PLT32 = 4
	RX866432    = 10
	RX866432S   = 11
	RX8664PC64  = 24
)

// Masked reasons: why a relocated field's value was not computed.
const (
	MaskUnresolved = "unresolved symbol" // defined in another module or not found
	MaskInit       = "init section"      // symbol in a section freed after init
	MaskPercpu     = "percpu"            // symbol in the per-CPU area
	MaskOther      = "other section"     // non-allocated or special section
)

// KoRange is a masked field of a relocated image: core offset and length.
type KoRange struct {
	Off    uint64
	Len    uint8
	Reason string
	Sym    string
}

// Relocate returns the module's core allocation [0, l.Size) as the kernel
// writes it at base before patching: each core section's bytes (zero for
// NOBITS) with every relocation applied. Undefined symbols are looked up
// with resolve (the running kernel's or another module's exports); a
// field whose value cannot be computed is left as the object holds it and
// listed in masked.
func (k *Ko) Relocate(l KoLayout, base uint64, resolve func(name string) (uint64, bool)) (img []byte, masked []KoRange, err error) {
	if l.Size > MaxModuleFile {
		return nil, nil, fmt.Errorf("ko: core of %d bytes", l.Size)
	}
	img = make([]byte, l.Size)
	for i := range k.Sections {
		if l.Offset[i] >= 0 {
			copy(img[l.Offset[i]:], k.data(i))
		}
	}
	le := binary.LittleEndian
	for _, rs := range k.Relas {
		if l.Offset[rs.Target] < 0 {
			continue // relocations of init or non-allocated sections
		}
		tgt := k.Sections[rs.Target]
		secOff := uint64(l.Offset[rs.Target])
		for _, r := range rs.Relas {
			width := uint64(4)
			switch r.Type {
			case RX8664None:
				continue
			case RX866464, RX8664PC64:
				width = 8
			case RX8664PC32, RX8664PLT32, RX866432, RX866432S:
			default:
				return nil, nil, fmt.Errorf("ko: %s: relocation type %d at %#x is not one the kernel accepts", tgt.Name, r.Type, r.Off)
			}
			if r.Off > tgt.Size || width > tgt.Size-r.Off {
				return nil, nil, fmt.Errorf("ko: %s: relocation at %#x past the section's %d bytes", tgt.Name, r.Off, tgt.Size)
			}
			at := secOff + r.Off
			loc := base + at
			sym := k.Symbols[r.Sym]
			val, reason := k.symValue(l, base, sym, resolve)
			if reason != "" {
				masked = append(masked, KoRange{Off: at, Len: uint8(width), Reason: reason, Sym: sym.Name})
				continue
			}
			val += uint64(r.Addend)
			switch r.Type {
			case RX866464:
				le.PutUint64(img[at:], val)
			case RX8664PC64:
				le.PutUint64(img[at:], val-loc)
			case RX8664PC32, RX8664PLT32:
				le.PutUint32(img[at:], uint32(val-loc))
			default:
				le.PutUint32(img[at:], uint32(val))
			}
		}
	}
	sort.Slice(masked, func(i, j int) bool { return masked[i].Off < masked[j].Off })
	return img, masked, nil
}

func (k *Ko) symValue(l KoLayout, base uint64, s KoSymbol, resolve func(string) (uint64, bool)) (uint64, string) {
	switch s.Shndx {
	case SHNUndef:
		if v, ok := resolve(s.Name); ok {
			return v, ""
		}
		return 0, MaskUnresolved
	case SHNAbs:
		return s.Value, ""
	}
	if int(s.Shndx) >= len(k.Sections) {
		return 0, MaskOther
	}
	if off := l.Offset[s.Shndx]; off >= 0 {
		return base + uint64(off) + s.Value, ""
	}
	switch n := k.Sections[s.Shndx].Name; {
	case strings.HasPrefix(n, ".init") || strings.HasPrefix(n, ".exit"):
		return 0, MaskInit
	case n == ".data..percpu":
		return 0, MaskPercpu
	}
	return 0, MaskOther
}

// KoName is a named place in the core allocation.
type KoName struct {
	Off  uint64
	Name string
	Func bool
}

// Names lists the object's named symbols in core sections by core offset
// (sorted), to name a mismatch's function.
func (k *Ko) Names(l KoLayout) []KoName {
	var out []KoName
	for _, s := range k.Symbols {
		if s.Name == "" || s.Type == sttSection || s.Type == sttFile || s.Shndx == SHNUndef || int(s.Shndx) >= len(k.Sections) {
			continue
		}
		if off := l.Offset[s.Shndx]; off >= 0 {
			out = append(out, KoName{Off: uint64(off) + s.Value, Name: s.Name, Func: s.Type == sttFunc})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Off != out[j].Off {
			return out[i].Off < out[j].Off
		}
		return out[i].Func && !out[j].Func // a function's own name first
	})
	return out
}

// Exports maps each symbol the module exports (it has a __ksymtab_<name>
// entry) to its core offset.
func (k *Ko) Exports(l KoLayout) map[string]uint64 {
	exported := map[string]bool{}
	for _, s := range k.Symbols {
		if n, ok := strings.CutPrefix(s.Name, "__ksymtab_"); ok {
			exported[n] = true
		}
	}
	out := map[string]uint64{}
	for _, s := range k.Symbols {
		if !exported[s.Name] || s.Shndx == SHNUndef || int(s.Shndx) >= len(k.Sections) || s.Bind == 0 {
			continue
		}
		if off := l.Offset[s.Shndx]; off >= 0 {
			out[s.Name] = uint64(off) + s.Value
		}
	}
	return out
}

// SectionRange returns a core section's offset and size by name.
func (k *Ko) SectionRange(l KoLayout, name string) (off, size uint64, ok bool) {
	i := k.Section(name)
	if i < 0 || l.Offset[i] < 0 {
		return 0, 0, false
	}
	return uint64(l.Offset[i]), k.Sections[i].Size, true
}
