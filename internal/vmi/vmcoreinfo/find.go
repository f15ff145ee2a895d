package vmcoreinfo

import (
	"bytes"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// Bounds of Find.
const (
	// MaxCandidates bounds the "OSRELEASE=" occurrences Find parses. A
	// guest process can plant that many to make Find give up (it reports
	// so); it cannot make Find run longer.
	MaxCandidates = 4096
	// window is how much text Find reads at a candidate: the kernel's text
	// is at most a page (VMCOREINFO_BYTES) and ends with a NUL.
	window = 4096
	// scanChunk is the read size of the scan.
	scanChunk = 1 << 20
)

var marker = []byte("OSRELEASE=")

// Find searches guest RAM for VMCOREINFO: each occurrence of "OSRELEASE="
// (where the text starts) is read up to its NUL, within one page, parsed
// and validated; candidates that fail are counted and passed over, since
// the guest can plant fakes and the kernel image itself holds the format
// string "OSRELEASE=%s". It returns the first candidate that validates,
// with Rejected set, and its guest-physical address. The kernel keeps two
// identical copies (the vmcoreinfo_data page and the ELF note, which has a
// 24-byte note header before the text); the lower one is returned. The
// search is bounded by RAM size and MaxCandidates.
//
// The result is what the guest's memory claims; check it with Verify
// against the vCPU's CR3 before relying on it.
func Find(m mem.Physical) (*Info, uint64, error) {
	return find(m, (*Info).Validate)
}

// FindVerified is Find that also passes over candidates that fail Verify
// against the vCPU's cr3 and la57 (CR4.LA57), so that a forged text which
// validates but does not match the running kernel does not win (enough
// of them, MaxCandidates, still make it give up).
func FindVerified(m mem.Physical, cr3 uint64, la57 bool) (*Info, uint64, error) {
	return find(m, func(i *Info) error {
		if err := i.Validate(); err != nil {
			return err
		}
		return i.Verify(m, cr3, la57)
	})
}

// find returns the first candidate that check accepts.
func find(m mem.Physical, check func(*Info) error) (*Info, uint64, error) {
	var (
		found    *Info
		at       uint64
		rejected int
		gaveUp   bool
		lastErr  error
		buf      = make([]byte, window)
	)
	err := mem.ScanEach(m, marker, 0, m.Size(), scanChunk, func(gpa uint64) bool {
		if rejected == MaxCandidates {
			gaveUp = true
			return false
		}
		info, err := readCandidate(m, gpa, buf)
		if err == nil {
			err = check(info)
		}
		if err != nil {
			rejected++
			lastErr = fmt.Errorf("at GPA %#x: %w", gpa, err)
			return true
		}
		found, at = info, gpa
		return false
	})
	if err != nil {
		return nil, 0, fmt.Errorf("vmcoreinfo: searching guest RAM: %w", err)
	}
	if found == nil {
		if gaveUp {
			return nil, 0, fmt.Errorf("vmcoreinfo: gave up after rejecting %d candidates (planted fakes?); last %v", rejected, lastErr)
		}
		if rejected > 0 {
			return nil, 0, fmt.Errorf("vmcoreinfo: not found in %d bytes of guest RAM, %d candidates rejected; last %v", m.Size(), rejected, lastErr)
		}
		return nil, 0, fmt.Errorf("vmcoreinfo: no OSRELEASE= in %d bytes of guest RAM (kernel without CONFIG_CRASH_CORE?)", m.Size())
	}
	found.Rejected = rejected
	return found, at, nil
}

// readCandidate reads the text at gpa (up to a page, not past its RAM
// region) and parses it; the text must end with a NUL inside the page.
func readCandidate(m mem.Physical, gpa uint64, buf []byte) (*Info, error) {
	n := uint64(len(buf))
	for _, r := range mem.RegionsOf(m) {
		if gpa >= r.GPA && gpa < r.End() {
			n = min(n, r.End()-gpa)
		}
	}
	b := buf[:n]
	if err := m.ReadPhys(b, gpa); err != nil {
		return nil, err
	}
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		return nil, fmt.Errorf("vmcoreinfo: no NUL within %d bytes", n)
	}
	return Parse(b[:end])
}
