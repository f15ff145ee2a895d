package x86

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// Level names a paging structure; its number is how many levels, itself
// included, are left to walk.
type Level int

// The paging structures, from the leaf up.
const (
	PT   Level = 1 // page table: 4 KiB pages
	PD   Level = 2 // page directory: 2 MiB pages or page tables
	PDPT Level = 3 // page-directory-pointer table: 1 GiB pages or PDs
	PML4 Level = 4
	PML5 Level = 5 // only with CR4.LA57
)

func (l Level) String() string {
	switch l {
	case PT:
		return "PT"
	case PD:
		return "PD"
	case PDPT:
		return "PDPT"
	case PML4:
		return "PML4"
	case PML5:
		return "PML5"
	}
	return fmt.Sprintf("level %d", int(l))
}

// Errors wrapped by WalkError and the translation functions.
var (
	ErrNotPresent   = errors.New("not present")
	ErrReserved     = errors.New("reserved bits set")
	ErrNonCanonical = errors.New("non-canonical address")
)

// WalkError says where a page walk stopped: the VA, the level whose entry
// stopped it, where that entry is and what it held, and why (ErrNotPresent,
// ErrReserved, or the error of reading the entry from guest RAM).
type WalkError struct {
	VA      uint64
	Level   Level
	EntryPA uint64 // guest-physical address of the entry
	Entry   uint64 // its value (0 if it could not be read)
	Err     error
}

func (e *WalkError) Error() string {
	if errors.Is(e.Err, ErrNotPresent) || errors.Is(e.Err, ErrReserved) {
		return fmt.Sprintf("x86: VA %#x: %s entry %#x at PA %#x: %v", e.VA, e.Level, e.Entry, e.EntryPA, e.Err)
	}
	return fmt.Sprintf("x86: VA %#x: reading %s entry at PA %#x: %v", e.VA, e.Level, e.EntryPA, e.Err)
}

func (e *WalkError) Unwrap() error { return e.Err }

// KernelPGD is the physical address of the top-level table that CR3 names,
// for the kernel's view. CR3 bits 11:0 are PCID (or PWT/PCD) and bit 63 is
// the no-flush hint; with page-table isolation (PTI) Linux allocates each
// PGD as 8 KiB, kernel half first, and the user CR3 has bit 12 set to
// select the user half. So bit 12 is cleared as well: the kernel half maps
// kernel and user addresses alike. This assumes a Linux guest built with
// CONFIG_PAGE_TABLE_ISOLATION (Debian's kernels are), whose PGDs are all
// 8 KiB-aligned; use Walk with cr3&AddrMask for page tables laid out
// otherwise.
func KernelPGD(cr3 uint64) uint64 { return cr3 & AddrMask &^ (1 << 12) }

// Translate translates va through the page tables that CR3 names (the
// kernel's view, see KernelPGD), with 5-level paging if la57 (CR4.LA57).
// It returns the guest-physical address and the size of the page that
// maps va (4 KiB, 2 MiB or 1 GiB).
func Translate(m mem.Physical, cr3 uint64, la57 bool, va uint64) (pa, pageSize uint64, err error) {
	return Walk(m, KernelPGD(cr3), la57, va)
}

// Walk translates va starting at the top-level table at physical address
// top (bits outside AddrMask are ignored). It reads one entry per level,
// four or five in all; a 1 GiB page at the PDPT or a 2 MiB page at the PD
// ends it early. An entry that is not present, or that sets bits the MMU
// treats as reserved (PS in a PML5/PML4 entry, the low address bits of a
// large page), stops it with a *WalkError naming the level.
func Walk(m mem.Physical, top uint64, la57 bool, va uint64) (pa, pageSize uint64, err error) {
	levels := PML4
	if la57 {
		levels = PML5
	}
	if !Canonical(va, la57) {
		return 0, 0, fmt.Errorf("x86: VA %#x with %d-level paging: %w", va, int(levels), ErrNonCanonical)
	}
	table := top & AddrMask
	for lvl := levels; lvl >= PT; lvl-- { // exactly 4 or 5 iterations
		shift := 12 + 9*uint(lvl-1)
		ea := table + (va>>shift&0x1ff)*8
		var b [8]byte
		if err := m.ReadPhys(b[:], ea); err != nil {
			return 0, 0, &WalkError{VA: va, Level: lvl, EntryPA: ea, Err: err}
		}
		e := binary.LittleEndian.Uint64(b[:])
		if e&PTEPresent == 0 {
			return 0, 0, &WalkError{VA: va, Level: lvl, EntryPA: ea, Entry: e, Err: ErrNotPresent}
		}
		if lvl == PT {
			return e&AddrMask | va&(PageSize4K-1), PageSize4K, nil
		}
		if e&PTELarge != 0 {
			if lvl > PDPT {
				return 0, 0, &WalkError{VA: va, Level: lvl, EntryPA: ea, Entry: e, Err: ErrReserved}
			}
			size := uint64(1) << shift
			// Bit 12 is PAT; bits 13 up to the page size are reserved.
			if e&AddrMask&(size-1)&^PageSize4K != 0 {
				return 0, 0, &WalkError{VA: va, Level: lvl, EntryPA: ea, Entry: e, Err: ErrReserved}
			}
			return e&AddrMask&^(size-1) | va&(size-1), size, nil
		}
		table = e & AddrMask
	}
	return 0, 0, fmt.Errorf("x86: VA %#x: walk ended without a page", va) // unreachable
}
