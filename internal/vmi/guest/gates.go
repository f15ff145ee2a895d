package guest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Exact gates: what the kernel image says every IDT vector and the syscall
// dispatcher (x64_sys_call) must hold, and the live comparison. "Lies in
// kernel text" is not enough: a gate moved into the middle of its own
// handler lies in text too.
//
// The IDT's reference comes from the tables arch/x86/kernel/idt.c installs
// at boot (early_idts, early_pf_idts, def_idts, ia32_idt, apic_idts: init
// data, freed after boot, so read from the image file, never from the
// guest) and from the stubs the remaining vectors point to:
// early_idt_handler_array (exceptions no table names), irq_entries_start
// (external interrupts) and spurious_entries_start (unused system vectors).

// ImageSymbols is the kernel image's symbol table (link-time addresses).
type ImageSymbols interface {
	Lookup(name string) (uint64, bool)
	// Next is the address of the first symbol above addr.
	Next(addr uint64) (uint64, bool)
}

// ImageBytes returns n bytes of the image at link-time address va, or nil
// where the image does not hold them (the caller owns nothing: the slice
// aliases the image and must not be modified).
type ImageBytes func(va uint64, n int) []byte

// Gate sources: where an expected handler came from.
const (
	SourceEarlyStub    = "early_idt_handler_array"
	SourceIRQStub      = "irq_entries_start"
	SourceSpuriousStub = "spurious_entries_start"
)

// idtTables are the idt_data tables in the order the kernel installs them
// (a later one overrides an earlier one for the same vector).
var idtTables = []string{"early_idts", "early_pf_idts", "def_idts", "ia32_idt", "apic_idts"}

// struct idt_data (arch/x86/include/asm/desc_defs.h, unchanged since 4.14):
// u32 vector, u32 segment, u16 bits (ist:3 zero:5 type:5 dpl:2 p:1), 6
// bytes of padding, void *addr.
const (
	idtDataSize  = 24
	kernelCS     = 0x10 // __KERNEL_CS
	gatePresent  = 0x8000
	intrGateBits = 0x8e00 // present, DPL 0, 64-bit interrupt gate, no IST
	maxStubBytes = 32     // the longest irq/early stub (IDT_ALIGN with IBT)
	// MaxDispatchBytes bounds the x64_sys_call read (6.1: 4.7 KiB).
	MaxDispatchBytes = 64 << 10
)

// ExpectedGate is one vector as the image defines it.
type ExpectedGate struct {
	Handler uint64 // link-time address; 0: the image does not define it
	Bits    uint16 // idt_bits (type, DPL, IST, present)
	Source  string // the table or stub array it came from
	// Dynamic marks a system vector the kernel may re-allocate at run time
	// (alloc_intr_gate: KVM, Hyper-V, Xen callbacks), for which the start
	// of an asm_sysvec_* function is accepted as well.
	Dynamic bool
}

// GateRef is the image's reference for the gates. Build it with
// DeriveGates; it is read-only afterwards and safe to share.
type GateRef struct {
	Vectors [256]ExpectedGate
	// Dispatch is x64_sys_call's code as the image holds it; nil when the
	// image has no x64_sys_call (kernels dispatching through the table).
	Dispatch *DispatchRef
	// Notes say what could not be derived (the vectors concerned fall back
	// to the function-start rule).
	Notes []string
}

// DispatchRef is the syscall dispatch function's image code.
type DispatchRef struct {
	Addr   uint64   // link-time
	Code   []byte   // up to the next symbol, at most MaxDispatchBytes
	SHA    string   // hex SHA-256 of Code
	Fentry uint64   // __fentry__: the image's ftrace call sites target it
	Ftrace []uint64 // ftrace_caller, ftrace_regs_caller: what a traced site calls
	Return []uint64 // return thunks a `jmp __x86_return_thunk` may be pointed to
}

