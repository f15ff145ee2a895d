package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// ErrNoModuleSymbols: the profile lacks the offsets of a module's symbol
// table (a kernel without CONFIG_KALLSYMS, or a profile from before they
// were recorded).
var ErrNoModuleSymbols = errors.New("the profile has no module symbol table offsets")

// ErrSymbolsSwitching: the module is live but mod->kallsyms still points
// into its init allocation. do_init_module marks a module live before it
// switches kallsyms to the core table, so this is legal for a moment; the
// caller retries, and asks again with strict set if it lasts.
var ErrSymbolsSwitching = errors.New("module kallsyms still points at its init table")

// modSymOffsets are the struct members VerifySymbols reads.
var modSymOffsets = []string{"module.kallsyms", "module.core_kallsyms",
	"mod_kallsyms.symtab", "mod_kallsyms.num_symtab", "mod_kallsyms.strtab", "mod_kallsyms.typetab"}

// coreSymsKey caches a module's derived symbol table per base and policy.
type coreSymsKey struct {
	ref  *ModuleRef
	base uint64
	all  bool
}

// VerifySymbols compares a live module's symbol table (what kallsyms,
// /proc/kallsyms, stack traces and the ftrace filter read) with the one
// the kernel derives from the object: mod->kallsyms must point at the
// module's own core table, the table must sit where the layout puts it
// and hold exactly the object's kept symbols, and every entry (name,
// type, section, address, size) and every name's bytes must be the
// derived ones. A rootkit renaming or hiding its functions in a known
// module, or pointing kallsyms at a table of its own, is found here.
//
// Whether the kernel keeps data symbols (CONFIG_KALLSYMS_ALL) is learnt
// from the first module whose count matches either policy and then held
// for the kernel. It returns the mismatches and the number of symbols
// compared.
func (c *ModuleCheck) VerifySymbols(k *Kernel, m Module, ref *ModuleRef, strict bool) ([]ModuleMismatch, int, error) {
	var off [6]uint64
	for i, p := range modSymOffsets {
		o, err := k.Off(p)
		if err != nil {
			return nil, 0, ErrNoModuleSymbols
		}
		off[i] = o
	}
	var out []ModuleMismatch
	bad := func(addr uint64, where, why string, got, want []byte) {
		if len(out) < MaxMismatches {
			out = append(out, ModuleMismatch{Module: m.Name, Addr: addr, Len: len(got), Where: where, Region: "symbols",
				Why: why, Got: clip(got), Want: clip(want)})
		}
	}
	own := m.Module + off[1]
	ptr, err := k.U64(m.Module + off[0])
	if err != nil {
		return nil, 0, fmt.Errorf("module %s kallsyms: %w", m.Name, err)
	}
	if ptr != own && !strict && k.inInitLayout(m, ptr) {
		return nil, 0, ErrSymbolsSwitching
	}
	if ptr != own {
		bad(m.Module+off[0], "mod->kallsyms", fmt.Sprintf("points at %#x, not the module's own table at %#x", ptr, own), nil, nil)
		return out, 0, nil
	}
	symtab, err1 := k.U64(own + off[2])
	num, err2 := k.U32(own + off[3])
	strtab, err3 := k.U64(own + off[4])
	typetab, err4 := k.U64(own + off[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, 0, fmt.Errorf("module %s symbol table: %w", m.Name, err)
	}
	exp, err := c.coreSymbols(ref, m.Base, int(num))
	if err != nil {
		return nil, 0, fmt.Errorf("module %s: %w", m.Name, err)
	}
	if m.Size != 0 && m.Size != alignPage(exp.End) {
		bad(m.Module, "core_layout.size", fmt.Sprintf("a core of %d bytes, the object's sections and kept symbols take %d", m.Size, alignPage(exp.End)), nil, nil)
	}
	if exp.N != int(num) {
		bad(own+off[3], "core_kallsyms.num_symtab", fmt.Sprintf("%d symbols, the object keeps %d", num, exp.N), nil, nil)
		return out, 0, nil
	}
	for _, p := range []struct {
		what      string
		got, want uint64
	}{{"symtab", symtab, m.Base + exp.SymOff}, {"strtab", strtab, m.Base + exp.StrOff}, {"typetab", typetab, m.Base + exp.TypeOff}} {
		if p.got != p.want {
			bad(own, "core_kallsyms."+p.what, fmt.Sprintf("at %#x, the layout puts it at %#x", p.got, p.want), nil, nil)
		}
	}
	if len(out) > 0 {
		return out, 0, nil
	}
	got := make([]byte, len(exp.Symtab))
	if err := k.Read(symtab, got); err != nil {
		return nil, 0, fmt.Errorf("module %s symbol table: %w", m.Name, err)
	}
	for _, i := range exp.Percpu { // addresses in the per-CPU area: not derived
		copy(got[i*kimage.SymtabEntry+8:i*kimage.SymtabEntry+16], exp.Symtab[i*kimage.SymtabEntry+8:])
	}
	for i := 0; i < exp.N; i++ {
		g, w := got[i*kimage.SymtabEntry:(i+1)*kimage.SymtabEntry], exp.Symtab[i*kimage.SymtabEntry:(i+1)*kimage.SymtabEntry]
		if !bytes.Equal(g, w) {
			bad(symtab+uint64(i*kimage.SymtabEntry), exp.Names[i], "symbol entry "+entryDiff(g, w), g, w)
		}
	}
	names := make([]byte, len(exp.Strtab))
	if err := k.Read(strtab, names); err != nil {
		return nil, 0, fmt.Errorf("module %s symbol names: %w", m.Name, err)
	}
	if !bytes.Equal(names, exp.Strtab) {
		starts := make([]uint32, exp.N) // name offsets, ascending
		for i := range starts {
			starts[i] = binary.LittleEndian.Uint32(exp.Symtab[i*kimage.SymtabEntry:])
		}
		for _, d := range diffRuns(names, exp.Strtab) {
			i := sort.Search(len(starts), func(i int) bool { return starts[i] > uint32(d[0]) }) - 1
			lo, hi := int(starts[max(i, 0)]), len(names)
			if i+1 < len(starts) {
				hi = int(starts[i+1])
			}
			bad(strtab+uint64(d[0]), exp.Names[max(i, 0)], "symbol name differs: "+printable(string(bytes.TrimRight(names[lo:hi], "\x00"))),
				names[d[0]:d[1]], exp.Strtab[d[0]:d[1]])
		}
	}
	return out, exp.N, nil
}

// entryDiff names the Elf64_Sym fields that differ.
func entryDiff(g, w []byte) string {
	var f []string
	for _, x := range []struct {
		name   string
		lo, hi int
	}{{"name offset", 0, 4}, {"type", 4, 6}, {"section", 6, 8}, {"address", 8, 16}, {"size", 16, 24}} {
		if !bytes.Equal(g[x.lo:x.hi], w[x.lo:x.hi]) {
			f = append(f, x.name)
		}
	}
	return fmt.Sprintf("%v differs", f)
}

// coreSymbols derives ref's kept table at base under the kernel's policy,
// learning the policy from num when it is not known yet and this module's
// two candidate tables differ in size.
func (c *ModuleCheck) coreSymbols(ref *ModuleRef, base uint64, num int) (*kimage.KoCoreSymbols, error) {
	get := func(all bool) (*kimage.KoCoreSymbols, error) {
		key := coreSymsKey{ref, base, all}
		if e := c.syms[key]; e != nil {
			return e, nil
		}
		e, err := ref.Ko.CoreSymbols(ref.Layout, base, all)
		if err != nil {
			return nil, err
		}
		if c.syms == nil || len(c.syms) > 4*MaxModules {
			c.syms = map[coreSymsKey]*kimage.KoCoreSymbols{}
		}
		c.syms[key] = e
		return e, nil
	}
	if c.symsAll != nil {
		return get(*c.symsAll)
	}
	all, err := get(true)
	if err != nil {
		return nil, err
	}
	exec, err := get(false)
	if err != nil {
		return nil, err
	}
	switch {
	case all.N == exec.N:
		return all, nil // this module cannot tell
	case all.N == num:
		c.symsAll = &[]bool{true}[0]
		return all, nil
	case exec.N == num:
		c.symsAll = &[]bool{false}[0]
		return exec, nil
	}
	return all, nil
}

func alignPage(v uint64) uint64 { return (v + 4095) &^ 4095 }

// inInitLayout reports whether a lies in module m's init allocation (while
// it has one).
func (k *Kernel) inInitLayout(m Module, a uint64) bool {
	bo, err1 := k.Off("module.init_layout.base")
	so, err2 := k.Off("module.init_layout.size")
	if err1 != nil || err2 != nil {
		return false
	}
	base, err1 := k.U64(m.Module + bo)
	size, err2 := k.U32(m.Module + so)
	return err1 == nil && err2 == nil && base != 0 && a >= base && a < base+uint64(size)
}
