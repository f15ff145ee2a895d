package guest

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// A synthetic kernel image for the gate checks. Link-time addresses equal
// runtime ones (no slide) and lie in the direct map, so the image bytes
// double as guest memory: gateImage builds both.
const (
	gText      = 0x1000 // _stext
	gDivide    = 0x1000 // asm_exc_divide_error
	gInt3      = 0x1100 // asm_exc_int3
	gSysvecA   = 0x1200 // asm_sysvec_reschedule_ipi
	gSysvecKVM = 0x1300 // asm_sysvec_kvm_asyncpf_interrupt
	gDispatch  = 0x1400 // x64_sys_call, 0x100 bytes
	gFentry    = 0x1600 // __fentry__
	gFtrace    = 0x1640 // ftrace_caller
	gRetThunk  = 0x1700 // __x86_return_thunk
	gSysA      = 0x1800 // __x64_sys_a
	gSysB      = 0x1900 // __x64_sys_b
	gIRQ       = 0x2000 // irq_entries_start: vectors 0x20..0xeb, 8 bytes each
	gSpurious  = 0x2700 // spurious_entries_start: 0xec..0xff
	gEText     = 0x2800 // _etext
	gEarly     = 0x2800 // early_idt_handler_array (init text), 9 bytes each
	gEInit     = 0x2a00
	gDefIDTs   = 0x3000
	gApicIDTs  = 0x3100
	gTable     = 0x3200 // sys_call_table
	gIDT       = 0x4000
	gEnd       = 0x5000
	firstSys   = 0xec
)

type fakeSyms []struct {
	name string
	addr uint64
}

func (f fakeSyms) Lookup(name string) (uint64, bool) {
	for _, s := range f {
		if s.name == name {
			return s.addr, true
		}
	}
	return 0, false
}

func (f fakeSyms) Next(addr uint64) (uint64, bool) {
	best, ok := uint64(0), false
	for _, s := range f {
		if s.addr > addr && (!ok || s.addr < best) {
			best, ok = s.addr, true
		}
	}
	return best, ok
}

// nearest is a Layout.Nearest over the (sorted once) symbols.
func (f fakeSyms) nearest() func(uint64) (string, uint64, bool) {
	s := append(fakeSyms(nil), f...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].addr < s[j].addr })
	return func(addr uint64) (string, uint64, bool) {
		i := sort.Search(len(s), func(i int) bool { return s[i].addr > addr })
		if i == 0 {
			return "", 0, false
		}
		return s[i-1].name, addr - s[i-1].addr, true
	}
}

func gateSyms() fakeSyms {
	v := func(o uint64) uint64 { return pageOffset + o }
	return fakeSyms{
		{"_stext", v(gText)}, {"asm_exc_divide_error", v(gDivide)}, {"asm_exc_int3", v(gInt3)},
		{"asm_sysvec_reschedule_ipi", v(gSysvecA)}, {"asm_sysvec_kvm_asyncpf_interrupt", v(gSysvecKVM)},
		{"x64_sys_call", v(gDispatch)}, {"__fentry__", v(gFentry)}, {"ftrace_caller", v(gFtrace)},
		{"__x86_return_thunk", v(gRetThunk)}, {"__x64_sys_a", v(gSysA)}, {"__x64_sys_b", v(gSysB)}, {"__ia32_sys_b", v(gSysB)}, // an alias Nearest names first
		{"irq_entries_start", v(gIRQ)}, {"spurious_entries_start", v(gSpurious)}, {"_etext", v(gEText)},
		{"_sinittext", v(gEarly)}, {"early_idt_handler_array", v(gEarly)}, {"_einittext", v(gEInit)},
		{"def_idts", v(gDefIDTs)}, {"apic_idts", v(gApicIDTs)}, {"sys_call_table", v(gTable)},
		{"idt_table", v(gIDT)}, {"_end", v(gEnd)},
	}
}

func putIDTData(b []byte, at uint64, vec uint32, bits uint16, h uint64) {
	binary.LittleEndian.PutUint32(b[at:], vec)
	binary.LittleEndian.PutUint32(b[at+4:], kernelCS)
	binary.LittleEndian.PutUint16(b[at+8:], bits)
	put64(b, at+16, h)
}

