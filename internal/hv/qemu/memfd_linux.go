package qemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Guest RAM is an anonymous memfd made by the daemon, never a file in a
// directory: nothing on the host names it, it is freed when the last
// descriptor closes, and its size is sealed so that QEMU can neither grow
// nor shrink it. QEMU maps it through /proc/self/fd/3.
const memSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

type memfd struct{ f *os.File }

func newMemfd(vmName string, size uint64) (memfd, error) {
	fd, err := unix.MemfdCreate("bulwark-ram:"+vmName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return memfd{}, fmt.Errorf("guest memory: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "guest-ram")
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return memfd{}, fmt.Errorf("guest memory: size %d: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, memSeals); err != nil {
		f.Close()
		return memfd{}, fmt.Errorf("guest memory: seal: %w", err)
	}
	return memfd{f: f}, nil
}

// dup returns the daemon's own descriptor of guest RAM (kept while the VM
// runs, for introspection).
func (m memfd) dup() (*os.File, error) {
	fd, err := unix.FcntlInt(m.f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("guest memory: %w", err)
	}
	return os.NewFile(uintptr(fd), "guest-ram"), nil
}

// readOnly opens a new read-only description of guest RAM through the
// daemon's own descriptor (a magic link of this process, not a path
// anyone else controls).
func readOnly(f *os.File) (*os.File, error) {
	return os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDONLY|unix.O_CLOEXEC, 0)
}

// takeBackMemory gets the guest RAM descriptor from a running QEMU after a
// daemon restart (pidfd_getfd: a duplicate of what QEMU holds, no path
// lookup) and checks it is the memfd the daemon made: a regular file of
// the VM's RAM size carrying exactly Bulwark's seals. A compromised QEMU
// can only hand back a descriptor it already had.
func takeBackMemory(pidfd int, size uint64) (*os.File, error) {
	fd, err := unix.PidfdGetfd(pidfd, fdMem, 0)
	if err != nil {
		return nil, fmt.Errorf("guest memory: pidfd_getfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "guest-ram")
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Size) != size || err != nil || seals != memSeals {
		f.Close()
		return nil, fmt.Errorf("guest memory: descriptor %d of the hypervisor is not the VM's RAM (mode %o, size %d, seals %#x, %v)", fdMem, st.Mode, st.Size, seals, err)
	}
	return f, nil
}

// reconnectNIC points a running QEMU's NIC socket at the switch port the
// new daemon made: the duplicate shares QEMU's socket, so connecting it
// re-targets QEMU's sends. The socket must be the one the daemon bound for
// that NIC (its local address says so).
func reconnectNIC(pidfd, qfd int, local, remote string) error {
	fd, err := unix.PidfdGetfd(pidfd, qfd, 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd: %w", err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("descriptor %d is not a socket: %w", qfd, err)
	}
	if u, ok := sa.(*unix.SockaddrUnix); !ok || u.Name != local {
		return fmt.Errorf("descriptor %d is not the NIC socket %s", qfd, local)
	}
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
		return fmt.Errorf("descriptor %d is not a datagram socket", qfd)
	}
	return unix.Connect(fd, &unix.SockaddrUnix{Name: remote})
}
