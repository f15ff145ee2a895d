package mem

import (
	"errors"
	"fmt"
)

// Physical is guest-physical memory as seen from the host.
//
// ReadPhys fills all of p from guest-physical address gpa or fails with an
// error naming the address: a read that is not entirely inside guest RAM
// (one that touches a hole or runs past the end) reads nothing useful and
// returns an error wrapping ErrNotRAM, never a short read. An empty p is
// always read successfully.
//
// Size is one past the highest guest-physical address backed by RAM. Where
// RAM has holes below Size (QEMU's microvm with more than 3 GiB), the view
// also implements Regioner.
type Physical interface {
	ReadPhys(p []byte, gpa uint64) error
	Size() uint64
}

// Region is a contiguous run of guest-physical RAM.
type Region struct {
	GPA  uint64 // first address
	Size uint64 // bytes
}

// End is one past the region's last address.
func (r Region) End() uint64 { return r.GPA + r.Size }

// Regioner is implemented by views whose RAM is not one run from 0 to
// Size, so that scans can skip the holes instead of failing on them.
type Regioner interface {
	Regions() []Region
}

// ErrNotRAM is wrapped by errors of reads that are not entirely inside
// guest RAM.
var ErrNotRAM = errors.New("not inside guest RAM")

// ErrFault is wrapped by errors of reads that faulted on the host (the RAM
// file was truncated under the mapping).
var ErrFault = errors.New("memory fault reading guest RAM")

// notRAM is the error of a read of n bytes at gpa that is not inside RAM.
func notRAM(gpa uint64, n int) error {
	return fmt.Errorf("mem: read of %d bytes at GPA %#x: %w", n, gpa, ErrNotRAM)
}

// RegionsOf returns p's RAM regions: its own list if it implements
// Regioner, else the single run [0, Size).
func RegionsOf(p Physical) []Region {
	if r, ok := p.(Regioner); ok {
		return r.Regions()
	}
	if p.Size() == 0 {
		return nil
	}
	return []Region{{GPA: 0, Size: p.Size()}}
}

// FromBytes is a Physical over b with guest-physical address equal to the
// offset in b, for tests and fuzzing. b is not copied.
func FromBytes(b []byte) Physical { return bytesPhys(b) }

type bytesPhys []byte

func (b bytesPhys) Size() uint64 { return uint64(len(b)) }

func (b bytesPhys) ReadPhys(p []byte, gpa uint64) error {
	if len(p) == 0 {
		return nil
	}
	if gpa >= uint64(len(b)) || uint64(len(p)) > uint64(len(b))-gpa {
		return notRAM(gpa, len(p))
	}
	copy(p, b[gpa:])
	return nil
}