// DeriveGates reads the gate reference from a kernel image. Missing
// tables are notes, not errors: the vectors concerned fall back.
func DeriveGates(img ImageBytes, syms ImageSymbols) (*GateRef, error) {
	stext, ok1 := syms.Lookup("_stext")
	etext, ok2 := syms.Lookup("_etext")
	if !ok1 || !ok2 || etext <= stext || etext-stext > 1<<30 {
		return nil, fmt.Errorf("gates: the image has no plausible _stext/_etext")
	}
	sinit, _ := syms.Lookup("_sinittext")
	einit, _ := syms.Lookup("_einittext")
	inText := func(a uint64) bool {
		return a >= stext && a < etext || sinit != 0 && a >= sinit && a < einit
	}
	r := &GateRef{}
	set := [256]bool{}
	for _, name := range idtTables {
		n, err := r.readTable(img, syms, name, inText, &set)
		if err != nil {
			r.Notes = append(r.Notes, err.Error())
		} else if n == 0 && name != "ia32_idt" {
			r.Notes = append(r.Notes, name+" holds no gate")
		}
	}
	// Exceptions no table names keep the early handler the kernel set for
	// all 32 before any table (idt_setup_early_handler).
	if err := r.stubs(img, syms, SourceEarlyStub, 0, 32, &set, false); err != nil {
		r.Notes = append(r.Notes, err.Error())
	}
	// External vectors from 0x20 up to the first system vector; the stub
	// count says where system vectors start.
	first, err := r.stubArray(img, syms, SourceIRQStub, 0x20, &set)
	if err != nil {
		r.Notes = append(r.Notes, err.Error())
	} else if err := r.stubs(img, syms, SourceSpuriousStub, first, 256, &set, true); err != nil {
		r.Notes = append(r.Notes, err.Error())
	}
	r.Dispatch = deriveDispatch(img, syms)
	return r, nil
}

// readTable applies one idt_data table: entries up to the next symbol,
// ending early at the first that is not a present kernel-CS gate into
// text (the arrays have no terminator; the next object follows).
func (r *GateRef) readTable(img ImageBytes, syms ImageSymbols, name string, inText func(uint64) bool, set *[256]bool) (int, error) {
	start, ok := syms.Lookup(name)
	if !ok {
		return 0, nil
	}
	end := start + 256*idtDataSize
	if next, ok := syms.Next(start); ok && next > start && next < end {
		end = next
	}
	n := 0
	for a := start; a+idtDataSize <= end; a += idtDataSize {
		e := img(a, idtDataSize)
		if e == nil {
			return n, fmt.Errorf("%s: entry at %#x is not in the image", name, a)
		}
		vec := binary.LittleEndian.Uint32(e[0:])
		seg := binary.LittleEndian.Uint32(e[4:])
		bits := binary.LittleEndian.Uint16(e[8:])
		h := binary.LittleEndian.Uint64(e[16:])
		if vec > 255 || seg != kernelCS || bits&gatePresent == 0 || !inText(h) {
			break
		}
		r.Vectors[vec] = ExpectedGate{Handler: h, Bits: bits, Source: name}
		set[vec] = true
		n++
	}
	return n, nil
}

// stubAt reports whether the stub at va pushes vector v (`6a v` followed by
// a jump, after an optional ENDBR or error-code push).
func stubAt(img ImageBytes, va uint64, v int) bool {
	b := img(va, 12)
	if b == nil {
		return false
	}
	for k := 0; k <= 8; k += 2 {
		if b[k] == 0x6a && b[k+1] == byte(v) && (b[k+2] == 0xe9 || b[k+2] == 0xeb) {
			return true
		}
	}
	return false
}

// stubStride finds the stub spacing (8 or 9 bytes, 16 or 13 with IBT's
// ENDBR, 32 as a margin) from the first stubs' pushed vectors.
func stubStride(img ImageBytes, base uint64, first, count int) (uint64, bool) {
	for _, s := range []uint64{8, 9, 13, 16, 32} {
		ok := true
		for i := 0; i < min(count, 4) && ok; i++ {
			ok = stubAt(img, base+uint64(i)*s, first+i)
		}
		if ok {
			return s, true
		}
	}
	return 0, false
}

// stubs points vectors [from, to) that no table set at the stub array
// name, each stub checked to push its own vector.
func (r *GateRef) stubs(img ImageBytes, syms ImageSymbols, name string, from, to int, set *[256]bool, dynamic bool) error {
	base, ok := syms.Lookup(name)
	if !ok {
		return fmt.Errorf("%s not in the image", name)
	}
	if from >= to {
		return nil
	}
	stride, ok := stubStride(img, base, from, to-from)
	if !ok {
		return fmt.Errorf("%s: no stub pushing vector %d", name, from)
	}
	for v := from; v < to; v++ {
		if set[v] {
			continue
		}
		a := base + uint64(v-from)*stride
		if !stubAt(img, a, v) {
			return fmt.Errorf("%s: the stub at %#x does not push vector %d", name, a, v)
		}
		r.Vectors[v] = ExpectedGate{Handler: a, Bits: intrGateBits, Source: name, Dynamic: dynamic}
		set[v] = true
	}
	return nil
}

