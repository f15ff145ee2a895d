package x86_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

func TestReadVirt(t *testing.T) {
	img := newImage(t, false)
	base := uint64(0xffffc90000000000)
	// Three virtually contiguous pages on physically scattered frames.
	frames := []uint64{0x3000, 0x1000, 0x7000}
	for i, f := range frames {
		mustMap(t, img, base+uint64(i)*4096, f, x86.PageSize4K)
		for j := range 4096 {
			img.Mem[f+uint64(j)] = byte(i*31 + j)
		}
	}
	want := make([]byte, 0, 3*4096)
	for _, f := range frames {
		want = append(want, img.Mem[f:f+4096]...)
	}
	p := make([]byte, 3*4096-200)
	if err := x86.ReadVirt(img.Phys(), img.CR3, false, base+100, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, want[100:100+len(p)]) {
		t.Fatal("ReadVirt across pages read the wrong bytes")
	}
	// Into an unmapped fourth page.
	err := x86.ReadVirt(img.Phys(), img.CR3, false, base+2*4096, make([]byte, 4097))
	if !errors.Is(err, x86.ErrNotPresent) {
		t.Fatalf("read into an unmapped page: %v", err)
	}
	if err := x86.ReadVirt(img.Phys(), img.CR3, false, base, nil); err != nil {
		t.Fatalf("empty read: %v", err)
	}
	if err := x86.ReadVirt(img.Phys(), img.CR3, false, base, make([]byte, x86.MaxReadVirt+1)); err == nil {
		t.Fatal("read larger than MaxReadVirt accepted")
	}
	if err := x86.ReadVirt(img.Phys(), img.CR3, false, 0xfffffffffffff000, make([]byte, 8192)); err == nil {
		t.Fatal("wrapping read accepted")
	}
}

func TestReadVirtLargePage(t *testing.T) {
	img := newImage(t, false)
	mustMap(t, img, 0xffff888000000000, 0, x86.PageSize2M) // the image itself
	copy(img.Mem[0x1ff0:], "across-4k-boundary-in-2M")
	p := make([]byte, 24)
	if err := x86.ReadVirt(img.Phys(), img.CR3, false, 0xffff888000001ff0, p); err != nil || string(p) != "across-4k-boundary-in-2M" {
		t.Fatalf("%q, %v", p, err)
	}
	// The 2 MiB page runs past the 1 MiB image: reads there fail, not panic.
	if err := x86.ReadVirt(img.Phys(), img.CR3, false, 0xffff888000100000-4, p); err == nil {
		t.Fatal("read past the image succeeded")
	}
}
