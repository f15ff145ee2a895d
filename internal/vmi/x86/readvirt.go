package x86

import (
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// MaxReadVirt bounds one ReadVirt (16 MiB): reads of guest structures are
// small, and a length taken from guest data must not make the monitor
// allocate or walk without limit.
const MaxReadVirt = 16 << 20

// ReadVirt fills p from virtual address va through the page tables that
// CR3 names (see Translate), translating page by page, since contiguous
// virtual pages need not be contiguous in physical memory. It reads all of
// p or returns the first error (p's contents are then unspecified). The
// range must not wrap around the top of the address space.
func ReadVirt(m mem.Physical, cr3 uint64, la57 bool, va uint64, p []byte) error {
	if len(p) > MaxReadVirt {
		return fmt.Errorf("x86: virtual read of %d bytes at %#x, more than %d", len(p), va, MaxReadVirt)
	}
	if len(p) > 0 && va+uint64(len(p))-1 < va {
		return fmt.Errorf("x86: virtual read of %d bytes at %#x wraps around", len(p), va)
	}
	// Each round reads up to the end of a page, so at most
	// len(p)/4096 + 2 rounds.
	for done := 0; done < len(p); {
		cur := va + uint64(done)
		pa, size, err := Translate(m, cr3, la57, cur)
		if err != nil {
			return err
		}
		n := min(uint64(len(p)-done), size-cur&(size-1))
		if err := m.ReadPhys(p[done:done+int(n)], pa); err != nil {
			return fmt.Errorf("x86: reading VA %#x (PA %#x): %w", cur, pa, err)
		}
		done += int(n)
	}
	return nil
}