// stubArray fills the external vectors from irq_entries_start and returns
// the first vector past its stubs (FIRST_SYSTEM_VECTOR), found by counting
// the stubs up to the next symbol.
func (r *GateRef) stubArray(img ImageBytes, syms ImageSymbols, name string, from int, set *[256]bool) (int, error) {
	base, ok := syms.Lookup(name)
	if !ok {
		return 0, fmt.Errorf("%s not in the image", name)
	}
	stride, ok := stubStride(img, base, from, 4)
	if !ok {
		return 0, fmt.Errorf("%s: no stub pushing vector %d", name, from)
	}
	end, ok := syms.Next(base)
	if !ok || end <= base {
		return 0, fmt.Errorf("%s: no symbol after it bounds the stubs", name)
	}
	n := int(min((end-base)/stride, uint64(256-from)))
	for i := 0; i < n; i++ {
		if !stubAt(img, base+uint64(i)*stride, from+i) {
			n = i
			break
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: no stubs", name)
	}
	// The stubs for set vectors exist too (they are never installed).
	for v := from; v < from+n; v++ {
		if !set[v] {
			r.Vectors[v] = ExpectedGate{Handler: base + uint64(v-from)*stride, Bits: intrGateBits, Source: name}
			set[v] = true
		}
	}
	return from + n, nil
}

// deriveDispatch reads x64_sys_call's image code, nil without one.
func deriveDispatch(img ImageBytes, syms ImageSymbols) *DispatchRef {
	a, ok := syms.Lookup("x64_sys_call")
	if !ok {
		return nil
	}
	n := uint64(MaxDispatchBytes)
	if next, ok := syms.Next(a); ok && next > a {
		n = min(n, next-a)
	}
	code := img(a, int(n))
	if code == nil {
		return nil
	}
	d := &DispatchRef{Addr: a, Code: append([]byte(nil), code...)}
	sum := sha256.Sum256(d.Code)
	d.SHA = hex.EncodeToString(sum[:])
	d.Fentry, _ = syms.Lookup("__fentry__")
	for _, s := range []string{"ftrace_caller", "ftrace_regs_caller"} {
		if t, ok := syms.Lookup(s); ok {
			d.Ftrace = append(d.Ftrace, t)
		}
	}
	for _, s := range []string{"__x86_return_thunk", "retbleed_return_thunk", "srso_return_thunk", "srso_alias_return_thunk", "zen_untrain_ret", "entry_untrain_ret"} {
		if t, ok := syms.Lookup(s); ok {
			d.Return = append(d.Return, t)
		}
	}
	return d
}

// GateCheck is the verdict on one live gate.
type GateCheck struct {
	OK       bool   `json:"ok"`
	Expected string `json:"expected,omitempty"` // symbol+offset the image defines
	Source   string `json:"source,omitempty"`   // which table or stub array, or the fallback rule
	Reason   string `json:"reason,omitempty"`   // why it is not OK
	Region   string `json:"region,omitempty"`   // what a bad handler points into
}

// FallbackRule is the rule for vectors whose handler the image does not
// define.
const FallbackRule = "fallback: the image defines no handler for this vector; it must be a function start in kernel text"

// checkGate compares a live gate (handler, idt_bits, selector) with the
// reference. A nil ref applies the fallback rule to every vector.
func (k *Kernel) checkGate(ref *GateRef, v int, h uint64, bits, seg uint16, inImage bool) GateCheck {
	var e ExpectedGate
	if ref != nil {
		e = ref.Vectors[v]
	}
	if e.Handler == 0 {
		c := GateCheck{Source: FallbackRule}
		name := k.Name(h)
		switch {
		case !inImage:
			c.Reason = "outside kernel text"
		case name == "" || strings.Contains(name, "+"):
			c.Reason = "not a function start"
		default:
			c.OK = true
		}
		return c
	}
	want := e.Handler + k.Slide
	c := GateCheck{Expected: k.Name(want), Source: e.Source}
	if c.Expected == "" {
		c.Expected = fmt.Sprintf("%#x", want)
	}
	switch {
	case h == want && bits == e.Bits && seg == kernelCS:
		c.OK = true
	case h == want && seg != kernelCS:
		c.Reason = fmt.Sprintf("segment selector %#x, the image's is %#x", seg, kernelCS)
	case h == want:
		c.Reason = fmt.Sprintf("gate attributes %#04x (%s), the image's are %#04x (%s)", bits, gateBits(bits), e.Bits, gateBits(e.Bits))
	case e.Dynamic && inImage && bits == intrGateBits && seg == kernelCS && strings.HasPrefix(k.Name(h), "asm_sysvec_") && !strings.Contains(k.Name(h), "+"):
		// alloc_intr_gate at run time (hypervisor callbacks).
		c.OK, c.Source = true, e.Source+"; or, allocated at run time, the start of an asm_sysvec_* handler"
	default:
		c.Reason = "handler differs from the image's"
		if !inImage {
			c.Reason += ", outside kernel text"
		}
	}
	return c
}

// gateBits spells idt_bits.
func gateBits(b uint16) string {
	kind := "interrupt"
	switch (b >> 8) & 0x1f {
	case 0xe:
	case 0xf:
		kind = "trap"
	default:
		kind = fmt.Sprintf("type %#x", (b>>8)&0x1f)
	}
	return fmt.Sprintf("%s gate, DPL %d, IST %d, present %v", kind, (b>>13)&3, b&7, b&gatePresent != 0)
}

// Region names what a kernel address points into: kernel text, init text,
// the rest of the image, a module on the module list (with the offset),
// the direct map, or unknown memory.
func (k *Kernel) Region(a uint64) string { return k.regionNamer()(a) }

// regionNamer returns a Region function that walks the module list at most
// once, when an address outside the image first needs it.
func (k *Kernel) regionNamer() func(uint64) string {
	var mods []Module
	walked := false
	return func(a uint64) string {
		if lo, hi, err := k.textRange(); err == nil && a >= lo && a < hi {
			return "kernel text"
		}
		if ilo, err := k.Sym("_sinittext"); err == nil {
			if ihi, err := k.Sym("_einittext"); err == nil && a >= ilo && a < ihi {
				return "kernel init text (freed after boot)"
			}
		}
		if lo, err := k.Sym("_text"); err == nil {
			if hi, err := k.Sym("_end"); err == nil && a >= lo && a < hi {
				return "kernel image data"
			}
		}
		if !walked {
			walked = true
			mods, _ = k.modules() // one walk, no retries: only names a region
		}
		for _, m := range mods {
			if m.Size > 0 && a >= m.Base && a-m.Base < m.Size {
				return fmt.Sprintf("module %s (+%#x)", m.Name, a-m.Base)
			}
		}
		switch {
		case a < 0x0000800000000000:
			return "user space"
		case a < 0xffff800000000000:
			return "non-canonical address"
		case k.PageOffset != 0 && a >= k.PageOffset && a-k.PageOffset < k.Mem.Size():
			return "direct map (kernel heap), no module"
		}
		return "unknown kernel memory, no module on the module list"
	}
}

// DispatchStatus is the verdict on the syscall dispatch function.
type DispatchStatus struct {
	Present bool   `json:"present"` // the image has x64_sys_call
	Symbol  string `json:"symbol"`
	Addr    uint64 `json:"addr,omitempty"`
	Size    int    `json:"size,omitempty"`
	// ImageSHA256 hashes the image's bytes; LiveSHA256 the guest's, with
	// each legal patch site put back to its image bytes (equal when clean).
	ImageSHA256 string           `json:"image_sha256,omitempty"`
	LiveSHA256  string           `json:"live_sha256,omitempty"`
	LegalSites  int              `json:"legal_sites"` // sites the kernel itself rewrote
	Changes     []DispatchChange `json:"changes,omitempty"`
	Note        string           `json:"note,omitempty"`
}

// DispatchChange is one changed byte run.
type DispatchChange struct {
	Where string `json:"where"`          // x64_sys_call+0x..
	Site  string `json:"site,omitempty"` // the patch site kind, when a site holds what it may not
	Image string `json:"image"`
	Live  string `json:"live"`
}

// maxDispatchChanges bounds the runs named in one status.
const maxDispatchChanges = 16

// CheckDispatch compares x64_sys_call with the image. Legal differences:
// static-key sites (checked by BadJumpSites), the ftrace call site (the
// image's `call __fentry__` is a 5-byte NOP or a call to ftrace_caller at
// run time), return-thunk jumps (`ret; int3...` or a jump to another return
// thunk), and 4-byte absolute addresses moved by the KASLR slide.
func (k *Kernel) CheckDispatch(ref *GateRef) (*DispatchStatus, error) {
	if ref == nil || ref.Dispatch == nil {
		return &DispatchStatus{Symbol: "x64_sys_call", Note: "not present: this kernel dispatches syscalls through sys_call_table"}, nil
	}
	d := ref.Dispatch
	st := &DispatchStatus{Present: true, Symbol: "x64_sys_call", Addr: d.Addr + k.Slide, Size: len(d.Code), ImageSHA256: d.SHA}
	live := make([]byte, len(d.Code))
	if err := k.Read(st.Addr, live); err != nil {
		return nil, fmt.Errorf("x64_sys_call: %w", err)
	}
	norm := append([]byte(nil), live...)
	for i := 0; i < len(live); {
		if live[i] == d.Code[i] {
			i++
			continue
		}
		j, n, kind, legal := k.legalSite(d, live, i)
		if legal {
			copy(norm[j:j+n], d.Code[j:j+n])
			st.LegalSites++
			i = j + n
			continue
		}
		end := i + 1
		if kind != "" { // a patch site holding something it may not
			i, end = j, j+n
		}
		for end < len(live) && end-i < 16 && live[end] != d.Code[end] {
			end++
		}
		if len(st.Changes) < maxDispatchChanges {
			st.Changes = append(st.Changes, DispatchChange{Where: fmt.Sprintf("x64_sys_call+%#x", i), Site: kind,
				Image: fmt.Sprintf("% x", d.Code[i:end]), Live: fmt.Sprintf("% x", live[i:end])})
		}
		i = end
	}
	sum := sha256.Sum256(norm)
	st.LiveSHA256 = hex.EncodeToString(sum[:])
	return st, nil
}

// legalSite finds the patch site covering offset i of the function: its
// start, length and kind, and whether the live bytes are legal for it.
func (k *Kernel) legalSite(d *DispatchRef, live []byte, i int) (int, int, string, bool) {
	img := d.Code
	rel := func(b []byte, j int) uint64 { // target of a rel32 call/jmp at j (link-time)
		return d.Addr + uint64(j) + 5 + uint64(int64(int32(binary.LittleEndian.Uint32(b[j+1:]))))
	}
	in := func(a uint64, set []uint64) bool {
		for _, s := range set {
			if a == s {
				return true
			}
		}
		return false
	}
	// Static-key sites.
	sites := k.L.JumpSites
	at := d.Addr + uint64(i)
	if x := sort.Search(len(sites), func(x int) bool { return sites[x].Code+uint64(sites[x].Len) > at }); x < len(sites) && sites[x].Code <= at {
		j := int(sites[x].Code - d.Addr)
		if j >= 0 && j+int(sites[x].Len) <= len(img) {
			return j, int(sites[x].Len), "static key", true // BadJumpSites checks its bytes
		}
	}
	for j := max(0, i-4); j <= i && j+5 <= len(img); j++ {
		// ftrace: call __fentry__ in the image.
		if img[j] == 0xe8 && d.Fentry != 0 && rel(img, j) == d.Fentry {
			ok := string(live[j:j+5]) == string(nop5) || live[j] == 0xe8 && in(rel(live, j), d.Ftrace)
			return j, 5, "ftrace", ok
		}
		// Return thunk: jmp __x86_return_thunk in the image.
		if img[j] == 0xe9 && in(rel(img, j), d.Return) {
			ok := string(live[j:j+5]) == "\xc3\xcc\xcc\xcc\xcc" || live[j] == 0xe9 && in(rel(live, j), d.Return)
			return j, 5, "return thunk", ok
		}
	}
	// A sign-extended 32-bit kernel address relocated by the slide.
	for j := max(0, i-3); j <= i && j+4 <= len(img); j++ {
		v := binary.LittleEndian.Uint32(img[j:])
		if v >= 0x80000000 && binary.LittleEndian.Uint32(live[j:]) == v+uint32(k.Slide) && k.Slide != 0 {
			return j, 4, "relocation", true
		}
	}
	return 0, 0, "", false
}
