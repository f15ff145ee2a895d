package mem

import (
	"fmt"
	"slices"
)

// Range maps a run of guest-physical addresses onto the RAM file.
type Range struct {
	GPA    uint64 // first guest-physical address
	Size   uint64 // bytes
	Offset uint64 // file offset that holds GPA
}

// Layout is how guest-physical addresses map onto the RAM backing file,
// ranges in increasing GPA order.
type Layout struct {
	Ranges []Range
}

// MaxRanges bounds the ranges of a Layout, so that every lookup is a short,
// bounded loop.
const MaxRanges = 16

// MaxRAM bounds the RAM a Layout may describe (64 TiB): beyond it sizes
// no longer fit the mapping's int length and no VM of ours is that large.
const MaxRAM = 1 << 46

const (
	// MicrovmLowMem is the most RAM QEMU's microvm machine puts below 4 GiB
	// (hw/i386/microvm.c, microvm_memory_init: lowmem = 3 GiB). The last
	// GiB below 4 GiB is left to MMIO (virtio-mmio, IOAPIC, LAPIC, ...).
	MicrovmLowMem = 0xc0000000
	// HighMemBase is where RAM beyond MicrovmLowMem continues.
	HighMemBase = 1 << 32

	// MicrovmBIOSBase and MicrovmBIOSEnd bound the "isa-bios" window: QEMU
	// maps the last up-to-128 KiB of the firmware (64 KiB for Debian's
	// bios-microvm.bin, which is qboot) just below 1 MiB, over RAM, with
	// higher priority. There the guest sees the firmware, not the RAM
	// file, so those file bytes are not guest memory.
	MicrovmBIOSBase = 0xf0000
	MicrovmBIOSEnd  = 0x100000
)

// MicrovmLayout is the guest-physical layout of QEMU's microvm machine
// (QEMU 5.2 to at least 7.2) for ramSize bytes of RAM in one memory
// backend, as microvm_memory_init and x86_bios_rom_init build it:
//
//   - if ramSize is at most 3 GiB, all RAM is at GPA 0 = file offset 0;
//     if it is larger (strictly), the first 3 GiB stay at GPA 0 and the
//     rest, from file offset 3 GiB, is at GPA 4 GiB ("ram-below-4g" and
//     "ram-above-4g", two aliases of the one backend);
//   - [MicrovmBIOSBase, MicrovmBIOSEnd) is left out: the firmware's ISA
//     alias covers it.
//
// There is no other hole (no VGA window: microvm has no VGA). A zero
// ramSize gives an empty layout.
//
// The firmware window is a blind spot of introspection: microvm maps the
// firmware as writable RAM (isapc_ram_fw), so the guest can keep up to
// 64 KiB there, and at its alias below 4 GiB, that the RAM file never
// shows.
func MicrovmLayout(ramSize uint64) Layout {
	var l Layout
	low := min(ramSize, MicrovmLowMem)
	if low > 0 {
		l.Ranges = append(l.Ranges, Range{GPA: 0, Size: min(low, MicrovmBIOSBase), Offset: 0})
	}
	if low > MicrovmBIOSEnd {
		l.Ranges = append(l.Ranges, Range{GPA: MicrovmBIOSEnd, Size: low - MicrovmBIOSEnd, Offset: MicrovmBIOSEnd})
	}
	if ramSize > MicrovmLowMem {
		l.Ranges = append(l.Ranges, Range{GPA: HighMemBase, Size: ramSize - MicrovmLowMem, Offset: MicrovmLowMem})
	}
	return l
}

// Validate checks that the layout is usable over a file of fileSize bytes:
// at least one and at most MaxRanges ranges, none empty, in increasing and
// non-overlapping GPA order, no address or offset overflow, every range
// inside the file, and no more than MaxRAM in all.
func (l Layout) Validate(fileSize uint64) error {
	if len(l.Ranges) == 0 {
		return fmt.Errorf("mem: layout has no RAM ranges")
	}
	if len(l.Ranges) > MaxRanges {
		return fmt.Errorf("mem: layout has %d ranges, more than %d", len(l.Ranges), MaxRanges)
	}
	var total, prevEnd uint64
	for i, r := range l.Ranges {
		switch {
		case r.Size == 0:
			return fmt.Errorf("mem: layout range %d at GPA %#x is empty", i, r.GPA)
		case r.GPA+r.Size < r.GPA || r.Offset+r.Size < r.Offset:
			return fmt.Errorf("mem: layout range %d (GPA %#x, %#x bytes, offset %#x) overflows", i, r.GPA, r.Size, r.Offset)
		case i > 0 && r.GPA < prevEnd:
			return fmt.Errorf("mem: layout range %d at GPA %#x overlaps or precedes the range before it (ends %#x)", i, r.GPA, prevEnd)
		case r.Offset+r.Size > fileSize:
			return fmt.Errorf("mem: layout range %d (offset %#x, %#x bytes) runs past the end of the %d-byte RAM file", i, r.Offset, r.Size, fileSize)
		}
		total += r.Size
		if total > MaxRAM {
			return fmt.Errorf("mem: layout describes more than %d bytes of RAM", uint64(MaxRAM))
		}
		prevEnd = r.GPA + r.Size
	}
	return nil
}

// fileSpan is the number of file bytes the layout uses (from offset 0).
func (l Layout) fileSpan() uint64 {
	var end uint64
	for _, r := range l.Ranges {
		end = max(end, r.Offset+r.Size)
	}
	return end
}

// size is one past the highest GPA.
func (l Layout) size() uint64 {
	if len(l.Ranges) == 0 {
		return 0
	}
	last := l.Ranges[len(l.Ranges)-1]
	return last.GPA + last.Size
}

// regions lists the GPA runs, merging ranges that are adjacent in GPA.
func (l Layout) regions() []Region {
	var out []Region
	for _, r := range l.Ranges {
		if n := len(out); n > 0 && out[n-1].End() == r.GPA {
			out[n-1].Size += r.Size
			continue
		}
		out = append(out, Region{GPA: r.GPA, Size: r.Size})
	}
	return out
}

// find returns the index of the range holding gpa, or -1.
func (l Layout) find(gpa uint64) int {
	for i, r := range l.Ranges {
		if gpa >= r.GPA && gpa-r.GPA < r.Size {
			return i
		}
	}
	return -1
}

// covers reports whether [gpa, gpa+n) lies entirely in RAM; it may span
// ranges that are adjacent in GPA.
func (l Layout) covers(gpa, n uint64) bool {
	if gpa+n < gpa {
		return false
	}
	i := l.find(gpa)
	if i < 0 {
		return false
	}
	end := gpa + n
	for ; i < len(l.Ranges); i++ {
		r := l.Ranges[i]
		if r.GPA > gpa {
			return false // a hole before the next range
		}
		if end <= r.GPA+r.Size {
			return true
		}
		gpa = r.GPA + r.Size
	}
	return false
}

// clone copies the layout so that callers cannot change a RAM's layout.
func (l Layout) clone() Layout { return Layout{Ranges: slices.Clone(l.Ranges)} }
