package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// maxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const maxInsns = 4096

// Install sets no_new_privs and loads the named filter for every thread of
// the process (SECCOMP_FILTER_FLAG_TSYNC). It cannot be undone; filters
// installed later, such as QEMU's own -sandbox, stack on top and can only
// refuse more.
//
// The load is done here rather than with go-seccomp-bpf's LoadFilter, which
// assembles with the library (see assemble.go) and, with TSYNC, discards the
// kernel's report of a thread it could not synchronise: that comes back as
// a positive return value (the thread's id), not as an error, and would
// leave the process silently unfiltered.
func Install(name string) error {
	if runtime.GOARCH != "amd64" {
		// The program would refuse every syscall of another architecture.
		return fmt.Errorf("seccomp filter %q: filters are written for x86_64, not %s", name, runtime.GOARCH)
	}
	insts, err := Program(name)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return fmt.Errorf("seccomp filter %q: assemble: %w", name, err)
	}
	if len(raw) > maxInsns {
		return fmt.Errorf("seccomp filter %q: %d instructions, kernel limit %d", name, len(raw), maxInsns)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}

	// no_new_privs is per thread and TSYNC copies it to the other threads
	// from the calling one, so both calls must run on the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp filter %q: set no_new_privs: %w", name, err)
	}
	// SAFETY: fprog points at prog, both live Go memory kept alive across
	// the call; the kernel copies the program before returning and keeps no
	// reference to it.
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp filter %q: load: %w", name, errno)
	}
	if tid != 0 {
		return fmt.Errorf("seccomp filter %q: load: thread %d could not be synchronised; no filter installed", name, tid)
	}
	return nil
}
