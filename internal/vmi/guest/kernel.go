// Package guest rebuilds operating-system meaning from a running Linux
// guest's memory: it attaches to the kernel (VMCOREINFO verified against the
// vCPU's own page tables, the KASLR slide, phys_base, the kernel's top-level
// page table) and reads kernel virtual memory with bounded reads, so the
// views (processes, modules, syscall table, IDT, text hashes) can walk the
// kernel's structures with offsets from a BTF-derived profile.
//
// Guest memory is hostile and changes under us: every walk is bounded in
// steps, bytes and time, pointers are checked before they are followed, and
// a poisoned structure yields an error or a finding, never a hang.
package guest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/vmcoreinfo"
	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

// Layout is what the views need from a kernel build: link-time symbol
// addresses and structure member offsets (bytes). The profile package
// derives it from the kernel image (kallsyms and BTF).
type Layout struct {
	BuildID string
	Release string
	Symbols map[string]uint64 // link-time addresses
	Offsets map[string]uint64 // "task_struct.tasks" → byte offset
	Sizes   map[string]uint64 // "task_struct" → bytes
	// Nearest names the symbol containing a link-time address.
	Nearest func(addr uint64) (name string, off uint64, ok bool)
	// ImageSyscalls is sys_call_table as the kernel image holds it
	// (link-time handler addresses), the reference for hook detection.
	ImageSyscalls []uint64
	// JumpSites are the static-key patch sites in text (link-time,
	// sorted by address).
	JumpSites []JumpSite
	// Lookup finds any symbol's link-time address (the full table).
	Lookup func(name string) (uint64, bool)
	// NamesAt lists every symbol at exactly a link-time address.
	NamesAt func(addr uint64) []string
}

// Kernel is an attached guest kernel.
type Kernel struct {
	Mem      mem.Physical
	L        *Layout
	Info     *vmcoreinfo.Info
	Slide    uint64 // KASLR: runtime = link + Slide
	PhysBase uint64
	PGD      uint64 // physical address of init_top_pgt
	LA57     bool
	// PageOffset is the direct map base (page_offset_base).
	PageOffset uint64
	InfoGPA    uint64
}

