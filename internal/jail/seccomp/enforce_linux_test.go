package seccomp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a child that installs a filter and then
// runs one probe ("FILTER:PROBE"), or execs its arguments under a filter
// ("exec:FILTER"), the way the jail stage does. Each refused call needs its
// own child, since the first one ends the process.
const childEnv = "BULWARK_SECCOMP_CHILD"

func TestMain(m *testing.M) {
	if runtime.GOARCH != "amd64" {
		// The filters are for x86_64; Install refuses elsewhere.
		os.Exit(0)
	}
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}

// Exit codes of a child that survived its probe.
const (
	exitOK        = 0
	exitSetup     = 10 // the filter did not install
	exitNotDenied = 11 // the probe ran although it should have been refused
	exitBadErrno  = 12 // the probe got another answer than the expected errno
	exitUnknown   = 13
)

// probe is one syscall made by a child under a filter.
type probe struct {
	call func() (r1 uintptr, errno syscall.Errno)
	// want is the errno the filter answers with; 0 means the call must
	// succeed (or fail for its own reasons, not the filter's).
	want syscall.Errno
}

func raw(nr uintptr, a ...uintptr) func() (uintptr, syscall.Errno) {
	var args [6]uintptr
	copy(args[:], a)
	return func() (uintptr, syscall.Errno) {
		r1, _, e := unix.RawSyscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		return r1, e
	}
}

var probes = map[string]probe{
	"getpid": {call: raw(unix.SYS_GETPID)},
	// A raw fork: clone(SIGCHLD) without CLONE_THREAD.
	"fork":           {call: raw(unix.SYS_CLONE, uintptr(unix.SIGCHLD))},
	"socket_inet":    {call: raw(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0)},
	"socket_unix":    {call: raw(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0)},
	"mount":          {call: raw(unix.SYS_MOUNT)},
	"ptrace":         {call: raw(unix.SYS_PTRACE, unix.PTRACE_TRACEME)},
	"unshare":        {call: raw(unix.SYS_UNSHARE, unix.CLONE_NEWUSER)},
	"bpf":            {call: raw(unix.SYS_BPF)},
	"prctl_dumpable": {call: raw(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 1)},
	"prctl_name": {call: func() (uintptr, syscall.Errno) {
		name := []byte("probe\x00")
		r1, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0)
		return r1, e
	}},
	"io_uring_setup_enosys": {call: raw(unix.SYS_IO_URING_SETUP, 8), want: unix.ENOSYS},
	"clone3_enosys":         {call: raw(unix.SYS_CLONE3), want: unix.ENOSYS},
	"execveat":              {call: raw(unix.SYS_EXECVEAT)},
	"kexec_load":            {call: raw(unix.SYS_KEXEC_LOAD)},
	"userfaultfd":           {call: raw(unix.SYS_USERFAULTFD)},
	"perf_event_open":       {call: raw(unix.SYS_PERF_EVENT_OPEN)},
}

func child(v string) int {
	filter, what, _ := strings.Cut(v, ":")
	if filter == "exec" {
		// The jail stage: filter, then execve.
		if err := Install(what); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitSetup
		}
		err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		return exitSetup
	}
	p, ok := probes[what]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown probe", what)
		return exitUnknown
	}
	if filter == VMM {
		// QEMU is a C program: SIGSYS takes its default action and kills
		// it. Make this child behave the same (a Monitor child keeps the Go
		// runtime's handler, which reports "SIGSYS: bad system call").
		// SAFETY: a sigaction struct (handler SIG_DFL, no flags) on the
		// stack, read by the kernel during the call only.
		var act [4]uint64 // handler, flags, restorer, mask
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGSYS), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
			fmt.Fprintln(os.Stderr, "sigaction:", e)
			return exitSetup
		}
	}
	if err := Install(filter); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitSetup
	}
	busyRuntime()
	r1, e := p.call()
	if what == "fork" && e == 0 && r1 == 0 {
		// The filter failed and this is the forked copy: leave quietly.
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	if p.want != 0 {
		if e != p.want {
			fmt.Fprintf(os.Stderr, "%s: got errno %v, want %v\n", what, e, p.want)
			return exitBadErrno
		}
		return exitOK
	}
	if !expectAllowed[what] {
		fmt.Fprintf(os.Stderr, "%s: not refused (r1=%d errno=%v)\n", what, r1, e)
		return exitNotDenied
	}
	busyRuntime()
	return exitOK
}

// expectAllowed names the probes that must get through every filter.
var expectAllowed = map[string]bool{"getpid": true, "prctl_name": true}

// busyRuntime makes the Go runtime do what it does between the jail's
// filter load and execve, and more: start threads (goroutines blocked in
// syscalls on locked threads), collect garbage, sleep, preempt.
func busyRuntime() {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			ts := unix.NsecToTimespec(int64(5 * time.Millisecond))
			unix.Nanosleep(&ts, nil)
			buf := make([]byte, 1<<20)
			for i := range buf {
				buf[i] = byte(i)
			}
			runtime.Gosched()
		}()
	}
	wg.Wait()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
}

// runChild runs the test binary as a child with env v and returns its wait
// status and stderr.
func runChild(t *testing.T, v string, args ...string) (syscall.WaitStatus, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+v)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", v, err)
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus), stderr.String()
}

