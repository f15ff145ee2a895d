package itest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestDaemonKilledDuringStart: SIGKILL of the daemon at any moment of `vm
// start` never leaves a hypervisor running that the next daemon does not
// know about, so a VM never runs twice on the same disks. After each crash
// the new daemon either re-attaches to the VM (recorded running, exactly
// one process in its cgroup) or kills what is in its cgroup (recorded
// crashed, none); and the VM can then be started again with exactly one
// process.
func TestDaemonKilledDuringStart(t *testing.T) {
	h := newHost(t)
	h.createVM("orph")
	for i, delay := range []time.Duration{10, 40, 80, 150, 300} {
		delay *= time.Millisecond
		cmd := exec.Command(binPath, "--socket", h.socket, "vm", "start", "orph")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		h.kill()
		cmd.Wait()
		h.startDaemon()
		v := h.vm("orph")
		pids := h.cgroupPIDs("orph")
		switch v.State {
		case vm.Running:
			if len(pids) != 1 || pids[0] != v.Runtime.PID {
				t.Fatalf("round %d (%v): running with pid %d, cgroup holds %v", i, delay, v.Runtime.PID, pids)
			}
		case vm.Crashed, vm.Stopped, vm.Defined:
			if len(pids) != 0 {
				t.Fatalf("round %d (%v): %s but its cgroup still holds %v", i, delay, v.State, pids)
			}
		default:
			t.Fatalf("round %d (%v): state %s after restart", i, delay, v.State)
		}
		t.Logf("round %d, killed %v into start: %s %q", i, delay, v.State, v.Reason)
		if !v.State.Active() {
			h.mustCLI(&v, "vm", "start", "orph")
		}
		if pids := h.cgroupPIDs("orph"); len(pids) != 1 {
			t.Fatalf("round %d: after start the cgroup holds %v, want exactly one hypervisor", i, pids)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := h.c.StopVM(ctx, "orph", true, 0); err != nil {
			t.Fatalf("round %d: stop: %v", i, err)
		}
		cancel()
	}
}
