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
	if m.cg != nil && exit.Reason == "" {
		if n := m.cg.OOMKills(name); n > 0 {
			limit, what := int64(v.Spec.MemoryMiB), "guest RAM"
			if r := v.Spec.Resources; r != nil && r.Memory.LimitMiB > 0 {
				limit, what = r.Memory.LimitMiB, "memory limit"
			}
			exit.Reason = fmt.Sprintf("out of memory: the VM's cap of %d MiB (%s %d MiB + %d MiB overhead) was reached and the kernel killed the hypervisor",
				limit+int64(m.cfg.MemOverheadMiB), what, limit, m.cfg.MemOverheadMiB)
		}
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
	m.releaseCgroup(name)
	if m.console != nil {
		m.console.VMStopped(name)
	}
}

// FinalState decides what a hypervisor exit means: a requested shutdown
// (operator stop or guest power-off) is "stopped", anything else "crashed"
// with the exit status and the hypervisor's last words as the reason. An
// exit the host caused (memory cap, log flood) is "crashed" with that
// cause even if a stop was under way.
func FinalState(cur vm.State, exit hv.Exit) (vm.State, string) {
	if exit.Reason != "" {
		return vm.Crashed, exit.Reason + " (" + exit.Status + ")"
	}
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
	live := map[string]bool{}
	for _, v := range vms {
		if !v.State.Active() {
			continue
		}
		ok, err := m.recoverOne(ctx, v)
		if err != nil {
			m.log.Error("recover vm", "vm", v.Spec.Name, "err", err)
		}
		live[v.Spec.Name] = ok
	}
	m.killOrphans(live)
	return nil
}

// killOrphans kills the processes of every VM cgroup that does not belong
// to a re-attached VM: a hypervisor the store does not know as running
// (the daemon died between starting it and recording it, or its re-attach
// failed) must not run on beside the next start of the same VM.
func (m *Manager) killOrphans(live map[string]bool) {
	if m.cg == nil {
		return
	}
	names, err := m.cg.List()
	if err != nil {
		m.log.Error("list vm cgroups", "err", err)
		return
	}
	for _, name := range names {
		if live[name] {
			continue
		}
		m.log.Warn("vm cgroup without a re-attached hypervisor; killing its processes", "vm", name)
		m.releaseCgroup(name)
	}
}

// recoverOne re-attaches one VM the store records as active and reports
// whether it now has a live hypervisor.
func (m *Manager) recoverOne(ctx context.Context, v *vm.VM) (bool, error) {
	name := v.Spec.Name
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	h := hv.Handle{PID: v.Runtime.PID, StartTime: v.Runtime.StartTime, RunDir: v.Runtime.RunDir}
	// The switch ports first: the hypervisor's NIC sockets are re-connected
	// to them during the attach.
	remotes, perr := m.attach(name, v.Runtime, v.Spec.NICs)
	if perr != nil {
		m.log.Error("re-attach ports", "vm", name, "err", perr)
	}
	inst, err := m.backend.Attach(ctx, h, hv.AttachConfig{Spec: v.Spec, NICRemotes: remotes})
	if err != nil {
		m.detach(name)
		reason := "hypervisor process exited while the daemon was not running"
		if !errors.Is(err, hv.ErrGone) {
			reason = fmt.Sprintf("re-attach failed: %v; its processes were killed", err)
		}
		rt := v.Runtime
		rt.PID, rt.StartTime = 0, 0
		m.metrics.crashes.Inc()
		m.log.Warn("vm not re-attached", "vm", name, "reason", reason)
		return false, m.store.SetState(ctx, name, vm.Crashed, reason, rt)
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
		return false, err
	}
	m.log.Info("vm re-attached", "vm", name, "pid", h.PID, "state", st)
	m.supervise(name, e, inst)
	return true, nil
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
