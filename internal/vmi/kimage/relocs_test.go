package kimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"testing"
)

// withRelocs appends a relocation table (as arch/x86/tools/relocs writes
// it: 0, 64-bit list, 0, inverse list, 0, 32-bit list) to an ELF.
func withRelocs(img []byte, abs32, inv32, abs64 []uint64) []byte {
	out := append([]byte(nil), img...)
	w := func(v uint64) { out = binary.LittleEndian.AppendUint32(out, uint32(v)) }
	w(0)
	for _, v := range abs64 {
		w(v)
	}
	w(0)
	for _, v := range inv32 {
		w(v)
	}
	w(0)
	for _, v := range abs32 {
		w(v)
	}
	return out
}

// kernelELF is fakeELF with its PT_LOAD's physical address set as a
// kernel's is (virtual address minus __START_KERNEL_map).
func kernelELF(filler int) []byte {
	img := fakeELF(nil, nil, filler)
	p := img[64:]
	binary.LittleEndian.PutUint64(p[24:], binary.LittleEndian.Uint64(p[16:])-kernelMap)
	return img
}

func textVA(t *testing.T, img []byte) uint64 {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	return f.Section(".text").Addr
}

func TestParseRelocsSynthetic(t *testing.T) {
	img := kernelELF(4096)
	base := textVA(t, img)
	tests := []struct {
		name              string
		abs32, inv32, a64 []uint64
		wantErr           bool
	}{
		{name: "empty lists"},
		{name: "all three", abs32: []uint64{base + 16, base}, inv32: []uint64{base + 32}, a64: []uint64{base + 64, base + 8}},
		{name: "outside the image", abs32: []uint64{base + 1<<20}, wantErr: true},
		{name: "64-bit place past the end", a64: []uint64{base + 4092}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRelocs(withRelocs(img, tc.abs32, tc.inv32, tc.a64))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseRelocs accepted %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Abs32) != len(tc.abs32) || len(r.Inv32) != len(tc.inv32) || len(r.Abs64) != len(tc.a64) {
				t.Fatalf("got %d/%d/%d places, want %d/%d/%d", len(r.Abs32), len(r.Inv32), len(r.Abs64), len(tc.abs32), len(tc.inv32), len(tc.a64))
			}
			for i := 1; i < len(r.Abs64); i++ {
				if r.Abs64[i] < r.Abs64[i-1] {
					t.Fatal("Abs64 not sorted")
				}
			}
		})
	}
	if _, err := ParseRelocs(img); !errors.Is(err, ErrNoRelocs) {
		t.Errorf("plain ELF: %v, want ErrNoRelocs", err)
	}
	// Junk between the ELF and the table means the table was misread.
	junk := append(append([]byte(nil), img...), 1, 2, 3, 4)
	if _, err := ParseRelocs(withRelocs(junk, []uint64{base}, nil, nil)); err == nil {
		t.Error("junk before the table was accepted")
	}
}

func TestRelocsApply(t *testing.T) {
	img := make([]byte, 64)
	const va = 0xffffffff81000000
	binary.LittleEndian.PutUint32(img[4:], 0x81000010)
	binary.LittleEndian.PutUint32(img[12:], 0x100)
	binary.LittleEndian.PutUint64(img[30:], va+0x20) // straddles the window's end below
	r := &Relocs{Abs32: []uint64{va + 4}, Inv32: []uint64{va + 12}, Abs64: []uint64{va + 30}}
	src := func(a uint64, n int) ([]byte, bool) { return img[a-va : a-va+uint64(n)], true }
	const slide = 0x3a00000
	buf := append([]byte(nil), img[:34]...)
	r.Apply(buf, va, slide, src)
	if got := binary.LittleEndian.Uint32(buf[4:]); got != 0x81000010+slide {
		t.Errorf("abs32 = %#x", got)
	}
	if got := binary.LittleEndian.Uint32(buf[12:]); got != 0x100+uint32(1<<32-slide) {
		t.Errorf("inv32 = %#x", got)
	}
	var whole [8]byte
	binary.LittleEndian.PutUint64(whole[:], va+0x20+slide)
	if !bytes.Equal(buf[30:34], whole[:4]) {
		t.Errorf("straddling abs64 head = % x, want % x", buf[30:34], whole[:4])
	}
	// The second window starts inside the same place.
	buf2 := append([]byte(nil), img[34:40]...)
	r.Apply(buf2, va+34, slide, src)
	if !bytes.Equal(buf2[:4], whole[4:]) {
		t.Errorf("straddling abs64 tail = % x, want % x", buf2[:4], whole[4:])
	}
}

func FuzzParseRelocs(f *testing.F) {
	img := kernelELF(256)
	f.Add(withRelocs(img, []uint64{0xffffffff81000100}, nil, nil))
	f.Add(img)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRelocs(b)
		if err != nil {
			return
		}
		segs, err := LoadSegments(b)
		if err != nil {
			t.Fatal("relocations parsed from an image without segments")
		}
		for _, p := range r.Abs64 {
			if _, ok := segs.Offset(p, 8); !ok {
				t.Fatalf("place %#x outside the image", p)
			}
		}
	})
}
