package x86

import "fmt"

// Paging constants of x86-64.
const (
	// AddrMask selects the physical address bits 51:12 of CR3 and of a
	// page-table entry that points at a table or a 4 KiB page.
	AddrMask uint64 = 0x000ffffffffff000

	PageSize4K uint64 = 1 << 12
	PageSize2M uint64 = 1 << 21
	PageSize1G uint64 = 1 << 30

	// MaxPhysAddr is one past the largest physical address paging can
	// express (52 bits); no translation or helper returns one beyond it.
	MaxPhysAddr uint64 = 1 << 52
)

// Page-table entry bits used by the walk (and by tests that build tables).
const (
	PTEPresent uint64 = 1 << 0
	PTEWrite   uint64 = 1 << 1
	PTEUser    uint64 = 1 << 2
	PTELarge   uint64 = 1 << 7 // PS: a 1 GiB (PDPT) or 2 MiB (PD) page
	PTENoExec  uint64 = 1 << 63
)

// Linux x86-64 kernel image mapping: the kernel text, data and bss are
// mapped at __START_KERNEL_map, and the mapping is KERNEL_IMAGE_SIZE
// (1 GiB with KASLR) long; modules follow it.
const (
	KernelTextStart uint64 = 0xffffffff80000000
	KernelTextEnd   uint64 = 0xffffffffc0000000
)

// Canonical reports whether va is canonical: bits 63:47 (4-level paging)
// or 63:56 (5-level, CR4.LA57) all equal to the highest implemented bit.
// The MMU faults on any other address, so translating one is an error.
func Canonical(va uint64, la57 bool) bool {
	bits := uint(48)
	if la57 {
		bits = 57
	}
	top := int64(va) >> (bits - 1) // arithmetic shift: all 0 or all 1 if canonical
	return top == 0 || top == -1
}

// KernelTextToPhys translates an address of the kernel image mapping
// without a page walk: pa = va - 0xffffffff80000000 + phys_base. physBase
// is VMCOREINFO's NUMBER(phys_base), a signed value (negative when KASLR
// moved the kernel further in virtual than in physical memory) passed as
// its two's-complement uint64. Only addresses inside the 1 GiB kernel
// image mapping qualify, and the result must be a possible physical
// address.
func KernelTextToPhys(va, physBase uint64) (uint64, error) {
	if va < KernelTextStart || va >= KernelTextEnd {
		return 0, fmt.Errorf("x86: VA %#x is outside the kernel image mapping [%#x, %#x)", va, KernelTextStart, KernelTextEnd)
	}
	pa := va - KernelTextStart + physBase
	if pa >= MaxPhysAddr {
		return 0, fmt.Errorf("x86: kernel VA %#x with phys_base %d gives no physical address (%#x)", va, int64(physBase), pa)
	}
	return pa, nil
}

// checkPageOffsetBase checks a direct-map base read from the guest
// (page_offset_base, randomised by CONFIG_RANDOMIZE_MEMORY): it must be a
// kernel-half address and, as the kernel randomises it in 1 GiB (PUD)
// steps, 1 GiB-aligned.
func checkPageOffsetBase(base uint64) error {
	if base>>63 == 0 || base&(PageSize1G-1) != 0 {
		return fmt.Errorf("x86: page_offset_base %#x is not a 1 GiB-aligned kernel address", base)
	}
	return nil
}

// DirectMapToPhys translates an address of the kernel's direct map of all
// physical memory: pa = va - page_offset_base.
func DirectMapToPhys(va, pageOffsetBase uint64) (uint64, error) {
	if err := checkPageOffsetBase(pageOffsetBase); err != nil {
		return 0, err
	}
	if va < pageOffsetBase || va-pageOffsetBase >= MaxPhysAddr {
		return 0, fmt.Errorf("x86: VA %#x is outside the direct map at %#x", va, pageOffsetBase)
	}
	return va - pageOffsetBase, nil
}

// PhysToDirectMap is the direct-map address of pa: page_offset_base + pa.
func PhysToDirectMap(pa, pageOffsetBase uint64) (uint64, error) {
	if err := checkPageOffsetBase(pageOffsetBase); err != nil {
		return 0, err
	}
	if pa >= MaxPhysAddr || pageOffsetBase+pa < pageOffsetBase {
		return 0, fmt.Errorf("x86: PA %#x has no direct-map address at %#x", pa, pageOffsetBase)
	}
	return pageOffsetBase + pa, nil
}
