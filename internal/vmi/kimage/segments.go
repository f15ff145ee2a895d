package kimage

import (
	"bytes"
	"debug/elf"
	"fmt"
	"math"
)

// Segment is one PT_LOAD program header: where a part of the file is mapped
// at link time. The kernel is linked at its final virtual addresses
// (0xffffffff81000000 and up on x86-64), so these are the addresses symbols
// and pointers in a guest refer to, before KASLR's slide.
type Segment struct {
	Off    int64  // file offset
	Filesz int64  // bytes present in the file
	Vaddr  uint64 // link-time virtual address of Off
}

// ContainsOffset reports whether [off, off+n) lies in the segment's file data.
func (s Segment) ContainsOffset(off, n int64) bool {
	return off >= s.Off && n >= 0 && n <= s.Filesz && off-s.Off <= s.Filesz-n
}

// VA maps a file offset inside the segment to its virtual address.
func (s Segment) VA(off int64) uint64 { return s.Vaddr + uint64(off-s.Off) }

// Segments is the loadable part of an image.
type Segments []Segment

// ContainingOffset returns the segment holding file offset off.
func (ss Segments) ContainingOffset(off int64) (Segment, bool) {
	for _, s := range ss {
		if s.ContainsOffset(off, 1) {
			return s, true
		}
	}
	return Segment{}, false
}

// Offset maps a virtual address to a file offset, with n bytes available.
func (ss Segments) Offset(va uint64, n int64) (int64, bool) {
	for _, s := range ss {
		if va < s.Vaddr || va-s.Vaddr > math.MaxInt64 {
			continue
		}
		off := s.Off + int64(va-s.Vaddr)
		if off >= s.Off && s.ContainsOffset(off, n) {
			return off, true
		}
	}
	return 0, false
}

// LoadSegments returns the PT_LOAD segments of a vmlinux ELF, each checked to
// lie inside the file.
func LoadSegments(vmlinux []byte) (Segments, error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return nil, fmt.Errorf("parsing ELF: %w", err)
	}
	defer f.Close()
	var ss Segments
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		if p.Off > uint64(len(vmlinux)) || p.Filesz > uint64(len(vmlinux))-p.Off {
			return nil, fmt.Errorf("program header %d: [%#x, +%#x) lies outside the %d-byte file", i, p.Off, p.Filesz, len(vmlinux))
		}
		ss = append(ss, Segment{Off: int64(p.Off), Filesz: int64(p.Filesz), Vaddr: p.Vaddr})
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("ELF has no loadable segments")
	}
	return ss, nil
}

// CString reads the NUL-terminated string at virtual address va, at most max
// bytes long.
func (ss Segments) CString(vmlinux []byte, va uint64, max int) (string, bool) {
	off, ok := ss.Offset(va, 1)
	if !ok {
		return "", false
	}
	end := min(int64(len(vmlinux)), off+int64(max))
	if i := bytes.IndexByte(vmlinux[off:end], 0); i >= 0 {
		return string(vmlinux[off : off+int64(i)]), true
	}
	return "", false
}
