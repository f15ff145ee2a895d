package x86_test

import (
	"errors"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/x86"
	"github.com/bulwark-project/bulwark/internal/vmi/x86/x86test"
)

func newImage(t testing.TB, la57 bool) *x86test.Image {
	t.Helper()
	img, err := x86test.New(1<<20, 0x80000, 0x100000, la57)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustMap(t testing.TB, img *x86test.Image, va, pa, size uint64) {
	t.Helper()
	if err := img.Map(va, pa, size, x86.PTEWrite); err != nil {
		t.Fatal(err)
	}
}

func TestCanonical(t *testing.T) {
	cases := []struct {
		va         uint64
		four, five bool
	}{
		{0, true, true},
		{0x00007fffffffffff, true, true},
		{0x0000800000000000, false, true},
		{0xffff800000000000, true, true},
		{0xffff7fffffffffff, false, true},
		{0xff00000000000000, false, true},
		{0xfeffffffffffffff, false, false},
		{0x00ffffffffffffff, false, true},
		{0x0100000000000000, false, false},
		{0xffffffffffffffff, true, true},
	}
	for _, c := range cases {
		if got := x86.Canonical(c.va, false); got != c.four {
			t.Errorf("Canonical(%#x, 4-level) = %v", c.va, got)
		}
		if got := x86.Canonical(c.va, true); got != c.five {
			t.Errorf("Canonical(%#x, 5-level) = %v", c.va, got)
		}
	}
}

func TestTranslatePageSizes(t *testing.T) {
	for _, la57 := range []bool{false, true} {
		img := newImage(t, la57)
		va4k, va2m, va1g := uint64(0xffffffff81234000), uint64(0xffff888000200000), uint64(0x00007f0040000000)
		if la57 {
			va4k, va2m = 0xff11000000001000, 0x00ff000000200000
		}
		mustMap(t, img, va4k, 0x5000, x86.PageSize4K)
		mustMap(t, img, va2m, 0x40200000, x86.PageSize2M)
		mustMap(t, img, va1g, 0x80000000, x86.PageSize1G)
		cases := []struct{ va, pa, size uint64 }{
			{va4k + 0x123, 0x5123, x86.PageSize4K},
			{va2m + 0x1fffff, 0x403fffff, x86.PageSize2M},
			{va1g + 0x3ffff000, 0xbffff000, x86.PageSize1G},
		}
		// PCID, PTI's user bit 12 and the no-flush bit in CR3 are ignored.
		for _, cr3 := range []uint64{img.CR3, img.CR3 | 0xfff | 1<<12 | 1<<63} {
			for _, c := range cases {
				pa, size, err := x86.Translate(img.Phys(), cr3, la57, c.va)
				if err != nil || pa != c.pa || size != c.size {
					t.Errorf("la57=%v Translate(%#x) = %#x, %#x, %v; want %#x, %#x", la57, c.va, pa, size, err, c.pa, c.size)
				}
			}
		}
	}
}

func TestTranslateLargePagePAT(t *testing.T) {
	img := newImage(t, false)
	mustMap(t, img, 0x200000, 0x600000, x86.PageSize2M)
	ea, err := img.EntryAddr(0x200000, x86.PD)
	if err != nil {
		t.Fatal(err)
	}
	img.Set(ea, img.Get(ea)|1<<12) // PAT bit of a large page, not address
	if pa, _, err := x86.Translate(img.Phys(), img.CR3, false, 0x200010); err != nil || pa != 0x600010 {
		t.Fatalf("with PAT: %#x, %v", pa, err)
	}
	img.Set(ea, img.Get(ea)|1<<13) // reserved
	_, _, err = x86.Translate(img.Phys(), img.CR3, false, 0x200010)
	var we *x86.WalkError
	if !errors.As(err, &we) || we.Level != x86.PD || !errors.Is(err, x86.ErrReserved) {
		t.Fatalf("reserved bit: %v", err)
	}
}

func TestTranslateNotPresent(t *testing.T) {
	for _, la57 := range []bool{false, true} {
		top := x86.PML4
		if la57 {
			top = x86.PML5
		}
		for lvl := top; lvl >= x86.PT; lvl-- {
			img := newImage(t, la57)
			va := uint64(0xffffffff81000000)
			mustMap(t, img, va, 0x7000, x86.PageSize4K)
			if err := img.ClearPresent(va, lvl); err != nil {
				t.Fatal(err)
			}
			_, _, err := x86.Translate(img.Phys(), img.CR3, la57, va)
			var we *x86.WalkError
			if !errors.As(err, &we) || we.Level != lvl || !errors.Is(err, x86.ErrNotPresent) || we.VA != va {
				t.Errorf("la57=%v, %s cleared: %v", la57, lvl, err)
			}
		}
	}
}

func TestTranslateErrors(t *testing.T) {
	img := newImage(t, false)
	mustMap(t, img, 0x1000, 0x2000, x86.PageSize4K)
	m := img.Phys()
	if _, _, err := x86.Translate(m, img.CR3, false, 0x0000800000000000); !errors.Is(err, x86.ErrNonCanonical) {
		t.Errorf("non-canonical: %v", err)
	}
	// PS in a PML4 entry is reserved.
	ea, _ := img.EntryAddr(0x1000, x86.PML4)
	img.Set(ea, img.Get(ea)|x86.PTELarge)
	if _, _, err := x86.Translate(m, img.CR3, false, 0x1000); !errors.Is(err, x86.ErrReserved) {
		t.Errorf("PS in PML4: %v", err)
	}
	// A table outside RAM.
	img.Set(ea, 0x7ffff000|x86.PTEPresent)
	_, _, err := x86.Translate(m, img.CR3, false, 0x1000)
	var we *x86.WalkError
	if !errors.As(err, &we) || we.Level != x86.PDPT || !errors.Is(err, mem.ErrNotRAM) {
		t.Errorf("table outside RAM: %v", err)
	}
	// CR3 outside RAM.
	if _, _, err := x86.Translate(m, 0xfffff000, false, 0x1000); !errors.Is(err, mem.ErrNotRAM) {
		t.Errorf("CR3 outside RAM: %v", err)
	}
}

// TestTranslateSelfReference: a table that points at itself can only make
// the walk read the same page a fixed number of times.
func TestTranslateSelfReference(t *testing.T) {
	m := make([]byte, 8192)
	for i := 0; i < 4096; i += 8 {
		m[i] = 0x03 // present, writable, address 0: every entry points at page 0
	}
	pa, size, err := x86.Translate(mem.FromBytes(m), 0, false, 0x0000123456789abc)
	if err != nil || size != x86.PageSize4K || pa != 0xabc {
		t.Fatalf("self-referencing tables: %#x, %#x, %v", pa, size, err)
	}
}
