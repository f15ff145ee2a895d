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
	checkJail(t, h, v)

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
	if pids := h.cgroupPIDs("life"); len(pids) != 0 {
		t.Fatalf("processes left in the VM's cgroup after stop: %v", pids)
	}
	if names := h.vmCgroups(); contains(names, "life") {
		t.Fatalf("the VM's cgroup outlived it: %v", names)
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

// checkJail verifies the hypervisor runs jailed: unprivileged, without
// capabilities, seccomp-filtered, in namespaces of its own, in the VM's
// cgroup, with guest RAM in an anonymous sealed memfd, and that its run
// directory is root's alone.
func checkJail(t *testing.T, h *host, v vm.VM) {
	t.Helper()
	proc := filepath.Join("/proc", itoa(v.Runtime.PID))
	st, err := os.ReadFile(filepath.Join(proc, "status"))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(st), "\n") {
		if k, val, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.TrimSpace(val)
		}
	}
	f := strings.Fields(fields["Uid"])
	if len(f) < 4 || f[0] == "0" || f[1] == "0" || f[2] == "0" || f[0] != itoa(v.Runtime.UID) {
		t.Fatalf("hypervisor uid line %q, want all = %d", fields["Uid"], v.Runtime.UID)
	}
	if fields["Seccomp"] != "2" || fields["NoNewPrivs"] != "1" {
		t.Fatalf("hypervisor not sandboxed: Seccomp=%s NoNewPrivs=%s", fields["Seccomp"], fields["NoNewPrivs"])
	}
	for _, c := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
		if fields[c] != "0000000000000000" {
			t.Fatalf("hypervisor %s = %s, want no capabilities", c, fields[c])
		}
	}
	// PID 1 of its own PID namespace.
	if ns := strings.Fields(fields["NSpid"]); len(ns) != 2 || ns[1] != "1" {
		t.Fatalf("hypervisor NSpid %q: not PID 1 of its own namespace", fields["NSpid"])
	}
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "cgroup"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(filepath.Join(proc, "ns", ns))
		if err != nil || its == mine {
			t.Fatalf("hypervisor shares the host's %s namespace (%s, %v)", ns, its, err)
		}
	}
	if pids := h.cgroupPIDs(v.Spec.Name); !containsInt(pids, v.Runtime.PID) {
		t.Fatalf("hypervisor pid %d not in its VM cgroup (%v)", v.Runtime.PID, pids)
	}
	ram, err := os.Readlink(filepath.Join(proc, "fd", "3"))
	if err != nil || !strings.HasPrefix(ram, "/memfd:bulwark-ram:"+v.Spec.Name) {
		t.Fatalf("hypervisor fd 3 is %q (%v), want the guest RAM memfd", ram, err)
	}
	if fi, err := os.Stat(v.Runtime.RunDir); err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("run directory %s: %v %v, want root's 0700", v.Runtime.RunDir, fi.Mode(), err)
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

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
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
