package guest

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// TestModuleSymbols lays a real module's kept symbol table into a
// synthetic guest as the kernel does and checks: clean is clean (and the
// data-symbol policy is learnt), a renamed symbol, a moved address, a
// shrunk count, a core grown past the tables and a redirected
// mod->kallsyms are each reported, and a table still pointing into the
// init allocation is "switching" unless strict.
func TestModuleSymbols(t *testing.T) {
	ref, err := NewModuleRef(debianKo(t, "drivers/net/virtio_net.ko"))
	if err != nil {
		t.Fatal(err)
	}
	const modPA, basePA, initPA = 0x1000, 0x10000, 0x8000
	base := uint64(pageOffset + basePA)
	exp, err := ref.Ko.CoreSymbols(ref.Layout, base, true)
	if err != nil {
		t.Fatal(err)
	}
	if execOnly, _ := ref.Ko.CoreSymbols(ref.Layout, base, false); execOnly.N >= exp.N || exp.N < 100 {
		t.Fatalf("%d symbols kept with data, %d without", exp.N, execOnly.N)
	}
	phys := make([]byte, basePA+alignPage(exp.End)+4096)
	copy(phys[basePA+exp.SymOff:], exp.Symtab)
	copy(phys[basePA+exp.StrOff:], exp.Strtab)
	le := binary.LittleEndian
	mod := uint64(pageOffset + modPA)
	own := mod + 0x210
	le.PutUint64(phys[modPA+0x200:], own)
	le.PutUint64(phys[modPA+0x210:], base+exp.SymOff)
	le.PutUint32(phys[modPA+0x218:], uint32(exp.N))
	le.PutUint64(phys[modPA+0x220:], base+exp.StrOff)
	le.PutUint64(phys[modPA+0x228:], base+exp.TypeOff)
	le.PutUint64(phys[modPA+0x300:], pageOffset+initPA)
	le.PutUint32(phys[modPA+0x308:], 0x1000)
	k := testKernel(phys, nil)
	k.L.Offsets = map[string]uint64{"module.kallsyms": 0x200, "module.core_kallsyms": 0x210,
		"mod_kallsyms.symtab": 0, "mod_kallsyms.num_symtab": 8, "mod_kallsyms.strtab": 0x10, "mod_kallsyms.typetab": 0x18,
		"module.init_layout.base": 0x300, "module.init_layout.size": 0x308}
	c := NewModuleCheck(&ImageText{}, 0)
	m := Module{Name: "virtio_net", Base: base, Module: mod, Size: alignPage(exp.End)}
	verify := func(strict bool) ([]ModuleMismatch, error) {
		t.Helper()
		mm, n, err := c.VerifySymbols(k, m, ref, strict)
		if err == nil && len(mm) == 0 && n != exp.N {
			t.Fatalf("%d symbols compared, want %d", n, exp.N)
		}
		return mm, err
	}
	if mm, err := verify(false); err != nil || len(mm) != 0 {
		t.Fatalf("clean: %v %+v", err, mm)
	}
	if c.symsAll == nil || !*c.symsAll {
		t.Fatal("the data-symbol policy was not learnt")
	}

	// A function renamed.
	i := 1
	for ; i < exp.N && !strings.HasPrefix(exp.Names[i], "virtnet_"); i++ {
	}
	nameAt := basePA + exp.StrOff + uint64(le.Uint32(exp.Symtab[i*kimage.SymtabEntry:]))
	phys[nameAt+2] = 'X'
	mm, err := verify(false)
	if err != nil || len(mm) != 1 || mm[0].Where != exp.Names[i] || !strings.Contains(mm[0].Why, "viXtnet_") {
		t.Fatalf("renamed %s: %v %+v", exp.Names[i], err, mm)
	}
	phys[nameAt+2] = exp.Names[i][2]

	// A symbol's address moved (stack traces and the ftrace filter would
	// name the wrong code).
	valAt := basePA + exp.SymOff + uint64(i*kimage.SymtabEntry) + 8
	phys[valAt] ^= 0x40
	if mm, _ := verify(false); len(mm) != 1 || !strings.Contains(mm[0].Why, "address") {
		t.Fatalf("moved address: %+v", mm)
	}
	phys[valAt] ^= 0x40

	// A symbol dropped from the count (hidden from kallsyms).
	le.PutUint32(phys[modPA+0x218:], uint32(exp.N-1))
	if mm, _ := verify(false); len(mm) != 1 || mm[0].Where != "core_kallsyms.num_symtab" {
		t.Fatalf("shrunk count: %+v", mm)
	}
	le.PutUint32(phys[modPA+0x218:], uint32(exp.N))

	// A core grown past its tables (room for code of its own).
	m.Size += 4096
	if mm, _ := verify(false); len(mm) != 1 || mm[0].Where != "core_layout.size" {
		t.Fatalf("grown core: %+v", mm)
	}
	m.Size -= 4096

	// kallsyms pointing into the init allocation: switching, until strict.
	le.PutUint64(phys[modPA+0x200:], pageOffset+initPA+0x40)
	if _, err := verify(false); !errors.Is(err, ErrSymbolsSwitching) {
		t.Fatalf("init table, not strict: %v", err)
	}
	if mm, _ := verify(true); len(mm) != 1 || mm[0].Where != "mod->kallsyms" {
		t.Fatalf("init table, strict: %+v", mm)
	}
	// Anywhere else: reported at once.
	le.PutUint64(phys[modPA+0x200:], pageOffset+0x4000)
	if mm, _ := verify(false); len(mm) != 1 || mm[0].Where != "mod->kallsyms" {
		t.Fatalf("redirected: %+v", mm)
	}
	le.PutUint64(phys[modPA+0x200:], own)
	if mm, err := verify(false); err != nil || len(mm) != 0 {
		t.Fatalf("restored: %v %+v", err, mm)
	}
}