// putGate writes a live IDT gate.
func putGate(b []byte, v int, h uint64, bits uint16) {
	g := b[gIDT+16*v:]
	binary.LittleEndian.PutUint16(g[0:], uint16(h))
	binary.LittleEndian.PutUint16(g[2:], kernelCS)
	binary.LittleEndian.PutUint16(g[4:], bits)
	binary.LittleEndian.PutUint16(g[6:], uint16(h>>16))
	binary.LittleEndian.PutUint32(g[8:], uint32(h>>32))
}

func rel32(b []byte, at, target uint64) {
	binary.LittleEndian.PutUint32(b[at+1:], uint32(target-(at+5)))
}

// gateImage returns the image bytes (direct-map offsets from pageOffset).
func gateImage() []byte {
	b := make([]byte, 1<<16)
	v := func(o uint64) uint64 { return pageOffset + o }
	putIDTData(b, gDefIDTs, 0, 0x8e00, v(gDivide))
	putIDTData(b, gDefIDTs+24, 3, 0xee00, v(gInt3))
	putIDTData(b, gApicIDTs, 0xfd, 0x8e00, v(gSysvecA))
	for i := uint64(0); i < firstSys-0x20; i++ { // push $v; jmp; int3
		copy(b[gIRQ+8*i:], []byte{0x6a, byte(0x20 + i), 0xe9, 1, 2, 3, 4, 0xcc})
	}
	for i := uint64(0); i < 256-firstSys; i++ {
		copy(b[gSpurious+8*i:], []byte{0x6a, byte(firstSys + i), 0xe9, 1, 2, 3, 4, 0xcc})
	}
	for i := uint64(0); i < 32; i++ { // push $0; push $v; jmp
		copy(b[gEarly+9*i:], []byte{0x6a, 0, 0x6a, byte(i), 0xe9, 1, 2, 3, 4})
	}
	// x64_sys_call: call __fentry__; cmp; jmp __x64_sys_a; jmp __x86_return_thunk.
	d := b[gDispatch:]
	d[0] = 0xe8
	rel32(b, gDispatch, gFentry)
	copy(d[5:], []byte{0x81, 0xfe, 0xb0, 0, 0, 0})
	d[11] = 0xe9
	rel32(b, gDispatch+11, gSysA)
	d[16] = 0xe9
	rel32(b, gDispatch+16, gRetThunk)
	for i := 21; i < 0x100; i++ {
		d[i] = 0xcc
	}
	put64(b, gTable, v(gSysA))
	put64(b, gTable+8, v(gSysB))
	return b
}

func imageOf(b []byte) ImageBytes {
	return func(va uint64, n int) []byte {
		if va < pageOffset || n < 0 || va-pageOffset > uint64(len(b)) || uint64(n) > uint64(len(b))-(va-pageOffset) {
			return nil
		}
		o := va - pageOffset
		return b[o : o+uint64(n)]
	}
}

// gateKernel is a guest running the image unchanged, its IDT as the kernel
// sets it up.
func gateKernel(t testing.TB) (*Kernel, []byte, *GateRef) {
	img := gateImage()
	syms := gateSyms()
	ref, err := DeriveGates(imageOf(img), syms)
	if err != nil {
		t.Fatal(err)
	}
	phys := append([]byte(nil), img...)
	for v := 0; v < 256; v++ {
		if e := ref.Vectors[v]; e.Handler != 0 {
			putGate(phys, v, e.Handler, e.Bits)
		}
	}
	symMap := map[string]uint64{}
	for _, s := range syms {
		symMap[s.name] = s.addr
	}
	k := testKernel(phys, symMap)
	k.L.Nearest = syms.nearest()
	k.L.ImageSyscalls = []uint64{pageOffset + gSysA, pageOffset + gSysB}
	k.L.NamesAt = func(a uint64) []string {
		var out []string
		for _, s := range syms {
			if s.addr == a {
				out = append(out, s.name)
			}
		}
		return out
	}
	return k, phys, ref
}

