// Package x86test lays out x86-64 page tables in a byte slice, so that
// tests of page walks and of the readers built on them can describe an
// address space (4 KiB, 2 MiB and 1 GiB pages, 4- or 5-level paging) and
// then break it on purpose.
package x86test

import (
	"encoding/binary"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

// Image is guest-physical memory with hand-made page tables. Tables are
// allocated one 4 KiB page at a time from a table area; the rest of Mem is
// for the test's data pages.
type Image struct {
	Mem  []byte
	LA57 bool
	// CR3 is the physical address of the top-level table.
	CR3 uint64

	next, limit uint64 // free table pages in [next, limit)
}

// New makes an image of size bytes whose tables are allocated from
// [tableBase, tableLimit) (page-aligned, inside the image).
func New(size int, tableBase, tableLimit uint64, la57 bool) (*Image, error) {
	if size <= 0 || tableBase%x86.PageSize4K != 0 || tableLimit <= tableBase || tableLimit > uint64(size) {
		return nil, fmt.Errorf("x86test: bad image: size %d, table area [%#x, %#x)", size, tableBase, tableLimit)
	}
	img := &Image{Mem: make([]byte, size), LA57: la57, next: tableBase, limit: tableLimit}
	top, err := img.alloc()
	if err != nil {
		return nil, err
	}
	img.CR3 = top
	return img, nil
}

// Phys is the image as a mem.Physical (GPA = offset).
func (img *Image) Phys() mem.Physical { return mem.FromBytes(img.Mem) }

func (img *Image) alloc() (uint64, error) {
	if img.limit-img.next < x86.PageSize4K {
		return 0, fmt.Errorf("x86test: table area full")
	}
	pa := img.next
	img.next += x86.PageSize4K
	return pa, nil
}

func (img *Image) levels() x86.Level {
	if img.LA57 {
		return x86.PML5
	}
	return x86.PML4
}

// EntryAddr returns the physical address of the entry for va at level
// lvl, following the tables already present above it.
func (img *Image) EntryAddr(va uint64, lvl x86.Level) (uint64, error) {
	table := img.CR3
	for l := img.levels(); l >= x86.PT; l-- {
		ea := table + (va>>(12+9*uint(l-1))&0x1ff)*8
		if l == lvl {
			return ea, nil
		}
		e := img.Get(ea)
		if e&x86.PTEPresent == 0 || (e&x86.PTELarge != 0 && l <= x86.PDPT) {
			return 0, fmt.Errorf("x86test: no %s table below the %s entry for %#x", l-1, l, va)
		}
		table = e & x86.AddrMask
	}
	return 0, fmt.Errorf("x86test: no level %s", lvl)
}

// Get reads the 8-byte entry at pa.
func (img *Image) Get(pa uint64) uint64 { return binary.LittleEndian.Uint64(img.Mem[pa:]) }

// Set writes the 8-byte entry at pa.
func (img *Image) Set(pa, e uint64) { binary.LittleEndian.PutUint64(img.Mem[pa:], e) }

// ClearPresent clears the present bit of va's entry at level lvl.
func (img *Image) ClearPresent(va uint64, lvl x86.Level) error {
	ea, err := img.EntryAddr(va, lvl)
	if err != nil {
		return err
	}
	img.Set(ea, img.Get(ea)&^x86.PTEPresent)
	return nil
}

// Map maps the page of pageSize (4 KiB, 2 MiB or 1 GiB) at va to pa,
// creating the tables on the way, with flags (besides present, and PS for
// large pages) in the leaf entry.
func (img *Image) Map(va, pa, pageSize, flags uint64) error {
	var leaf x86.Level
	switch pageSize {
	case x86.PageSize4K:
		leaf = x86.PT
	case x86.PageSize2M:
		leaf, flags = x86.PD, flags|x86.PTELarge
	case x86.PageSize1G:
		leaf, flags = x86.PDPT, flags|x86.PTELarge
	default:
		return fmt.Errorf("x86test: page size %#x", pageSize)
	}
	if va%pageSize != 0 || pa%pageSize != 0 || !x86.Canonical(va, img.LA57) {
		return fmt.Errorf("x86test: cannot map %#x to %#x with %#x pages", va, pa, pageSize)
	}
	table := img.CR3
	for l := img.levels(); l > leaf; l-- {
		ea := table + (va>>(12+9*uint(l-1))&0x1ff)*8
		e := img.Get(ea)
		switch {
		case e&x86.PTEPresent == 0:
			t, err := img.alloc()
			if err != nil {
				return err
			}
			img.Set(ea, t|x86.PTEPresent|x86.PTEWrite)
			table = t
		case e&x86.PTELarge != 0 && l <= x86.PDPT:
			return fmt.Errorf("x86test: %#x is inside a large page at %s", va, l)
		default:
			table = e & x86.AddrMask
		}
	}
	ea := table + (va>>(12+9*uint(leaf-1))&0x1ff)*8
	if img.Get(ea)&x86.PTEPresent != 0 {
		return fmt.Errorf("x86test: %#x is already mapped at %s", va, leaf)
	}
	img.Set(ea, pa|flags|x86.PTEPresent)
	return nil
}
