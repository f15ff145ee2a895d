package kimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Relocs is the KASLR relocation table an x86-64 bzImage carries: the build
// (arch/x86/tools/relocs) appends it to the vmlinux ELF before compressing,
// and the decompressor adds the virtual slide at each listed place once it
// has chosen where the kernel runs. Each entry is the link-time virtual
// address of a place to fix, stored as a 32-bit value that sign-extends to
// the kernel's top-2-GiB address.
//
// Layout, read backwards from the end of the decompressed output:
//
//	... ELF | 0 | 64-bit entries | 0 | inverse 32-bit entries | 0 | 32-bit entries
//
// A 32-bit place holds an absolute 32-bit address (slide added), an inverse
// one a PC-relative offset to a per-CPU symbol (slide subtracted), a 64-bit
// place an absolute 64-bit address (slide added). All lists are sorted.
type Relocs struct {
	Abs32 []uint64
	Inv32 []uint64
	Abs64 []uint64
}

// maxRelocs bounds the table (Debian's 6.1 cloud kernel has about 200 000).
const maxRelocs = 4 << 20

// ErrNoRelocs reports an image without a relocation table (a kernel built
// without CONFIG_RELOCATABLE, or a plain vmlinux, which never has one).
var ErrNoRelocs = errors.New("kimage: no relocation table after the ELF")

// ParseRelocs reads the relocation table appended to a decompressed kernel.
// Every entry must name a place inside a loadable segment's load range
// (with room for its width), so a hostile table cannot make a caller write outside the
// image.
func ParseRelocs(vmlinux []byte) (*Relocs, error) {
	end, err := elfEnd(vmlinux)
	if err != nil {
		return nil, err
	}
	loaded, err := loadRanges(vmlinux)
	if err != nil {
		return nil, err
	}
	// The table is read from the end of the output; the ELF's own size
	// need not be a multiple of 4, so words are counted from the end.
	tail := vmlinux[end:]
	if len(tail) < 12 {
		return nil, fmt.Errorf("%w (%d bytes follow the ELF)", ErrNoRelocs, len(tail))
	}
	n := len(tail) / 4
	tail = tail[len(tail)-4*n:]
	if n > maxRelocs {
		return nil, fmt.Errorf("kimage: %d relocation words exceed the limit of %d", n, maxRelocs)
	}
	pos := n // next word to read is pos-1
	list := func(width int64, what string) ([]uint64, error) {
		var out []uint64
		for {
			if pos == 0 {
				return nil, fmt.Errorf("kimage: %s relocation list runs into the ELF (no terminator)", what)
			}
			pos--
			w := binary.LittleEndian.Uint32(tail[4*pos:])
			if w == 0 {
				break
			}
			va := uint64(int64(int32(w)))
			if !loaded.contains(va, uint64(width)) {
				return nil, fmt.Errorf("kimage: %s relocation at %#x is outside the image", what, va)
			}
			out = append(out, va)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out, nil
	}
	r := &Relocs{}
	if r.Abs32, err = list(4, "32-bit"); err != nil {
		return nil, err
	}
	if r.Inv32, err = list(4, "inverse 32-bit"); err != nil {
		return nil, err
	}
	if r.Abs64, err = list(8, "64-bit"); err != nil {
		return nil, err
	}
	// The words left between the ELF and the table must be padding: a
	// table that ended early means we read something else as relocations.
	for _, c := range vmlinux[end : len(vmlinux)-4*(n-pos)] {
		if c != 0 {
			return nil, fmt.Errorf("kimage: unexplained bytes between the ELF and the relocation table")
		}
	}
	return r, nil
}

// Count is the number of places in all three lists.
func (r *Relocs) Count() int { return len(r.Abs32) + len(r.Inv32) + len(r.Abs64) }

// Apply adds slide (runtime minus link-time address) at every place that
// overlaps buf, which holds the image's bytes for link-time addresses
// [va, va+len(buf)). src reads the image's bytes for any link-time range
// (so a place that straddles buf's edges is computed whole); it returns
// false when the range is not in the image, and that place is skipped.
func (r *Relocs) Apply(buf []byte, va, slide uint64, src func(va uint64, n int) ([]byte, bool)) {
	if slide == 0 || len(buf) == 0 {
		return
	}
	end := va + uint64(len(buf))
	apply := func(list []uint64, width int, sign int) {
		i := sort.Search(len(list), func(i int) bool { return list[i]+uint64(width) > va })
		for ; i < len(list) && list[i] < end; i++ {
			p := list[i]
			raw, ok := src(p, width)
			if !ok {
				continue
			}
			var v [8]byte
			if width == 8 {
				binary.LittleEndian.PutUint64(v[:], binary.LittleEndian.Uint64(raw)+slide)
			} else if sign > 0 {
				binary.LittleEndian.PutUint32(v[:], binary.LittleEndian.Uint32(raw)+uint32(slide))
			} else {
				binary.LittleEndian.PutUint32(v[:], binary.LittleEndian.Uint32(raw)-uint32(slide))
			}
			for j := 0; j < width; j++ {
				if a := p + uint64(j); a >= va && a < end {
					buf[a-va] = v[j]
				}
			}
		}
	}
	apply(r.Abs32, 4, 1)
	apply(r.Inv32, 4, -1)
	apply(r.Abs64, 8, 1)
}

// kernelMap is __START_KERNEL_map: the kernel image's virtual addresses are
// its physical load addresses plus this.
const kernelMap = 0xffffffff80000000

// loadMap is where the loadable segments sit in the kernel map, by
// physical load address: the per-CPU segment is linked at 0 but loaded
// (and relocated) in the image like the rest.
type loadMap [][2]uint64

func loadRanges(vmlinux []byte) (loadMap, error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return nil, fmt.Errorf("kimage: parsing ELF: %w", err)
	}
	defer f.Close()
	var out loadMap
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 && p.Paddr < 1<<31 && p.Filesz < 1<<31 {
			out = append(out, [2]uint64{kernelMap + p.Paddr, kernelMap + p.Paddr + p.Filesz})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("kimage: ELF has no loadable segments")
	}
	return out, nil
}

