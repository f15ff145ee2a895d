package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SelfExe is the program that runs the jail side (`bulwark jail-exec`):
// the daemon's own binary through the magic link, which needs no path walk
// and survives the binary being replaced on disk. Tests point it at the
// test binary.
var SelfExe = "/proc/self/exe"

// Command is the argument that selects the jail side in SelfExe.
const Command = "jail-exec"

// setupTimeout bounds the jail side's set-up (mounts, exec).
const setupTimeout = 30 * time.Second

// Namespaces every jailed program gets. The cgroup namespace is entered
// by the jail side after the caller has placed it in its cgroup.
const cloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET

// Start launches spec.Path in a new jail. files become descriptors
// 3..3+len(files)-1 of the program (the caller keeps its own copies);
// stdout and stderr receive its output (nil: /dev/null). place, if not
// nil, is called with the host PID before the jail side does anything, to
// put the process into its cgroup; an error there aborts the start.
//
// Start returns once the program has been exec'd (or failed to be). The
// caller owns the returned command and must Wait for it.
func Start(spec Spec, files []*os.File, stdout, stderr io.Writer, place func(pid int) error) (*exec.Cmd, error) {
	spec.NFiles = len(files)
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if len(body) > maxSpecBytes {
		return nil, fmt.Errorf("jail %s: spec of %d bytes is too large", spec.Name, len(body))
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("jail %s: socketpair: %w", spec.Name, err)
	}
	// Non-blocking so that the read below honours a deadline.
	unix.SetNonblock(fds[0], true)
	ctl := os.NewFile(uintptr(fds[0]), "jail-ctl")
	child := os.NewFile(uintptr(fds[1]), "jail-ctl-child")
	defer ctl.Close()

	cmd := exec.Command(SelfExe, Command)
	cmd.Args[0] = "bulwark-jail"
	// One processor and no asynchronous preemption: fewer runtime threads
	// making system calls between the seccomp filter and execve.
	cmd.Env = []string{"GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1"}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = append([]*os.File{child}, files...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: cloneFlags}
	err = cmd.Start()
	child.Close()
	if err != nil {
		return nil, fmt.Errorf("jail %s: start: %w", spec.Name, err)
	}
	fail := func(err error) (*exec.Cmd, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("jail %s: %w", spec.Name, err)
	}
	if place != nil {
		if err := place(cmd.Process.Pid); err != nil {
			return fail(err)
		}
	}
	ctl.SetDeadline(time.Now().Add(setupTimeout))
	if _, err := ctl.Write(body); err != nil {
		return fail(fmt.Errorf("send spec: %w", err))
	}
	if err := unix.Shutdown(fds[0], unix.SHUT_WR); err != nil {
		return fail(fmt.Errorf("send spec: %w", err))
	}
	// The jail side's descriptor closes on execve: EOF with no message is
	// success; anything else is its error.
	msg, err := io.ReadAll(io.LimitReader(ctl, 4096))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fail(fmt.Errorf("set-up did not finish within %s", setupTimeout))
		}
		return fail(err)
	}
	if len(msg) > 0 {
		return fail(errors.New(string(msg)))
	}
	return cmd, nil
}
