package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/internal/jail"
)

// Process is the daemon's handle on the monitor process: it starts it on
// first use, restarts it if it died, and serialises calls.
type Process struct {
	Exe      string // the bulwark binary
	Args     []string
	UID, GID int // the monitor's own unprivileged identity
	Log      *slog.Logger
	// Jail, if set, is the jail the monitor runs in (internal/jail): the
	// fields Path, Args, UID, GID and NFiles are filled in from the ones
	// above. Without it the monitor runs unjailed (tests of the protocol).
	Jail *jail.Spec
	// Place puts the monitor's process into its cgroup before it runs.
	Place func(pid int) error
	// Stderr receives the monitor's output (a size-capped log); nil: the
	// daemon's stderr.
	Stderr io.Writer

	mu   sync.Mutex
	conn *net.UnixConn
	cmd  *exec.Cmd
}

func (p *Process) start() error {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	parent := os.NewFile(uintptr(fds[0]), "monitor-parent")
	child := os.NewFile(uintptr(fds[1]), "monitor-child")
	defer child.Close()
	var out io.Writer = os.Stderr
	if p.Stderr != nil {
		out = p.Stderr
	}
	var cmd *exec.Cmd
	if p.Jail != nil {
		spec := *p.Jail
		spec.Path, spec.Args, spec.UID, spec.GID = p.Exe, append([]string{p.Exe}, p.Args...), p.UID, p.GID
		// The monitor dies with its socket: EOF ends Serve.
		cmd, err = jail.Start(spec, []*os.File{child}, out, out, p.Place)
		if err != nil {
			parent.Close()
			return fmt.Errorf("start monitor: %w", err)
		}
	} else {
		cmd = exec.Command(p.Exe, p.Args...)
		cmd.ExtraFiles = []*os.File{child} // fd 3 in the monitor
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
			Credential: &syscall.Credential{Uid: uint32(p.UID), Gid: uint32(p.GID),
				Groups: []uint32{}},
		}
		if err := cmd.Start(); err != nil {
			parent.Close()
			return fmt.Errorf("start monitor: %w", err)
		}
	}
	c, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		cmd.Process.Kill()
		return err
	}
	p.conn, p.cmd = c.(*net.UnixConn), cmd
	go cmd.Wait()
	if p.Log != nil {
		p.Log.Info("monitor started", "pid", cmd.Process.Pid, "uid", p.UID, "jailed", p.Jail != nil)
	}
	return nil
}

// Call sends one request with its descriptors and decodes the result into
// out. The descriptors stay the caller's.
func (p *Process) Call(ctx context.Context, req Request, files []*os.File, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		if err := p.start(); err != nil {
			return err
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Minute)
	}
	p.conn.SetDeadline(deadline)
	err = writeFrame(p.conn, body, files)
	var resp Response
	if err == nil {
		var rb []byte
		rb, _, err = readFrame(p.conn, MaxResponse)
		if err == nil {
			err = json.Unmarshal(rb, &resp)
		}
	}
	if err != nil {
		// A broken or slow monitor is replaced on the next call.
		p.stopLocked()
		return fmt.Errorf("monitor: %w", err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	if out != nil {
		return json.Unmarshal(resp.Result, out)
	}
	return nil
}

func (p *Process) stopLocked() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd = nil
	}
}

// Close stops the monitor.
func (p *Process) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

// PID is the monitor's process id (0 if not running).
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// ServeFD3 runs the monitor side on the descriptor the daemon passed.
func ServeFD3(h Handler) error {
	f := os.NewFile(3, "daemon")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("monitor: fd 3 is not the daemon's socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("monitor: fd 3 is not a Unix socket")
	}
	return Serve(uc, h)
}
