package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostNameMax is the kernel's HOST_NAME_MAX.
const hostNameMax = 64

// ctlFD is the jail side's end of the socketpair (descriptor 3 at start,
// moved above the payload descriptors before they are arranged).
var ctlFD = 3

// Main is the jail side, run as `bulwark jail-exec` by Start. It never
// returns: it execs the program or reports why it could not and exits.
// installSeccomp loads the named allow list (with no_new_privs, on every
// thread); it is passed in so that this package does not decide which
// filters exist.
func Main(installSeccomp func(name string) error) {
	runtime.LockOSThread()
	err := run(installSeccomp)
	msg := []byte(err.Error())
	if len(msg) == 0 {
		msg = []byte("unknown error")
	}
	unix.Write(ctlFD, msg)
	os.Exit(126)
}

func run(installSeccomp func(string) error) error {
	spec, err := readSpec()
	if err != nil {
		return err
	}
	if os.Getpid() != 1 {
		return errors.New("jail-exec must run as PID 1 of a new PID namespace (started by jail.Start)")
	}
	// The daemon may run under a strict umask (systemd UMask=0077); the
	// jail's mount points must be traversable by the program's uid.
	unix.Umask(0o022)
	if err := buildRoot(spec); err != nil {
		return err
	}
	host := spec.Name
	if len(host) > hostNameMax {
		host = host[:hostNameMax]
	}
	if err := unix.Sethostname([]byte(host)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	// Now that the daemon has placed us, our cgroup becomes the root of
	// what /proc/self/cgroup shows.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	if err := setRlimits(spec.Rlimits); err != nil {
		return err
	}
	if err := dropPrivileges(spec.UID, spec.GID); err != nil {
		return err
	}
	if err := arrangeFiles(spec.NFiles); err != nil {
		return err
	}
	if err := installSeccomp(spec.Seccomp); err != nil {
		return fmt.Errorf("seccomp %s: %w", spec.Seccomp, err)
	}
	err = unix.Exec(spec.Path, spec.Args, spec.Env)
	return fmt.Errorf("exec %s: %w", spec.Path, err)
}

func readSpec() (*Spec, error) {
	// Plain read(2) on the raw descriptor: no *os.File, whose finalizer
	// could later close descriptor 3 after the payload has moved there.
	body, err := io.ReadAll(io.LimitReader(rawReader(ctlFD), maxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if len(body) > maxSpecBytes {
		return nil, errors.New("spec too large")
	}
	var s Spec
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// rawReader reads a descriptor with plain read(2), outside the runtime's
// poller (the jail side keeps its system calls few and predictable).
type rawReader int

func (r rawReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func setRlimits(l Rlimits) error {
	set := func(res int, v uint64, name string) error {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("setrlimit %s=%d: %w", name, v, err)
		}
		return nil
	}
	if err := set(unix.RLIMIT_CORE, 0, "core"); err != nil {
		return err
	}
	for _, r := range []struct {
		res  int
		v    uint64
		name string
	}{{unix.RLIMIT_NOFILE, l.NoFile, "nofile"}, {unix.RLIMIT_NPROC, l.NProc, "nproc"}, {unix.RLIMIT_FSIZE, l.FSize, "fsize"}} {
		if r.v == 0 {
			continue
		}
		if err := set(r.res, r.v, r.name); err != nil {
			return err
		}
	}
	return nil
}

// dropPrivileges empties the capability bounding and ambient sets and
// switches to uid/gid without supplementary groups. Changing every uid
// from 0 to non-zero clears the permitted and effective sets; the check
// afterwards makes sure of it.
func dropPrivileges(uid, gid int) error {
	for c := 0; c <= 63; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The syscall package's set*id functions apply to every thread of the
	// process (the runtime has several).
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid %d: %w", uid, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, d := range data {
		if d.Effective != 0 || d.Permitted != 0 || d.Inheritable != 0 {
			return fmt.Errorf("capabilities left after dropping privileges: %+v", data)
		}
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return nil
}

// arrangeFiles moves the payload descriptors (4.. as started) to 3.. and
// marks every other descriptor above stderr close-on-exec, the control
// socket included.
func arrangeFiles(n int) error {
	hi, err := unix.FcntlInt(uintptr(ctlFD), unix.F_DUPFD_CLOEXEC, 4+n)
	if err != nil {
		return fmt.Errorf("move control descriptor: %w", err)
	}
	old := ctlFD
	ctlFD = hi
	unix.Close(old)
	for i := 0; i < n; i++ {
		if err := unix.Dup3(4+i, 3+i, 0); err != nil {
			return fmt.Errorf("payload descriptor %d: %w", i, err)
		}
	}
	if err := unix.CloseRange(uint(3+n), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	return nil
}
