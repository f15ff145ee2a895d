package itest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/image"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// buildHostile compiles the hostile stand-in for QEMU (hostilevmm/hostile.c),
// statically, so its jail needs no libraries for it.
func buildHostile(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc is needed to build the hostile VMM (apt-get install gcc libc6-dev)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	// The daemon pins and measures the firmware from the QEMU binary's
	// data directory (BIN/../share/qemu): give the hostile "QEMU" a copy
	// of the real one there.
	for _, d := range []string{"bin", "share", "share/qemu"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := os.ReadFile("/usr/share/qemu/bios-microvm.bin")
	if err != nil {
		t.Fatalf("the microvm firmware of the qemu-system-x86 package: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "share/qemu/bios-microvm.bin"), fw, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin", "hostile")
	out, err := exec.Command("gcc", "-static", "-O2", "-Wall", "-Werror", "-o", bin, "hostilevmm/hostile.c", "-lpthread").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// hostileReport is one run of the probe suite: probe name → "RESULT detail".
type hostileReport struct {
	lines   map[string]string
	escaped []string
	done    string
}

var hostileLine = regexp.MustCompile(`(?m)^HOSTILE (\S+) (BLOCKED|ESCAPED|CONTAINED|INFO) ?(.*)$`)

func parseHostile(log string) hostileReport {
	r := hostileReport{lines: map[string]string{}}
	for _, m := range hostileLine.FindAllStringSubmatch(strings.ReplaceAll(log, "\r", ""), -1) {
		r.lines[m[1]] = m[2] + " " + m[3]
		if m[2] == "ESCAPED" {
			r.escaped = append(r.escaped, m[0])
		}
	}
	if m := regexp.MustCompile(`HOSTILE-DONE escaped=(\d+) probes=(\d+)`).FindString(log); m != "" {
		r.done = m
	}
	return r
}

// check fails the test for every escape and for every listed probe that
// did not end with the wanted result.
func (r hostileReport) check(t *testing.T, who string, want map[string]string) {
	t.Helper()
	if r.done == "" {
		t.Fatalf("%s: the hostile suite did not finish; report:\n%v", who, r.lines)
	}
	for _, e := range r.escaped {
		t.Errorf("%s: %s", who, e)
	}
	for probe, result := range want {
		if got := r.lines[probe]; !strings.HasPrefix(got, result) {
			t.Errorf("%s: probe %s = %q, want %s", who, probe, got, result)
		}
	}
	t.Logf("%s: %s (%d probes reported)", who, r.done, len(r.lines))
}

// TestHostileVMM runs a program that behaves like a compromised QEMU, in
// exactly the jail QEMU gets, and one that behaves like a compromised
// monitor, in the monitor's jail: every escape attempt must fail, a fork
// bomb must stop at pids.max, a memory hog must be OOM-killed inside its
// cgroup and recorded as crashed with the reason, and neither the daemon nor
// another VM (hostile, and a real guest on a second daemon) may notice.
func TestHostileVMM(t *testing.T) {
	hostile := buildHostile(t)

	// A real guest on its own daemon, booted before the attacks start.
	bystander := newHost(t)
	bystander.createVM("bystander")
	bystander.mustCLI(nil, "vm", "start", "bystander")
	bystander.waitConsole("bystander", image.ReadyMarker, 1)

	h := newHost(t, "--qemu", hostile, "--monitor-exe", hostile)
	h.mustCLI(nil, "network", "create", "hnet", "--subnet", "10.66.0.0/24")
	state, run := filepath.Join(h.dir, "state"), filepath.Join(h.dir, "run")
	hostileVM := func(name, mode string, mem int, extra string) {
		h.mustCLI(nil, "vm", "create", name, "--kernel", filepath.Join(imgDir, "vmlinuz"),
			"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", strconv.Itoa(mem),
			"--nic", "network=hnet", "--cmdline", "hostile="+mode+" "+extra)
	}
	hostileVM("victim", "probe", 256, "")
	h.mustCLI(nil, "vm", "start", "victim")
	// Everything of the host's that a compromised VMM would go for: the
	// state directory and database, the audit key, the API socket, the
	// other VM's run directory, sockets and switch port, the host's own
	// secrets and processes.
	paths := []string{state, filepath.Join(state, "bulwark.db"), filepath.Join(state, "audit"),
		filepath.Join(run, "vms", "victim"), filepath.Join(run, "vms", "victim", "qmp.sock"),
		filepath.Join(run, "sw"), "/etc/shadow", "/root", "/proc/1/root/etc/shadow", "/proc/1/environ",
		filepath.Join(run, "vmi-cache")}
	sockets := []string{h.socket, filepath.Join(run, "vms", "victim", "qmp.sock"),
		filepath.Join(run, "vms", "victim", "console.sock"), filepath.Join(run, "sw", "victim.0.sock"),
		bystander.socket}
	hostileVM("attacker", "probe", 256, "hostile.paths="+strings.Join(paths, ",")+
		" hostile.sockets="+strings.Join(sockets, ",")+" hostile.switchdir="+filepath.Join(run, "sw"))
	h.mustCLI(nil, "vm", "start", "attacker")
	h.waitConsole("attacker", "HOSTILE-DONE", 1)
	rep := parseHostile(h.consoleLog("attacker"))
	rep.check(t, "VMM", map[string]string{
		"open:/etc/shadow": "BLOCKED", "open:" + filepath.Join(state, "bulwark.db"): "BLOCKED",
		"connect:" + h.socket: "BLOCKED", "connect:" + filepath.Join(run, "sw", "victim.0.sock"): "BLOCKED",
		"ptrace-attach-1": "BLOCKED",
		"mount-probe":     "BLOCKED", "umount-root": "BLOCKED", "pivot-root": "BLOCKED", "chroot-escape": "BLOCKED",
		"setuid-0": "BLOCKED", "setresuid-0": "BLOCKED", "capset-full": "BLOCKED", "cap-eff": "INFO",
		"bpf-prog-load": "BLOCKED", "socket-packet": "BLOCKED", "socket-inet-raw": "BLOCKED",
		"io-uring-setup": "BLOCKED", "fork": "BLOCKED", "vfork": "BLOCKED", "exec-sh": "BLOCKED",
		"unshare-user": "BLOCKED", "unshare-mount": "BLOCKED", "setns-net": "BLOCKED",
		"fsize": "CONTAINED", "nofile": "CONTAINED", "ram-fd-grow": "BLOCKED",
		"kernel-write:/proc/sysrq-trigger": "BLOCKED", "reboot": "BLOCKED", "kexec-load": "BLOCKED",
		"init-module": "BLOCKED",
	})
	if v := h.vm("attacker"); v.State != vm.Running {
		t.Errorf("attacker after its probes: %s %q (a blocked attempt must not kill it)", v.State, v.Reason)
	}

	// The monitor's jail: the hostile program stands in for it when the
	// first introspection request starts it; it reports to the monitor log
	// and exits, so the request fails at once.
	if _, _, err := h.cli("vmi", "ps", "victim"); err == nil {
		t.Error("vmi ps succeeded against the hostile monitor")
	}
	monLog := filepath.Join(state, "logs", "monitor.log")
	h.waitFor("the hostile monitor's report", 60*time.Second, func() bool {
		b, _ := os.ReadFile(monLog)
		return strings.Contains(string(b), "HOSTILE-DONE")
	})
	b, _ := os.ReadFile(monLog)
	parseHostile(string(b)).check(t, "monitor", map[string]string{
		"open:/etc/shadow": "BLOCKED", "connect:/run/bulwark/bulwark.sock": "BLOCKED",
		"ptrace-attach-1": "BLOCKED", "setuid-0": "BLOCKED", "socket-packet": "BLOCKED",
		"fork": "BLOCKED", "mount-probe": "BLOCKED", "io-uring-setup": "BLOCKED",
	})

	// A fork bomb stops at pids.max (threads: fork itself is not allowed).
	hostileVM("forkbomb", "forkbomb", 256, "")
	h.mustCLI(nil, "vm", "start", "forkbomb")
	h.waitConsole("forkbomb", "HOSTILE forkbomb ", 1)
	fb := parseHostile(h.consoleLog("forkbomb"))
	if !strings.HasPrefix(fb.lines["forkbomb"], "CONTAINED") || len(fb.escaped) > 0 {
		t.Errorf("fork bomb: %q, escapes %v", fb.lines["forkbomb"], fb.escaped)
	}
	events, _ := os.ReadFile(filepath.Join(h.cgroupDir("vm/forkbomb"), "pids.events"))
	if !regexp.MustCompile(`max [1-9]`).Match(events) {
		t.Errorf("fork bomb did not reach the VM's pids.max: pids.events %q", events)
	}
	t.Logf("fork bomb: %s", fb.lines["forkbomb"])
	h.mustCLI(nil, "vm", "stop", "forkbomb", "--force")

	// A memory hog is OOM-killed inside its own cgroup and recorded.
	hostileVM("memhog", "memhog", 128, "")
	h.mustCLI(nil, "vm", "start", "memhog")
	v := h.waitState("memhog", vm.Crashed)
	if !strings.Contains(v.Reason, "out of memory") || !strings.Contains(v.Reason, "384 MiB") {
		t.Errorf("memory hog recorded as %q, want the memory cap named", v.Reason)
	}
	t.Logf("memory hog: %s", v.Reason)

	// Bad input: a VMM that exits at once after writing garbage, one that
	// never finishes QMP negotiation, one that floods its log (its writes
	// fail at RLIMIT_FSIZE, 16 MiB here, and it gives up: as PID 1 of its
	// namespace it is not killed by SIGXFSZ).
	for _, c := range []struct{ name, want string }{
		{"badexit", "exit status 3"},
		{"badhang", "qmp"},
		{"badflood", "exit status 3"},
	} {
		hostileVM(c.name, strings.TrimPrefix(c.name, "bad"), 128, "")
		h.cli("vm", "start", c.name)
		got := *h.vm(c.name)
		if c.name == "badflood" {
			fi, err := os.Stat(filepath.Join(run, "vms", c.name, "qemu.log"))
			if err != nil || fi.Size() > 16<<20 {
				t.Errorf("flooded log: %v, size %d, want at most the 16 MiB cap", err, fi.Size())
			}
		}
		if strings.ContainsAny(got.Reason, "\x00\x1b") {
			t.Errorf("%s: the reason carries the VMM's control bytes: %q", c.name, got.Reason)
		}
		if got.State != vm.Crashed || !strings.Contains(got.Reason, c.want) {
			t.Errorf("%s: %s %q, want crashed with %q", c.name, got.State, got.Reason, c.want)
		}
		if pids := h.cgroupPIDs(c.name); len(pids) != 0 {
			t.Errorf("%s: processes left in its cgroup: %v", c.name, pids)
		}
		t.Logf("%s: %s", c.name, got.Reason)
	}

	// The daemon and the other VMs did not notice.
	if _, err := h.c.Host(context.Background()); err != nil {
		t.Fatalf("daemon after the attacks: %v", err)
	}
	h.mustCLI(nil, "vm", "pause", "victim")
	h.mustCLI(nil, "vm", "resume", "victim")
	if v := h.vm("victim"); v.State != vm.Running {
		t.Errorf("victim: %s %q", v.State, v.Reason)
	}
	before := lastHeartbeat(bystander.consoleLog("bystander"))
	bystander.waitFor("the real guest's heartbeat", 30*time.Second, func() bool {
		return lastHeartbeat(bystander.consoleLog("bystander")) > before
	})
	if strings.Contains(h.logBuf.String(), "panic") {
		t.Errorf("daemon log mentions a panic:\n%s", h.logBuf.String())
	}
}
