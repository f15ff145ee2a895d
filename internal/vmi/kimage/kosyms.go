package kimage

import (
	"encoding/binary"
	"fmt"
)

// KoCoreSymbols is the symbol table the kernel keeps for a loaded module
// after its init (mod->core_kallsyms, kernel/module/kallsyms.c on kernels
// with core_layout): the object's symbols that name a place in the core
// allocation, in the object's order, with the null symbol first; each
// st_name re-based into a compact string table and each st_value made an
// address. The three tables sit at the end of the core allocation, after
// the sections.
type KoCoreSymbols struct {
	// Symtab and Strtab are the exact bytes the kernel writes, for a
	// module based at the base given to CoreSymbols; Symtab holds N
	// Elf64_Sym entries.
	Symtab, Strtab []byte
	N              int
	Names          []string // per entry
	// Percpu lists entries whose st_value is an address in the module's
	// per-CPU area (kept with CONFIG_KALLSYMS_ALL): not derived here.
	Percpu []int
	// SymOff, StrOff and TypeOff are the tables' core offsets; End is
	// the core size they leave (before the kernel's final page rounding).
	SymOff, StrOff, TypeOff, End uint64
}

// SymtabEntry is the size of an Elf64_Sym.
const SymtabEntry = 24

// CoreSymbols derives the kept symbol table of a module laid out as l at
// base. all says whether the kernel keeps data symbols too
// (CONFIG_KALLSYMS_ALL) or only those in executable sections.
func (k *Ko) CoreSymbols(l KoLayout, base uint64, all bool) (*KoCoreSymbols, error) {
	pcpu := k.Section(".data..percpu")
	symAlign := uint64(1)
	for _, s := range k.Sections {
		if s.Type == shtSymtab && s.Align > 0 {
			symAlign = s.Align
		}
	}
	out := &KoCoreSymbols{}
	le := binary.LittleEndian
	var ent [SymtabEntry]byte
	for i, s := range k.Symbols {
		if i != 0 && !k.coreSymbol(s, l, pcpu, all) {
			continue
		}
		le.PutUint32(ent[0:], uint32(len(out.Strtab)))
		ent[4] = s.Bind<<4 | s.Type
		ent[5] = s.Other
		le.PutUint16(ent[6:], s.Shndx)
		v := s.Value
		switch {
		case i == 0:
		case int(s.Shndx) == pcpu:
			out.Percpu = append(out.Percpu, out.N)
		default:
			v = base + uint64(l.Offset[s.Shndx]) + s.Value
		}
		le.PutUint64(ent[8:], v)
		le.PutUint64(ent[16:], s.Size)
		out.Symtab = append(out.Symtab, ent[:]...)
		out.Strtab = append(append(out.Strtab, s.Name...), 0)
		out.Names = append(out.Names, s.Name)
		out.N++
		if uint64(len(out.Symtab)+len(out.Strtab)) > MaxModuleFile {
			return nil, fmt.Errorf("ko: kept symbols exceed %d bytes", MaxModuleFile)
		}
	}
	// layout_sections ends the data class on a page boundary too
	// (strict_align, CONFIG_STRICT_MODULE_RWX), then layout_symtab
	// appends the tables.
	out.SymOff = alignUp(alignUp(l.Size, koPage), symAlign)
	out.StrOff = out.SymOff + uint64(len(out.Symtab))
	out.TypeOff = out.StrOff + uint64(len(out.Strtab))
	out.End = out.TypeOff + uint64(out.N)
	return out, nil
}

// coreSymbol is the kernel's is_core_symbol: a named symbol defined in a
// core section (executable only, unless all), or in the per-CPU section
// when all.
func (k *Ko) coreSymbol(s KoSymbol, l KoLayout, pcpu int, all bool) bool {
	if s.Shndx == SHNUndef || int(s.Shndx) >= len(k.Sections) || s.NameOff == 0 {
		return false
	}
	if all && int(s.Shndx) == pcpu {
		return true
	}
	sec := k.Sections[s.Shndx]
	if l.Offset[s.Shndx] < 0 || !all && sec.Flags&shfExecinstr == 0 {
		return false
	}
	return true
}
