package mem

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// RAM is a guest's RAM backing file (QEMU's memory-backend-file with
// share=on) mapped read-only into the host process.
//
// The mapping is PROT_READ and MAP_SHARED of a descriptor opened O_RDONLY:
// MAP_SHARED so that the view follows the running guest without copying
// its RAM, and never writable because the monitor must not be able to
// change guest memory — not by a bug, and not if an attacker who took over
// the monitor by way of hostile guest data tries to. With an O_RDONLY
// descriptor the kernel refuses any later mprotect to PROT_WRITE on a
// shared mapping, so the protection does not rest on this code alone.
//
// RAM is safe for concurrent use; Close waits for reads in progress.
type RAM struct {
	mu      sync.RWMutex
	data    []byte // nil once closed
	layout  Layout
	size    uint64
	regions []Region
}

var errClosed = errors.New("mem: RAM view is closed")

// OpenRAM maps the RAM file at path, ramSize bytes of guest RAM laid out as
// QEMU's microvm machine lays it out (MicrovmLayout). It is for tools and
// benchmarks on a RAM file they made themselves: the daemon never opens
// guest RAM by path (it hands the monitor a descriptor of the VM's memfd).
// Even so the path must name a regular file, not a symbolic link
// (O_NOFOLLOW), and a FIFO cannot block the open (O_NONBLOCK; MapRAM then
// refuses anything but a regular file). The descriptor is closed once
// mapped.
func OpenRAM(path string, ramSize uint64) (*RAM, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mem: open guest RAM: %w", err)
	}
	defer f.Close()
	return MapRAM(f, MicrovmLayout(ramSize))
}

// MapRAM maps the RAM file f (opened read-only, as the monitor receives
// it from the daemon) with layout l. f must be a regular file opened
// O_RDONLY: a writable descriptor is refused, so that a caller cannot hand
// the monitor more access than it needs. f stays open and owned by the
// caller; the mapping outlives it.
func MapRAM(f *os.File, l Layout) (*RAM, error) {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("mem: guest RAM descriptor: %w", err)
	}
	if flags&unix.O_ACCMODE != unix.O_RDONLY {
		return nil, fmt.Errorf("mem: guest RAM file %s is open for writing; a read-only descriptor is required", f.Name())
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("mem: stat guest RAM file %s: %w", f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("mem: guest RAM file %s is not a regular file", f.Name())
	}
	if st.Size < 0 {
		return nil, fmt.Errorf("mem: guest RAM file %s has negative size", f.Name())
	}
	if err := l.Validate(uint64(st.Size)); err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, f.Name())
	}
	span := l.fileSpan()
	data, err := unix.Mmap(int(f.Fd()), 0, int(span), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mem: mmap %d bytes of guest RAM file %s: %w", span, f.Name(), err)
	}
	l = l.clone()
	return &RAM{data: data, layout: l, size: l.size(), regions: l.regions()}, nil
}

// Size is one past the highest guest-physical RAM address.
func (r *RAM) Size() uint64 { return r.size }

// Regions lists the guest-physical RAM runs (two for microvm guests with
// more than 3 GiB).
func (r *RAM) Regions() []Region { return append([]Region(nil), r.regions...) }

// Layout returns a copy of the GPA-to-file layout.
func (r *RAM) Layout() Layout { return r.layout.clone() }

// ReadPhys copies len(p) bytes of guest RAM at gpa into p. The read must be
// entirely inside RAM (it may cross from one range into a range that is
// adjacent in GPA); otherwise nothing is read and the error wraps
// ErrNotRAM. A host fault of the mapping (the file was truncated) returns
// an error wrapping ErrFault.
func (r *RAM) ReadPhys(p []byte, gpa uint64) error {
	if len(p) == 0 {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.data == nil {
		return errClosed
	}
	if !r.layout.covers(gpa, uint64(len(p))) {
		return notRAM(gpa, len(p))
	}
	cur, done := gpa, 0
	for i := r.layout.find(gpa); i >= 0 && i < len(r.layout.Ranges) && done < len(p); i++ {
		rg := r.layout.Ranges[i]
		off := rg.Offset + (cur - rg.GPA)
		n := min(uint64(len(p)-done), rg.Size-(cur-rg.GPA))
		if err := safeCopy(p[done:done+int(n)], r.data[off:off+n]); err != nil {
			return fmt.Errorf("mem: read of %d bytes at GPA %#x: %w", len(p), gpa, err)
		}
		done += int(n)
		cur += n
	}
	return nil
}

// Close unmaps the RAM. Later reads fail; Close may be called again.
func (r *RAM) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		return nil
	}
	err := unix.Munmap(r.data)
	r.data = nil
	if err != nil {
		return fmt.Errorf("mem: munmap guest RAM: %w", err)
	}
	return nil
}
