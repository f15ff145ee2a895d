package guest

import (
	"fmt"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
)

type tableSyms struct{ t *kallsyms.Table }

func (s tableSyms) Lookup(name string) (uint64, bool) {
	a, _, ok := s.t.Lookup(name)
	return a, ok
}

func (s tableSyms) Next(addr uint64) (uint64, bool) {
	n, ok := s.t.Next(addr)
	return n.Addr, ok
}

// TestDebianGates derives the gate reference of the installed Debian cloud
// kernel (6.1) and checks it against what its idt.c and entry code define.
func TestDebianGates(t *testing.T) {
	_, vml := kimagetest.Vmlinux(t)
	segs, err := kimage.LoadSegments(vml)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := kallsyms.FromImage(vml)
	if err != nil {
		t.Fatal(err)
	}
	img := func(va uint64, n int) []byte {
		off, ok := segs.Offset(va, int64(n))
		if !ok {
			return nil
		}
		return vml[off : off+int64(n)]
	}
	ref, err := DeriveGates(img, tableSyms{syms})
	if err != nil {
		t.Fatal(err)
	}
	name := func(v int) string {
		n, off, _ := syms.Nearest(ref.Vectors[v].Handler)
		if off != 0 {
			return fmt.Sprintf("%s+%x", n, off)
		}
		return n
	}
	for v, want := range map[int]string{
		0: "asm_exc_divide_error", 1: "asm_exc_debug", 2: "asm_exc_nmi", 3: "asm_exc_int3",
		8: "asm_exc_double_fault", 13: "asm_exc_general_protection", 14: "asm_exc_page_fault",
		18:   "early_idt_handler_array+a2", // no CONFIG_X86_MCE: #MC keeps its early stub (9 bytes each)
		0x20: "asm_sysvec_irq_move_cleanup", 0x21: "irq_entries_start+8", 0x80: "asm_int80_emulation",
		0xec: "asm_sysvec_apic_timer_interrupt", 0xf3: "spurious_entries_start+38", 0xff: "asm_sysvec_spurious_apic_interrupt",
	} {
		if got := name(v); got != want {
			t.Errorf("vector %#x: %s (%s), want %s", v, got, ref.Vectors[v].Source, want)
		}
	}
	if e := ref.Vectors[3]; e.Bits != 0xee00 {
		t.Errorf("int3 gate bits %#x, want 0xee00 (DPL 3)", e.Bits)
	}
	if e := ref.Vectors[1]; e.Bits != 0x8e03 || e.Source != "def_idts" {
		t.Errorf("#DB: %+v, want IST 3 from def_idts", e)
	}
	if !ref.Vectors[0xf3].Dynamic || ref.Vectors[0x21].Dynamic {
		t.Error("dynamic marks")
	}
	for v := range ref.Vectors {
		if ref.Vectors[v].Handler == 0 {
			t.Errorf("vector %#x not derived", v)
		}
	}
	if len(ref.Notes) != 0 {
		t.Errorf("notes: %q", ref.Notes)
	}
	// Debian's 6.1.0-2x and later carry the x64_sys_call backport.
	d := ref.Dispatch
	if d == nil || len(d.Code) < 1024 || d.Fentry == 0 || len(d.Ftrace) == 0 || len(d.Return) == 0 {
		t.Fatalf("dispatch: %+v", d)
	}
	t.Logf("x64_sys_call: %d bytes, sha256 %s", len(d.Code), d.SHA)
}