func (lr loadMap) contains(va, n uint64) bool {
	for _, r := range lr {
		if va >= r[0] && va <= r[1] && n <= r[1]-va {
			return true
		}
	}
	return false
}

// elfEnd is the first file offset past everything the ELF headers claim:
// program and section header tables, and every segment's and section's
// file data. What follows is not part of the ELF.
func elfEnd(b []byte) (int, error) {
	if len(b) < 64 || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 {
		return 0, errors.New("kimage: not a little-endian ELF64 file")
	}
	le := binary.LittleEndian
	size := uint64(len(b))
	var end uint64
	grow := func(off, n uint64, what string) error {
		if off > size || n > size-off {
			return fmt.Errorf("kimage: %s [%#x, +%#x) lies outside the %d-byte file", what, off, n, size)
		}
		end = max(end, off+n)
		return nil
	}
	phoff, phentsize, phnum := le.Uint64(b[0x20:]), uint64(le.Uint16(b[0x36:])), uint64(le.Uint16(b[0x38:]))
	shoff, shentsize, shnum := le.Uint64(b[0x28:]), uint64(le.Uint16(b[0x3a:])), uint64(le.Uint16(b[0x3c:]))
	if phnum > 0 && phentsize < 56 || shnum > 0 && shentsize < 64 {
		return 0, errors.New("kimage: ELF header entry sizes are too small")
	}
	if err := grow(phoff, phentsize*phnum, "program header table"); err != nil {
		return 0, err
	}
	if err := grow(shoff, shentsize*shnum, "section header table"); err != nil {
		return 0, err
	}
	for i := uint64(0); i < phnum; i++ {
		p := b[phoff+i*phentsize:]
		if err := grow(le.Uint64(p[8:]), le.Uint64(p[32:]), "segment"); err != nil {
			return 0, err
		}
	}
	for i := uint64(0); i < shnum; i++ {
		s := b[shoff+i*shentsize:]
		if le.Uint32(s[4:]) == 8 { // SHT_NOBITS: no file data
			continue
		}
		if err := grow(le.Uint64(s[24:]), le.Uint64(s[32:]), "section"); err != nil {
			return 0, err
		}
	}
	return int(end), nil
}

// Touches reports whether any relocation rewrites a byte of link range
// [va, va+n).
func (r *Relocs) Touches(va, n uint64) bool {
	for _, l := range []struct {
		list  []uint64
		width uint64
	}{{r.Abs32, 4}, {r.Inv32, 4}, {r.Abs64, 8}} {
		i := sort.Search(len(l.list), func(i int) bool { return l.list[i]+l.width > va })
		if i < len(l.list) && l.list[i] < va+n {
			return true
		}
	}
	return false
}