// Attach finds and verifies the running kernel and checks that the layout
// was derived from the same build.
func Attach(m mem.Physical, l *Layout, regs []hv.Registers) (*Kernel, error) {
	if len(regs) == 0 {
		return nil, errors.New("no vCPU registers")
	}
	la57 := regs[0].LA57()
	// The VMCOREINFO note is verified through a vCPU's page tables. A vCPU
	// in user mode under page-table isolation (PTI) runs on the user half
	// of its PGD pair, which maps almost no kernel: the kernel half is the
	// same 8 KiB pair with bit 12 clear. Each vCPU's CR3 is tried as is,
	// then its kernel half; the checks against phys_base are the same.
	var (
		info *vmcoreinfo.Info
		gpa  uint64
		err  error
	)
	for _, r := range regs {
		for _, cr3 := range []uint64{r.CR3, r.CR3 &^ (1 << 12)} {
			if info, gpa, err = vmcoreinfo.FindVerified(m, cr3, la57); err == nil {
				break
			}
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("find the kernel: %w", err)
	}
	if l.BuildID != "" && info.BuildID != "" && info.BuildID != l.BuildID {
		return nil, fmt.Errorf("the guest runs kernel build %s (%s), the profile is for build %s", info.BuildID, info.OSRelease, l.BuildID)
	}
	k := &Kernel{Mem: m, L: l, Info: info, Slide: info.KernelOffset(), PhysBase: uint64(info.PhysBase()), LA57: la57, InfoGPA: gpa}
	pgdVA, ok := info.Symbol("init_top_pgt")
	if !ok {
		return nil, errors.New("VMCOREINFO has no SYMBOL(init_top_pgt)")
	}
	if k.PGD, err = x86.KernelTextToPhys(pgdVA, k.PhysBase); err != nil {
		return nil, fmt.Errorf("init_top_pgt: %w", err)
	}
	// The slide VMCOREINFO states must agree with the profile's link-time
	// address of a symbol it names.
	if st, ok := info.Symbol("_stext"); ok {
		if link, ok := l.Symbols["_stext"]; ok && link+k.Slide != st {
			return nil, fmt.Errorf("KERNELOFFSET %#x does not relocate _stext (%#x) to %#x", k.Slide, link, st)
		}
	}
	pob, err := k.Sym("page_offset_base")
	if err != nil {
		return nil, err
	}
	if k.PageOffset, err = k.U64(pob); err != nil {
		return nil, fmt.Errorf("page_offset_base: %w", err)
	}
	if !x86.Canonical(k.PageOffset, la57) || k.PageOffset < 0xff00000000000000 {
		return nil, fmt.Errorf("page_offset_base %#x is not a kernel address", k.PageOffset)
	}
	return k, nil
}

// Sym is a symbol's runtime address.
func (k *Kernel) Sym(name string) (uint64, error) {
	a, ok := k.L.Symbols[name]
	if !ok && k.L.Lookup != nil {
		a, ok = k.L.Lookup(name)
	}
	if !ok {
		return 0, fmt.Errorf("symbol %s not in the profile", name)
	}
	return a + k.Slide, nil
}

// Off is a member offset from the profile.
func (k *Kernel) Off(path string) (uint64, error) {
	o, ok := k.L.Offsets[path]
	if !ok {
		return 0, fmt.Errorf("offset of %s not in the profile", path)
	}
	return o, nil
}

// Name names a runtime kernel address ("sym+0x10"), "" if unknown.
func (k *Kernel) Name(addr uint64) string {
	if k.L.Nearest == nil || addr < k.Slide {
		return ""
	}
	name, off, ok := k.L.Nearest(addr - k.Slide)
	if !ok {
		return ""
	}
	if off == 0 {
		return name
	}
	return fmt.Sprintf("%s+%#x", name, off)
}

// phys translates a kernel virtual address: the kernel image and the
// direct map by arithmetic, anything else (vmalloc, modules) by walking
// the kernel's own page tables.
func (k *Kernel) phys(va uint64) (uint64, uint64, error) {
	if va >= x86.KernelTextStart && va < x86.KernelTextEnd {
		pa, err := x86.KernelTextToPhys(va, k.PhysBase)
		if err == nil && pa < k.Mem.Size() {
			return pa, 4096 - va&4095, nil
		}
	}
	if va >= k.PageOffset && va-k.PageOffset < k.Mem.Size() {
		return va - k.PageOffset, 4096 - va&4095, nil
	}
	pa, size, err := x86.Walk(k.Mem, k.PGD, k.LA57, va)
	if err != nil {
		return 0, 0, err
	}
	return pa, size - (va & (size - 1)), nil
}

// Phys is the guest-physical address of a kernel virtual address.
func (k *Kernel) Phys(va uint64) (uint64, error) {
	pa, _, err := k.phys(va)
	return pa, err
}

// MaxRead bounds one Read.
const MaxRead = 16 << 20

// Read copies kernel virtual memory at va into p.
func (k *Kernel) Read(va uint64, p []byte) error {
	if len(p) > MaxRead {
		return fmt.Errorf("read of %d bytes at %#x exceeds %d", len(p), va, MaxRead)
	}
	for done := 0; done < len(p); {
		pa, room, err := k.phys(va + uint64(done))
		if err != nil {
			return fmt.Errorf("read %#x: %w", va+uint64(done), err)
		}
		n := min(uint64(len(p)-done), room)
		if err := k.Mem.ReadPhys(p[done:done+int(n)], pa); err != nil {
			return err
		}
		done += int(n)
	}
	return nil
}

// U64 reads a little-endian 64-bit value.
func (k *Kernel) U64(va uint64) (uint64, error) {
	var b [8]byte
	if err := k.Read(va, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// U32 reads a little-endian 32-bit value.
func (k *Kernel) U32(va uint64) (uint32, error) {
	var b [4]byte
	if err := k.Read(va, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// Budget bounds one walk: steps and wall time.
type Budget struct {
	Steps    int
	Deadline time.Time
}

// NewBudget allows steps steps for at most d.
func NewBudget(steps int, d time.Duration) *Budget {
	return &Budget{Steps: steps, Deadline: time.Now().Add(d)}
}

// ErrBudget says a walk was cut short.
var ErrBudget = errors.New("walk exceeded its step or time budget")

// Take consumes one step.
func (b *Budget) Take() error {
	b.Steps--
	if b.Steps < 0 || (b.Steps%256 == 0 && time.Now().After(b.Deadline)) {
		return ErrBudget
	}
	return nil
}

// systemRunning is SYSTEM_RUNNING of the kernel's enum system_states
// (BOOTING, SCHEDULING, FREEING_INITMEM, RUNNING, ...), stable since 5.x.
const systemRunning = 3

// Booted reports whether the guest kernel has finished its own start-up:
// system_state reached SYSTEM_RUNNING, so init memory is freed and
// read-only data is write-protected (mark_readonly runs just before).
// Until then kernel text and read-only data legitimately change (static
// keys, __ro_after_init), so no baseline may be taken. The value is the
// guest's to set: a guest that never reports running gets no baseline and
// says so in every answer, it is not silently skipped.
func (k *Kernel) Booted() (bool, uint32, error) {
	addr, err := k.Sym("system_state")
	if err != nil {
		return false, 0, err
	}
	st, err := k.U32(addr)
	if err != nil {
		return false, 0, err
	}
	return st >= systemRunning, st, nil
}
