package x86_test

import (
	"bytes"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/x86"
	"github.com/bulwark-project/bulwark/internal/vmi/x86/x86test"
)

// FuzzTranslate walks arbitrary memory with arbitrary CR3 and VA: it must
// never panic, and what it returns must be a well-formed translation.
func FuzzTranslate(f *testing.F) {
	self := make([]byte, 4096)
	for i := 0; i < len(self); i += 8 {
		self[i] = 0x83
	}
	f.Add(self, uint64(0), uint64(0xffffffff81000000), false)
	f.Add([]byte{0x03, 0x10, 0, 0, 0, 0, 0, 0}, uint64(0x1fff), uint64(0x1000), true)
	f.Fuzz(func(t *testing.T, data []byte, cr3, va uint64, la57 bool) {
		// Repeat the input to a few pages so that walks get further.
		img := bytes.Repeat(data, 1+16384/(len(data)+1))
		if len(img) > 0 {
			cr3 %= uint64(len(img))
		}
		m := mem.FromBytes(img)
		pa, size, err := x86.Translate(m, cr3, la57, va)
		if err != nil {
			return
		}
		if size != x86.PageSize4K && size != x86.PageSize2M && size != x86.PageSize1G {
			t.Fatalf("page size %#x", size)
		}
		if pa >= x86.MaxPhysAddr || pa&(size-1) != va&(size-1) {
			t.Fatalf("VA %#x -> PA %#x (page %#x)", va, pa, size)
		}
		p := make([]byte, int(va%9000))
		_ = x86.ReadVirt(m, cr3, la57, va, p)
	})
}

// FuzzMapTranslate maps random pages with the builder and checks that
// Translate and ReadVirt find exactly what was mapped.
func FuzzMapTranslate(f *testing.F) {
	f.Add(uint64(0xffffffff81000000), uint64(0x5000), uint8(0), uint16(0x123), false)
	f.Add(uint64(0xff11000000200000), uint64(0x40200000), uint8(1), uint16(0xfff), true)
	f.Fuzz(func(t *testing.T, va, pa uint64, kind uint8, off uint16, la57 bool) {
		size := []uint64{x86.PageSize4K, x86.PageSize2M, x86.PageSize1G}[kind%3]
		va &^= size - 1
		pa = pa % x86.MaxPhysAddr &^ (size - 1)
		img, err := x86test.New(64<<10, 0, 64<<10, la57)
		if err != nil {
			t.Fatal(err)
		}
		if err := img.Map(va, pa, size, 0); err != nil {
			if x86.Canonical(va, la57) {
				t.Fatalf("Map(%#x, %#x, %#x): %v", va, pa, size, err)
			}
			return
		}
		got, gotSize, err := x86.Translate(img.Phys(), img.CR3, la57, va+uint64(off)%size)
		if err != nil || gotSize != size || got != pa+uint64(off)%size {
			t.Fatalf("Translate(%#x) = %#x, %#x, %v; mapped to %#x", va, got, gotSize, err, pa)
		}
	})
}
