package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// supervise records inst as the VM's live instance, copies its console to
// the rotating log, and records how it ends.
func (m *Manager) supervise(name string, e *entry, inst hv.Instance) {
	sup := make(chan struct{})
	e.wmu.Lock()
	e.inst, e.super = inst, sup
	e.wmu.Unlock()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		m.pumpConsole(name, inst)
	}()
	go func() {
		select {
		case <-inst.Done():
		case <-m.closing:
			// Daemon shutting down: the VM keeps running and the next
			// daemon re-attaches; record nothing.
			return
		}
		// Let the console reach EOF so the log holds the guest's last words
		// before the exit is reported.
		select {
		case <-pumped:
		case <-time.After(2 * time.Second):
		}
		m.recordExit(name, e, inst, sup)
	}()
}

func (m *Manager) recordExit(name string, e *entry, inst hv.Instance, sup chan struct{}) {
	defer close(sup)
	exit := inst.Exit()
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.inst = nil
	ctx := context.Background()
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		m.log.Error("vm exited but its record is gone", "vm", name, "err", err)
		return
	}
	st, reason := FinalState(v.State, exit)
	rt := v.Runtime
	rt.PID, rt.StartTime = 0, 0
	if err := m.store.SetState(ctx, name, st, reason, rt); err != nil {
		m.log.Error("record vm exit", "vm", name, "err", err)
	}
	if st == vm.Crashed {
		m.metrics.crashes.Inc()
		m.log.Warn("vm crashed", "vm", name, "reason", reason)
	} else {
		m.log.Info("vm stopped", "vm", name, "status", exit.Status)
	}
	m.detach(name)
	if m.console != nil {
		m.console.VMStopped(name)
	}
	// Guest RAM may hold the tenant's secrets: do not leave it on the host.
	os.Remove(filepath.Join(inst.Handle().RunDir, "mem"))
}

// FinalState decides what a hypervisor exit means: a requested shutdown
// (operator stop or guest power-off) is "stopped", anything else "crashed"
// with the exit status and the hypervisor's last words as the reason.
func FinalState(cur vm.State, exit hv.Exit) (vm.State, string) {
	if cur == vm.Stopping || exit.Requested {
		return vm.Stopped, ""
	}
	reason := "hypervisor exited unexpectedly: " + exit.Status
	if exit.Message != "" {
		reason += ": " + lastLine(exit.Message)
	}
	return vm.Crashed, reason
}

func lastLine(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}

// pumpConsole copies guest serial output into the bounded rotating log,
// reconnecting if the stream drops while the VM lives.
func (m *Manager) pumpConsole(name string, inst hv.Instance) {
	path := m.ConsoleLogPath(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		m.log.Error("console log dir", "vm", name, "err", err)
		return
	}
	lg, err := consolelog.Open(path, m.cfg.ConsoleLogMax, m.cfg.ConsoleKeep)
	if err != nil {
		m.log.Error("console log", "vm", name, "err", err)
		return
	}
	defer lg.Close()
	buf := make([]byte, 32<<10)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := inst.DialConsole(ctx)
		cancel()
		if err == nil {
			// QEMU's exit closes the stream (EOF); only a detaching daemon
			// cuts it short.
			stop := make(chan struct{})
			go func() {
				select {
				case <-stop:
				case <-m.closing:
				}
				conn.Close()
			}()
			m.setConsoleConn(name, conn)
			err = m.copyConsole(name, lg, conn, buf)
			m.setConsoleConn(name, nil)
			close(stop)
			conn.Close()
		}
		select {
		case <-inst.Done():
			return
		case <-m.closing:
			return
		case <-time.After(200 * time.Millisecond):
		}
		if err != nil && !errors.Is(err, io.EOF) {
			m.log.Debug("console reconnect", "vm", name, "err", err)
		}
	}
}

// copyConsole copies one connection's output to the log and the sink
// until it ends.
func (m *Manager) copyConsole(name string, lg io.Writer, conn net.Conn, buf []byte) error {
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := lg.Write(buf[:n]); werr != nil {
				m.log.Warn("console log write", "vm", name, "err", werr)
			}
			if m.console != nil {
				m.console.Output(name, buf[:n])
			}
		}
		if err != nil {
			return err
		}
	}
}

// Recover re-attaches to the VMs an earlier daemon left running. A VM whose
// hypervisor process is gone is recorded as crashed.
func (m *Manager) Recover(ctx context.Context) error {
	vms, err := m.store.ListVMs(ctx)
	if err != nil {
		return err
	}
	for _, v := range vms {
		if !v.State.Active() {
			continue
		}
		if err := m.recoverOne(ctx, v); err != nil {
			m.log.Error("recover vm", "vm", v.Spec.Name, "err", err)
		}
	}
	return nil
}

func (m *Manager) recoverOne(ctx context.Context, v *vm.VM) error {
	name := v.Spec.Name
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	h := hv.Handle{PID: v.Runtime.PID, StartTime: v.Runtime.StartTime, RunDir: v.Runtime.RunDir}
	inst, err := m.backend.Attach(ctx, h)
	if err != nil {
		reason := "hypervisor process exited while the daemon was not running"
		if !errors.Is(err, hv.ErrGone) {
			reason = fmt.Sprintf("re-attach failed: %v", err)
		}
		rt := v.Runtime
		rt.PID, rt.StartTime = 0, 0
		m.metrics.crashes.Inc()
		return m.store.SetState(ctx, name, vm.Crashed, reason, rt)
	}
	// The hypervisor keeps sending to the same port sockets: recreate them.
	if _, err := m.attach(name, v.Runtime, v.Spec.NICs); err != nil {
		m.log.Error("re-attach ports", "vm", name, "err", err)
	}
	st := v.State
	switch s, err := inst.Status(ctx); {
	case err != nil:
		m.log.Warn("status after re-attach", "vm", name, "err", err)
	case s == "paused":
		st = vm.Paused
	case s == "running":
		st = vm.Running
	}
	if err := m.store.SetState(ctx, name, st, "", v.Runtime); err != nil {
		inst.Detach()
		return err
	}
	m.log.Info("vm re-attached", "vm", name, "pid", h.PID, "state", st)
	m.supervise(name, e, inst)
	return nil
}

// Close detaches from every VM without stopping them.
func (m *Manager) Close() {
	m.closeOnce.Do(func() { close(m.closing) })
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		e.wmu.Lock()
		if e.inst != nil {
			e.inst.Detach()
		}
		e.wmu.Unlock()
	}
}
