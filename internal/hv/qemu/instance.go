package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// instance is one QEMU process.
type instance struct {
	handle hv.Handle
	done   chan struct{}
	mem    *os.File // the daemon's descriptor of guest RAM; closed at exit

	mu        sync.Mutex
	qmp       *QMP
	requested bool   // a SHUTDOWN event was seen or the daemon asked to quit
	reason    string // why the daemon killed it, if it did
	exit      hv.Exit
}

func newInstance(pid int, runDir string, mem *os.File) *instance {
	return &instance{handle: hv.Handle{PID: pid, RunDir: runDir}, done: make(chan struct{}), mem: mem}
}

// OpenMemory implements hv.MemoryOpener.
func (in *instance) OpenMemory() (*os.File, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.mem == nil {
		return nil, errors.New("the VM has stopped")
	}
	return readOnly(in.mem)
}

// watchLog kills the VM when QEMU's log grows past MaxLog: a flooding
// hypervisor must not fill the host's disk (RLIMIT_FSIZE stops it only at
// the size of its largest disk).
func (in *instance) watchLog() {
	t := time.NewTicker(logCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-in.done:
			return
		case <-t.C:
		}
		if n := logSize(in.handle.RunDir); n > MaxLog {
			in.mu.Lock()
			in.reason = fmt.Sprintf("the hypervisor's log grew past %d MiB (%d bytes); killed", MaxLog>>20, n)
			in.mu.Unlock()
			syscall.Kill(in.handle.PID, syscall.SIGKILL)
			return
		}
	}
}

// connect waits for the QMP socket and checks the VM runs.
func (in *instance) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// The QMP socket is a listening socket the daemon made, so a dial can
	// succeed while QEMU is already dead and will never greet: stop
	// waiting for the greeting as soon as QEMU exits.
	go func() {
		select {
		case <-in.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	path := filepath.Join(in.handle.RunDir, qmpSock)
	for {
		q, err := DialQMP(ctx, path)
		if err == nil {
			in.mu.Lock()
			in.qmp = q
			in.mu.Unlock()
			go in.watchEvents(q)
			return nil
		}
		select {
		case <-in.done:
			return errors.New("qemu exited")
		case <-ctx.Done():
			select {
			case <-in.done:
				return errors.New("qemu exited")
			default:
			}
			return fmt.Errorf("qmp: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (in *instance) watchEvents(q *QMP) {
	for {
		select {
		case ev := <-q.Events():
			if ev.Name == "SHUTDOWN" {
				in.mu.Lock()
				in.requested = true
				in.mu.Unlock()
			}
		case <-q.Done():
			return
		}
	}
}

// reap waits for a child QEMU and records its exit.
func (in *instance) reap(cmd *exec.Cmd) {
	err := cmd.Wait()
	status := "exit status 0"
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
			switch ws.Signal() {
			case syscall.SIGSYS:
				status += ": it made a system call outside its seccomp allow list"
			case syscall.SIGXFSZ:
				status += ": it wrote past its file size limit"
			}
		} else {
			status = ee.Error()
		}
	} else if err != nil {
		status = err.Error()
	}
	in.finish(status)
}

// watchPidfd waits for a re-attached (non-child) QEMU to exit.
func (in *instance) watchPidfd(fd int) {
	waitPidfd(fd)
	syscall.Close(fd)
	in.finish("exited (status unknown: not a child of this daemon)")
}

func (in *instance) finish(status string) {
	// Give the event reader a moment to see a SHUTDOWN that raced the exit.
	in.mu.Lock()
	q := in.qmp
	in.mu.Unlock()
	if q != nil {
		select {
		case <-q.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	in.mu.Lock()
	in.exit = hv.Exit{Requested: in.requested, Status: status, Message: logTail(in.handle.RunDir), Reason: in.reason}
	if in.qmp != nil {
		in.qmp.Close()
	}
	// Guest RAM may hold the tenant's secrets: the daemon's reference goes
	// with the process.
	if in.mem != nil {
		in.mem.Close()
		in.mem = nil
	}
	in.mu.Unlock()
	close(in.done)
}

func (in *instance) Handle() hv.Handle     { return in.handle }
func (in *instance) Done() <-chan struct{} { return in.done }

func (in *instance) Exit() hv.Exit {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.exit
}

func (in *instance) exec(ctx context.Context, cmd string, args, out any) error {
	in.mu.Lock()
	q := in.qmp
	in.mu.Unlock()
	if q == nil {
		return errors.New("qmp not connected")
	}
	return q.Execute(ctx, cmd, args, out)
}

func (in *instance) Status(ctx context.Context) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := in.exec(ctx, "query-status", nil, &st)
	return st.Status, err
}

// Registers reads every vCPU's registers through the human monitor
// ("info registers -a"): QMP has no structured command for them.
func (in *instance) Registers(ctx context.Context) ([]hv.Registers, error) {
	var text string
	if err := in.exec(ctx, "human-monitor-command", map[string]string{"command-line": "info registers -a"}, &text); err != nil {
		return nil, err
	}
	return hv.ParseInfoRegisters(text)
}

func (in *instance) Pause(ctx context.Context) error  { return in.exec(ctx, "stop", nil, nil) }
func (in *instance) Resume(ctx context.Context) error { return in.exec(ctx, "cont", nil, nil) }

func (in *instance) Shutdown(ctx context.Context) error {
	return in.exec(ctx, "system_powerdown", nil, nil)
}

// Kill asks QEMU to quit, and sends SIGKILL if it has not gone within a second.
func (in *instance) Kill(ctx context.Context) error {
	in.mu.Lock()
	in.requested = true
	in.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	_ = in.exec(qctx, "quit", nil, nil)
	cancel()
	select {
	case <-in.done:
		return nil
	case <-time.After(time.Second):
	}
	// The PID cannot have been recycled before done closes: for a child we
	// have not reaped it yet, for an attached process the pidfd pins it.
	if err := syscall.Kill(in.handle.PID, syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) && err != syscall.ESRCH {
		return err
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (in *instance) DialConsole(ctx context.Context) (net.Conn, error) {
	return dialConsole(ctx, in.handle.RunDir)
}

func (in *instance) Detach() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.qmp != nil {
		in.qmp.Close()
	}
	if in.mem != nil {
		in.mem.Close()
		in.mem = nil
	}
}