func TestEnforceVMM(t *testing.T) {
	for _, tc := range []struct {
		probe  string
		denied bool
	}{
		{"getpid", false},
		{"prctl_name", false},
		{"io_uring_setup_enosys", false},
		{"clone3_enosys", false},
		{"fork", true},
		{"socket_inet", true},
		{"socket_unix", true},
		{"mount", true},
		{"ptrace", true},
		{"unshare", true},
		{"bpf", true},
		{"prctl_dumpable", true},
		{"execveat", true},
		{"kexec_load", true},
		{"userfaultfd", true},
		{"perf_event_open", true},
	} {
		t.Run(tc.probe, func(t *testing.T) {
			t.Parallel()
			ws, stderr := runChild(t, VMM+":"+tc.probe)
			if tc.denied {
				if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
					t.Fatalf("want killed by SIGSYS, got %v (exit %d) stderr %q", ws, ws.ExitStatus(), stderr)
				}
				return
			}
			if ws.Signaled() || ws.ExitStatus() != exitOK {
				t.Fatalf("want exit 0, got %v (signal %v, exit %d) stderr %q", ws, ws.Signal(), ws.ExitStatus(), stderr)
			}
		})
	}
}

func TestEnforceMonitor(t *testing.T) {
	for _, tc := range []struct {
		probe  string
		denied bool
	}{
		{"getpid", false},
		{"fork", true},
		{"socket_inet", true},
		{"socket_unix", true},
		{"mount", true},
		{"ptrace", true},
		{"unshare", true},
		{"bpf", true},
		{"execveat", true},
		{"io_uring_setup_enosys", true}, // the monitor gets no errno answer: trap
	} {
		t.Run(tc.probe, func(t *testing.T) {
			t.Parallel()
			ws, stderr := runChild(t, Monitor+":"+tc.probe)
			if tc.denied {
				// The Go runtime catches SIGSYS, prints the faulting PC and
				// exits with status 2; that report is what reaches the
				// monitor's log.
				if ws.Signaled() || ws.ExitStatus() != 2 || !strings.Contains(stderr, "SIGSYS: bad system call") {
					t.Fatalf("want the Go runtime's SIGSYS report, got %v (exit %d) stderr %q", ws, ws.ExitStatus(), firstLines(stderr, 3))
				}
				return
			}
			if ws.Signaled() || ws.ExitStatus() != exitOK {
				t.Fatalf("want exit 0, got %v (exit %d) stderr %q", ws, ws.ExitStatus(), firstLines(stderr, 3))
			}
		})
	}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	return strings.Join(l[:min(n, len(l))], "\n")
}

// TestExecUnderVMM does what the jail stage does (filter, then execve) with
// a small C program: the dynamic loader and libc start-up must get through.
func TestExecUnderVMM(t *testing.T) {
	prog, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1):", err)
	}
	ws, stderr := runChild(t, "exec:"+VMM, prog)
	if ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("true under the vmm filter: %v (signal %v, exit %d) stderr %q", ws, ws.Signal(), ws.ExitStatus(), stderr)
	}
}

// TestQEMUUnderVMM starts QEMU the way Bulwark does (memfd RAM as
// /proc/self/fd/N, QMP on a pre-bound listening socket, -sandbox on) under
// the vmm filter, talks QMP to it and quits it. It covers start-up (loader,
// libraries, modules, -sandbox, io_uring refused) and a clean exit; the
// guest-running paths were measured separately (testdata).
func TestQEMUUnderVMM(t *testing.T) {
	qemu := os.Getenv("QEMU")
	if qemu == "" {
		qemu = "/usr/bin/qemu-system-x86_64"
	}
	if _, err := os.Stat(qemu); err != nil {
		t.Skip("no QEMU:", err)
	}
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "qmp.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	// Only QEMU keeps the listening socket, so a QEMU that dies takes it
	// along and the QMP reads below end at once.
	ln.SetUnlinkOnClose(false)
	qmpFile, err := ln.File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	memfd, err := unix.MemfdCreate("bulwark-ram", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	mem := os.NewFile(uintptr(memfd), "ram")
	defer mem.Close()
	if err := mem.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	// fd 3: RAM, fd 4: QMP.
	cmd := exec.Command(os.Args[0], qemu,
		"-name", "guest=seccomp-test,debug-threads=on", "-nodefaults", "-no-user-config", "-nographic",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-machine", "microvm,acpi=on,x-option-roms=off,isa-serial=on,memory-backend=mem0",
		"-accel", "tcg", "-smp", "2", "-m", "64M", "-S",
		"-object", "memory-backend-file,id=mem0,size=64M,mem-path=/proc/self/fd/3,share=on",
		"-chardev", "socket,id=qmp,fd=4,server=on,wait=off", "-mon", "chardev=qmp,mode=control")
	cmd.Env = append(os.Environ(), childEnv+"=exec:"+VMM)
	cmd.ExtraFiles = []*os.File{mem, qmpFile}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	qmpFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()

	c, err := net.DialTimeout("unix", filepath.Join(dir, "qmp.sock"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	for _, cmd := range []string{"qmp_capabilities", "query-status", "cont", "stop", "quit"} {
		if _, err := fmt.Fprintf(c, "{\"execute\": %q}\n", cmd); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	// QEMU answers, then exits on quit; a SIGSYS shows as a signal here.
	buf := make([]byte, 1<<16)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("QEMU under the vmm filter: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("QEMU did not quit\n%s", out.String())
	}
}