func TestDeriveGates(t *testing.T) {
	_, _, ref := gateKernel(t)
	want := map[int]ExpectedGate{
		0:    {Handler: pageOffset + gDivide, Bits: 0x8e00, Source: "def_idts"},
		3:    {Handler: pageOffset + gInt3, Bits: 0xee00, Source: "def_idts"},
		1:    {Handler: pageOffset + gEarly + 9, Bits: intrGateBits, Source: SourceEarlyStub},
		31:   {Handler: pageOffset + gEarly + 9*31, Bits: intrGateBits, Source: SourceEarlyStub},
		0x21: {Handler: pageOffset + gIRQ + 8, Bits: intrGateBits, Source: SourceIRQStub},
		0xeb: {Handler: pageOffset + gIRQ + 8*(0xeb-0x20), Bits: intrGateBits, Source: SourceIRQStub},
		0xec: {Handler: pageOffset + gSpurious, Bits: intrGateBits, Source: SourceSpuriousStub, Dynamic: true},
		0xfd: {Handler: pageOffset + gSysvecA, Bits: 0x8e00, Source: "apic_idts"},
	}
	for v, w := range want {
		if got := ref.Vectors[v]; got != w {
			t.Errorf("vector %#x: %+v, want %+v", v, got, w)
		}
	}
	if len(ref.Notes) != 2 { // early_idts, early_pf_idts absent: silently; none else
		t.Logf("notes: %q", ref.Notes)
	}
	if ref.Dispatch == nil || ref.Dispatch.Addr != pageOffset+gDispatch || len(ref.Dispatch.Code) != gFentry-gDispatch {
		t.Fatalf("dispatch: %+v", ref.Dispatch)
	}
}

func TestIDTExact(t *testing.T) {
	k, phys, ref := gateKernel(t)
	idt, err := k.IDTExact(ref, pageOffset+gIDT, 0xfff)
	if err != nil || len(idt) != 256 {
		t.Fatalf("%d gates, %v", len(idt), err)
	}
	for _, g := range idt {
		if !g.OK {
			t.Fatalf("clean vector %d: %+v", g.Vector, g)
		}
	}
	bad := func(v int) IDTEntry {
		t.Helper()
		idt, err := k.IDTExact(ref, pageOffset+gIDT, 0xfff)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range idt {
			if g.Vector == v {
				return g
			}
		}
		t.Fatalf("vector %d missing", v)
		return IDTEntry{}
	}
	// Moved inside its own handler: still in text, a finding now.
	putGate(phys, 3, pageOffset+gInt3+0x10, 0xee00)
	if g := bad(3); g.OK || g.Symbol != "asm_exc_int3+0x10" || g.Expected != "asm_exc_int3" || !g.InText || g.Region != "kernel text" {
		t.Fatalf("moved gate: %+v", g)
	}
	// The old rule passes it: the reason for this work.
	if old, _ := k.IDT(pageOffset+gIDT, 0xfff); !old[3].InText {
		t.Fatal("fixture: the moved gate should lie in text")
	}
	putGate(phys, 3, pageOffset+gInt3, 0xee00)
	// Attributes: vector 0 made callable from user mode (DPL 3).
	putGate(phys, 0, pageOffset+gDivide, 0xee00)
	if g := bad(0); g.OK || !strings.Contains(g.Reason, "DPL 3") {
		t.Fatalf("DPL change: %+v", g)
	}
	putGate(phys, 0, pageOffset+gDivide, 0x8e00)
	// A run-time allocated system vector (KVM's async PF) is accepted at an
	// asm_sysvec_* function start, not in its middle.
	putGate(phys, 0xf3, pageOffset+gSysvecKVM, intrGateBits)
	if g := bad(0xf3); !g.OK {
		t.Fatalf("alloc_intr_gate vector: %+v", g)
	}
	putGate(phys, 0xf3, pageOffset+gSysvecKVM+4, intrGateBits)
	if g := bad(0xf3); g.OK {
		t.Fatalf("middle of a sysvec handler accepted: %+v", g)
	}
	// An external vector pointed outside the image: the region is named.
	putGate(phys, 0x30, pageOffset+0x9000, intrGateBits)
	if g := bad(0x30); g.OK || g.InText || !strings.Contains(g.Region, "direct map") || g.Expected != fmt.Sprintf("irq_entries_start+%#x", 8*0x10) {
		t.Fatalf("outside: %+v", g)
	}
	// Without a reference: the fallback rule (function start in text).
	if g := bad(0x30); g.OK {
		t.Fatal("unreachable")
	}
	idt, _ = k.IDTExact(nil, pageOffset+gIDT, 0xfff)
	if !idt[3].OK || idt[3].Source != FallbackRule {
		t.Fatalf("fallback: %+v", idt[3])
	}
	putGate(phys, 3, pageOffset+gInt3+0x10, 0xee00)
	if idt, _ = k.IDTExact(nil, pageOffset+gIDT, 0xfff); idt[3].OK {
		t.Fatalf("fallback accepted a handler's middle: %+v", idt[3])
	}
}

