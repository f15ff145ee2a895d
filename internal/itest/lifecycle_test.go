package itest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/image"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestLifecycle boots a real guest and walks it through every operation.
func TestLifecycle(t *testing.T) {
	h := newHost(t)
	h.createVM("life")
	var v vm.VM
	h.mustCLI(&v, "vm", "start", "life")
	if v.State != vm.Running || v.Runtime.PID == 0 {
		t.Fatalf("after start: %+v", v)
	}
	if v.Runtime.Accel == "" || v.Runtime.AccelWhy == "" {
		t.Fatalf("accelerator not reported: %+v", v.Runtime)
	}
	t.Logf("accelerator: %s (%s)", v.Runtime.Accel, v.Runtime.AccelWhy)
	h.waitConsole("life", image.ReadyMarker+" hostname=life", 1)
	checkJail(t, v)

	// Pause: the guest stops making progress.
	h.waitFor("a heartbeat", 30*time.Second, func() bool { return lastHeartbeat(h.consoleLog("life")) > 0 })
	h.mustCLI(&v, "vm", "pause", "life")
	if v.State != vm.Paused {
		t.Fatalf("after pause: %s", v.State)
	}
	before := lastHeartbeat(h.consoleLog("life"))
	time.Sleep(3 * time.Second)
	if after := lastHeartbeat(h.consoleLog("life")); after != before {
		t.Fatalf("guest made progress while paused: heartbeat %d -> %d", before, after)
	}
	h.mustCLI(&v, "vm", "resume", "life")
	if v.State != vm.Running {
		t.Fatalf("after resume: %s", v.State)
	}
	h.waitFor("heartbeats after resume", 30*time.Second, func() bool {
		return lastHeartbeat(h.consoleLog("life")) > before
	})

	// Graceful stop: the guest sees the ACPI power button and powers off.
	h.mustCLI(&v, "vm", "stop", "life")
	if v.State != vm.Stopped || v.Reason != "" {
		t.Fatalf("after stop: %s %q", v.State, v.Reason)
	}
	if !strings.Contains(h.consoleLog("life"), "bulwark-guest-poweroff") {
		t.Fatalf("guest did not power itself off; console:\n%s", h.consoleLog("life"))
	}
	if _, err := os.Stat(filepath.Join(v.Runtime.RunDir, "mem")); !os.IsNotExist(err) {
		t.Fatalf("guest RAM file left behind after stop: %v", err)
	}

	// Restart: a second boot of the same definition.
	h.mustCLI(&v, "vm", "start", "life")
	h.waitConsole("life", image.ReadyMarker, 2)

	// kill -9 of QEMU is noticed and recorded as a crash.
	killed := time.Now()
	syscall.Kill(v.Runtime.PID, syscall.SIGKILL)
	v = *h.waitState("life", vm.Crashed)
	t.Logf("crash recorded %v after kill -9", time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(v.Reason, "signal 9") {
		t.Fatalf("crash reason %q does not name the signal", v.Reason)
	}

	// A crashed VM can be started again, then deleted once stopped.
	h.mustCLI(&v, "vm", "start", "life")
	h.waitConsole("life", image.ReadyMarker, 3)
	if _, _, err := h.cli("vm", "delete", "life"); err == nil {
		t.Fatal("deleting a running VM succeeded")
	}
	h.mustCLI(&v, "vm", "stop", "life", "--force")
	h.mustCLI(nil, "vm", "delete", "life")
	if _, _, err := h.cli("vm", "show", "life"); err == nil {
		t.Fatal("deleted VM still shown")
	}
}

// checkJail verifies the hypervisor runs unprivileged, sandboxed, with its
// guest RAM in a private 0600 file.
func checkJail(t *testing.T, v vm.VM) {
	t.Helper()
	st, err := os.ReadFile(filepath.Join("/proc", itoa(v.Runtime.PID), "status"))
	if err != nil {
		t.Fatal(err)
	}
	var uidLine, seccomp, nnp string
	for _, l := range strings.Split(string(st), "\n") {
		switch {
		case strings.HasPrefix(l, "Uid:"):
			uidLine = l
		case strings.HasPrefix(l, "Seccomp:"):
			seccomp = strings.TrimSpace(strings.TrimPrefix(l, "Seccomp:"))
		case strings.HasPrefix(l, "NoNewPrivs:"):
			nnp = strings.TrimSpace(strings.TrimPrefix(l, "NoNewPrivs:"))
		}
	}
	f := strings.Fields(uidLine)
	if len(f) < 5 || f[1] == "0" || f[2] == "0" || f[3] == "0" || f[1] != itoa(v.Runtime.UID) {
		t.Fatalf("hypervisor uid line %q, want all = %d", uidLine, v.Runtime.UID)
	}
	if seccomp != "2" || nnp != "1" {
		t.Fatalf("hypervisor not sandboxed: Seccomp=%s NoNewPrivs=%s", seccomp, nnp)
	}
	fi, err := os.Stat(filepath.Join(v.Runtime.RunDir, "mem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != int64(v.Spec.MemoryMiB)<<20 {
		t.Fatalf("guest RAM file mode %v size %d", fi.Mode().Perm(), fi.Size())
	}
	cmdline, _ := os.ReadFile(filepath.Join("/proc", itoa(v.Runtime.PID), "cmdline"))
	args := strings.Split(string(cmdline), "\x00")
	for _, want := range []string{"-nodefaults", "-no-user-config"} {
		if !contains(args, want) {
			t.Fatalf("hypervisor command line lacks %s: %q", want, args)
		}
	}
	if !strings.Contains(string(cmdline), "elevateprivileges=deny,spawn=deny,resourcecontrol=deny") {
		t.Fatalf("sandbox options missing: %q", args)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
