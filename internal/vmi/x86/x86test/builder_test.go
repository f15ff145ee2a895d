package x86test

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

func TestBuilderRefuses(t *testing.T) {
	if _, err := New(8192, 100, 8192, false); err == nil {
		t.Error("unaligned table area accepted")
	}
	if _, err := New(8192, 0, 16384, false); err == nil {
		t.Error("table area past the image accepted")
	}
	img, err := New(3*4096, 0, 3*4096, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Map(0x1001, 0, x86.PageSize4K, 0); err == nil {
		t.Error("unaligned VA accepted")
	}
	if err := img.Map(0x0000800000000000, 0, x86.PageSize4K, 0); err == nil {
		t.Error("non-canonical VA accepted")
	}
	if err := img.Map(0, 0, 12345, 0); err == nil {
		t.Error("odd page size accepted")
	}
	if err := img.Map(0x40000000, 0, x86.PageSize1G, 0); err != nil {
		t.Fatal(err)
	}
	if err := img.Map(0x40000000, 0, x86.PageSize1G, 0); err == nil {
		t.Error("double mapping accepted")
	}
	if err := img.Map(0x40001000, 0, x86.PageSize4K, 0); err == nil {
		t.Error("mapping inside a 1 GiB page accepted")
	}
	if err := img.Map(0x8000000000, 0, x86.PageSize4K, 0); err == nil {
		t.Error("table area overflow not reported")
	}
	if _, err := img.EntryAddr(0x40000000, x86.PD); err == nil {
		t.Error("PD entry below a 1 GiB page found")
	}
}
