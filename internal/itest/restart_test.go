package itest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/image"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestDaemonRestart: VMs outlive the daemon (SIGTERM or kill -9) and the next
// daemon re-attaches to them; definitions committed before a kill -9 survive.
func TestDaemonRestart(t *testing.T) {
	h := newHost(t)
	h.createVM("keep")
	var v vm.VM
	h.mustCLI(&v, "vm", "start", "keep")
	pid := v.Runtime.PID
	h.waitConsole("keep", image.ReadyMarker, 1)

	// Definitions acknowledged just before a kill -9 are not lost.
	for i := 0; i < 10; i++ {
		h.createVM(fmt.Sprintf("def%d", i))
	}
	h.kill()
	h.startDaemon()
	vms, err := h.c.ListVMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 11 {
		t.Fatalf("after kill -9: %d VMs, want 11", len(vms))
	}
	got := h.vm("keep")
	if got.State != vm.Running || got.Runtime.PID != pid {
		t.Fatalf("after kill -9 + restart: %s pid %d, want running pid %d", got.State, got.Runtime.PID, pid)
	}
	// Still controllable, and the console is still collected.
	beat := lastHeartbeat(h.consoleLog("keep"))
	h.waitFor("heartbeats after re-attach", 30*time.Second, func() bool {
		return lastHeartbeat(h.consoleLog("keep")) > beat
	})
	h.mustCLI(&v, "vm", "pause", "keep")
	h.mustCLI(&v, "vm", "resume", "keep")
	if v.State != vm.Running {
		t.Fatalf("resume after re-attach: %s", v.State)
	}

	// SIGTERM: clean exit, socket removed, VM untouched.
	if err := h.term(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, h.logBuf)
	}
	if _, err := os.Stat(h.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left after SIGTERM: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("VM died with the daemon: %v", err)
	}
	h.startDaemon()
	if got := h.vm("keep"); got.State != vm.Running || got.Runtime.PID != pid {
		t.Fatalf("after SIGTERM + restart: %s pid %d", got.State, got.Runtime.PID)
	}
	// A re-attached VM (not our child) is still stopped gracefully, and its
	// exit is noticed through the pidfd.
	h.mustCLI(&v, "vm", "stop", "keep")
	if v.State != vm.Stopped {
		t.Fatalf("stop after re-attach: %s %s", v.State, v.Reason)
	}

	// A VM whose hypervisor died while no daemon was running is crashed.
	h.mustCLI(&v, "vm", "start", "keep")
	h.kill()
	syscallKill(t, v.Runtime.PID)
	h.startDaemon()
	got = h.vm("keep")
	if got.State != vm.Crashed || !strings.Contains(got.Reason, "while the daemon was not running") {
		t.Fatalf("VM killed during downtime: %s %q", got.State, got.Reason)
	}
}

// TestBadInput: invalid definitions are refused with the field named, and a
// corrupt kernel leaves a clear error state carrying QEMU's own message.
func TestBadInput(t *testing.T) {
	h := newHost(t)
	kernel := filepath.Join(imgDir, "vmlinuz")
	cases := []struct {
		args  []string
		field string
	}{
		{[]string{"vm", "create", "nokernel", "--kernel", "/nonexistent/vmlinuz"}, "kernel"},
		{[]string{"vm", "create", "zero", "--kernel", kernel, "--memory", "0"}, "memory_mib"},
		{[]string{"vm", "create", "huge", "--kernel", kernel, "--memory", "99999999"}, "memory_mib"},
		{[]string{"vm", "create", "../etc", "--kernel", kernel}, "name"},
		{[]string{"vm", "create", "Bad_Name", "--kernel", kernel}, "name"},
		{[]string{"vm", "create", strings.Repeat("a", 64), "--kernel", kernel}, "name"},
		{[]string{"vm", "create", "badmac", "--kernel", kernel, "--nic", "mac=01:00:00:00:00:01"}, "nics[0].mac"},
	}
	for _, c := range cases {
		_, stderr, err := h.cli(append(c.args, "-o", "json")...)
		if err == nil {
			t.Errorf("%v: accepted", c.args)
			continue
		}
		if !strings.Contains(stderr, `"field":"`+c.field+`"`) {
			t.Errorf("%v: stderr %q does not name field %s", c.args, stderr, c.field)
		}
	}
	// Duplicate names.
	h.createVM("dup")
	if _, stderr, err := h.cli("vm", "create", "dup", "--kernel", kernel); err == nil || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate accepted or unclear: %v %q", err, stderr)
	}
	// Unknown fields in a JSON spec are refused by the daemon, not ignored.
	spec := filepath.Join(t.TempDir(), "spec.json")
	os.WriteFile(spec, []byte(`{"name":"x","memory_mib":128,"kernel":"`+kernel+`","memroy":1}`), 0o644)
	if _, stderr, err := h.cli("vm", "create", "-f", spec); err == nil || !strings.Contains(stderr, "memroy") {
		t.Errorf("unknown field accepted or unnamed: %v %q", err, stderr)
	}

	// A corrupt kernel: QEMU refuses it and says why.
	bad := filepath.Join(h.dir, "corrupt-vmlinuz")
	os.WriteFile(bad, []byte(strings.Repeat("not a kernel ", 1000)), 0o644)
	var v vm.VM
	h.mustCLI(&v, "vm", "create", "corrupt", "--kernel", bad)
	if _, stderr, err := h.cli("vm", "start", "corrupt"); err == nil || !strings.Contains(stderr, "qemu") {
		t.Errorf("vm start of a corrupt kernel: %v %q, want a non-zero exit naming qemu's reason", err, stderr)
	}
	h.mustCLI(&v, "vm", "show", "corrupt")
	if v.State != vm.Crashed || !strings.Contains(v.Reason, "qemu") {
		t.Fatalf("corrupt kernel: state %s reason %q", v.State, v.Reason)
	}
	t.Logf("corrupt kernel reason: %s", v.Reason)
	// The daemon is still healthy afterwards.
	if _, err := h.c.Host(context.Background()); err != nil {
		t.Fatal(err)
	}
}