func TestSyscallsExact(t *testing.T) {
	k, phys, _ := gateKernel(t)
	sc, err := k.Syscalls()
	if err != nil || len(sc) != 2 || sc[0].Hooked || sc[1].Hooked {
		t.Fatalf("%+v %v", sc, err)
	}
	// Into the middle of the right handler.
	put64(phys, gTable+8, pageOffset+gSysB+0x10)
	sc, _ = k.Syscalls()
	if s := sc[1]; !s.Hooked || s.Symbol != "__x64_sys_b+0x10" || s.Expected != "__x64_sys_b" || s.Region != "kernel text" {
		t.Fatalf("%+v", s)
	}
	put64(phys, gTable+8, pageOffset+0x9000)
	sc, _ = k.Syscalls()
	if s := sc[1]; !s.Hooked || !strings.Contains(s.Symbol, "direct map") {
		t.Fatalf("%+v", s)
	}
}

func TestCheckDispatch(t *testing.T) {
	k, phys, ref := gateKernel(t)
	st, err := k.CheckDispatch(ref)
	if err != nil || !st.Present || len(st.Changes) != 0 || st.LiveSHA256 != st.ImageSHA256 {
		t.Fatalf("%+v %v", st, err)
	}
	// What the kernel itself does: ftrace NOPs its call site, the return
	// thunk becomes ret; int3.
	copy(phys[gDispatch:], nop5)
	copy(phys[gDispatch+16:], []byte{0xc3, 0xcc, 0xcc, 0xcc, 0xcc})
	if st, _ = k.CheckDispatch(ref); len(st.Changes) != 0 || st.LegalSites != 2 || st.LiveSHA256 != st.ImageSHA256 {
		t.Fatalf("legal sites: %+v", st)
	}
	// Tracing on: a call to ftrace_caller is legal, to anything else not.
	phys[gDispatch] = 0xe8
	rel32(phys, gDispatch, gFtrace)
	if st, _ = k.CheckDispatch(ref); len(st.Changes) != 0 {
		t.Fatalf("ftrace call: %+v", st)
	}
	rel32(phys, gDispatch, gSysB)
	if st, _ = k.CheckDispatch(ref); len(st.Changes) != 1 || st.Changes[0].Where != "x64_sys_call+0x0" || st.Changes[0].Site != "ftrace" {
		t.Fatalf("ftrace site hijacked: %+v", st)
	}
	rel32(phys, gDispatch, gFentry)
	// One byte of the dispatch: the tail jump retargeted.
	phys[gDispatch+12]++
	if st, _ = k.CheckDispatch(ref); len(st.Changes) != 1 || st.Changes[0].Where != "x64_sys_call+0xc" || st.LiveSHA256 == st.ImageSHA256 {
		t.Fatalf("patch: %+v", st)
	}
	if st, _ = k.CheckDispatch(&GateRef{}); st.Present || !strings.Contains(st.Note, "not present") {
		t.Fatalf("no x64_sys_call: %+v", st)
	}
}

// FuzzDeriveGates derives a reference from hostile image bytes and checks a
// hostile IDT and dispatcher with it: errors are fine, panics are not.
func FuzzDeriveGates(f *testing.F) {
	f.Add(gateImage()[:gEnd], uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, shift uint16) {
		if len(b) < 64 || len(b) > 1<<17 {
			return
		}
		img := make([]byte, gEnd+0x1000)
		copy(img, b)
		syms := gateSyms()
		for i := range syms { // move symbols around
			syms[i].addr += uint64(shift) % 64 * uint64(i%3)
		}
		ref, err := DeriveGates(imageOf(img), syms)
		if err != nil {
			return
		}
		k := testKernel(img, map[string]uint64{"_stext": pageOffset + gText, "_etext": pageOffset + gEText})
		k.L.Nearest = syms.nearest()
		k.IDTExact(ref, pageOffset+gIDT, 0xfff)
		k.CheckDispatch(ref)
	})
}

// BenchmarkIDTExact is the per-scan cost of checking all 256 gates.
func BenchmarkIDTExact(b *testing.B) {
	k, _, ref := gateKernel(b)
	for i := 0; i < b.N; i++ {
		if _, err := k.IDTExact(ref, pageOffset+gIDT, 0xfff); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckDispatch is the per-scan cost of comparing x64_sys_call.
func BenchmarkCheckDispatch(b *testing.B) {
	k, _, ref := gateKernel(b)
	for i := 0; i < b.N; i++ {
		if _, err := k.CheckDispatch(ref); err != nil {
			b.Fatal(err)
		}
	}
}
