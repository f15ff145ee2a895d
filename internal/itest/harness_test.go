// Package itest holds Bulwark's integration tests: they build the real
// binary, boot real Debian-kernel guests under QEMU (TCG on hosts without
// hardware KVM) and drive them through the CLI and the API, as root.
package itest

import (
	"golang.org/x/sys/unix"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/vm"
)

var (
	binPath string // the bulwark binary built for this run
	imgDir  string // kernel + initrd built by `bulwark image build`
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "itest: integration tests need root (they run VMs as dedicated uids)")
		return 1
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		fmt.Fprintln(os.Stderr, "itest: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
		return 1
	}
	dir, err := os.MkdirTemp("", "bulwark-itest-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "bulwark")
	if out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/bulwark").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "itest: build: %v\n%s", err, out)
		return 1
	}
	imgDir = filepath.Join(dir, "img")
	if out, err := exec.Command(binPath, "image", "build", "--out", imgDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "itest: image build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// host is one daemon with its own state and run directories.
type host struct {
	t      *testing.T
	dir    string
	socket string
	cmd    *exec.Cmd
	logBuf *bytes.Buffer
	c      *client.Client
	extra  []string // more `bulwark serve` flags
	cgBase string   // this daemon's cgroups (--cgroup-base)
}

func newHost(t *testing.T, serveFlags ...string) *host {
	t.Helper()
	dir, err := os.MkdirTemp("", "bw-")
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, dir: dir, socket: filepath.Join(dir, "b.sock"), extra: serveFlags,
		cgBase: "bulwark-itest/" + filepath.Base(dir)}
	h.c = client.New(h.socket)
	t.Cleanup(func() {
		h.stopVMs()
		h.kill()
		h.killStrays()
		h.removeCgroups()
		clearAppendOnly(filepath.Join(dir, "state", "audit-anchors", "anchors.jsonl"))
		os.RemoveAll(dir)
	})
	h.startDaemon()
	return h
}

func (h *host) startDaemon() {
	h.t.Helper()
	h.logBuf = &bytes.Buffer{}
	args := append([]string{"serve", "--socket", h.socket, "--state-dir", filepath.Join(h.dir, "state"),
		"--run-dir", filepath.Join(h.dir, "run"), "--log-format", "text", "--stop-timeout", "20s",
		"--cgroup-base", h.cgBase}, h.extra...)
	cmd := exec.Command(binPath, args...)
	cmd.Stdout, cmd.Stderr = h.logBuf, h.logBuf
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.cmd = cmd
	h.waitFor("daemon up", 15*time.Second, func() bool {
		_, err := h.c.Host(context.Background())
		return err == nil
	})
}

// kill ends the daemon with SIGKILL (VMs keep running).
func (h *host) kill() {
	if h.cmd != nil && h.cmd.ProcessState == nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	}
}

// term ends the daemon with SIGTERM and returns its exit error.
func (h *host) term() error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	return h.cmd.Wait()
}

func (h *host) stopVMs() {
	if h.cmd == nil || h.cmd.ProcessState != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vms, _ := h.c.ListVMs(ctx)
	for _, v := range vms {
		if v.State.Active() {
			start := time.Now()
			if _, err := h.c.StopVM(ctx, v.Spec.Name, true, 0); err != nil {
				h.t.Errorf("cleanup: force stop of %s failed after %v: %v", v.Spec.Name, time.Since(start), err)
			}
		}
	}
}

// killStrays ends any hypervisor still running in one of this host's VM
// cgroups, so a failed or interrupted test never leaks VMs.
func (h *host) killStrays() {
	for _, name := range h.vmCgroups() {
		for _, pid := range h.cgroupPIDs(name) {
			h.t.Errorf("cleanup: pid %d still running in VM %s's cgroup; killing it", pid, name)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cgroupDir is where a cgroup of this host lives in the pids hierarchy
// (v1) or the unified one (v2).
func (h *host) cgroupDir(rel string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return filepath.Join("/sys/fs/cgroup", h.cgBase, rel)
	}
	return filepath.Join("/sys/fs/cgroup/pids", h.cgBase, rel)
}

// vmCgroups names the VMs that have a cgroup under this host's base.
func (h *host) vmCgroups() []string {
	ents, _ := os.ReadDir(h.cgroupDir("vm"))
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// cgroupPIDs lists the processes in VM name's cgroup.
func (h *host) cgroupPIDs(name string) []int {
	b, _ := os.ReadFile(filepath.Join(h.cgroupDir("vm/"+name), "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// removeCgroups removes this host's cgroups in every hierarchy (deepest
// first; rmdir of a cgroup needs it empty).
func (h *host) removeCgroups() {
	roots := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		roots, _ = filepath.Glob("/sys/fs/cgroup/*")
	}
	for _, r := range roots {
		base := filepath.Join(r, h.cgBase)
		var dirs []string
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 20; try++ {
				if err := syscall.Rmdir(dirs[i]); err == nil || err == syscall.ENOENT {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		os.Remove(filepath.Dir(base)) // bulwark-itest, when this was the last host
	}
}

// cli runs the bulwark CLI against this host and returns stdout, stderr.
func (h *host) cli(args ...string) (string, string, error) {
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// mustCLI runs the CLI with -o json and decodes the answer into v.
func (h *host) mustCLI(v any, args ...string) {
	h.t.Helper()
	out, errs, err := h.cli(append(args, "-o", "json")...)
	if err != nil {
		h.t.Fatalf("bulwark %s: %v\nstderr: %s\ndaemon log:\n%s", strings.Join(args, " "), err, errs, h.logBuf)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			h.t.Fatalf("bulwark %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func (h *host) createVM(name string, extra ...string) *vm.VM {
	h.t.Helper()
	var v vm.VM
	args := append([]string{"vm", "create", name, "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=" + name + " bulwark.heartbeat=1"}, extra...)
	h.mustCLI(&v, args...)
	return &v
}

func (h *host) vm(name string) *vm.VM {
	h.t.Helper()
	v, err := h.c.GetVM(context.Background(), name)
	if err != nil {
		h.t.Fatalf("get vm %s: %v", name, err)
	}
	return v
}

func (h *host) consoleLog(name string) string {
	b, err := h.c.ConsoleLog(context.Background(), name, 1<<20)
	if err != nil {
		h.t.Fatalf("console log %s: %v", name, err)
	}
	return string(b)
}

func (h *host) allConsoles() string {
	var b strings.Builder
	vms, _ := h.c.ListVMs(context.Background())
	for _, v := range vms {
		log, _ := h.c.ConsoleLog(context.Background(), v.Spec.Name, 4096)
		fmt.Fprintf(&b, "--- %s (%s %s)\n%s\n", v.Spec.Name, v.State, v.Reason, log)
	}
	return b.String()
}

// waitFor polls cond until it holds or the deadline passes. Deadlines are
// generous: they catch hangs, they are not performance assertions.
func (h *host) waitFor(what string, d time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s\ndaemon log:\n%s\nconsole logs:\n%s", d, what, h.logBuf, h.allConsoles())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *host) waitConsole(name, marker string, count int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d× %q on %s's console", count, marker, name), 90*time.Second, func() bool {
		return strings.Count(h.consoleLog(name), marker) >= count
	})
}

func (h *host) waitState(name string, want vm.State) *vm.VM {
	h.t.Helper()
	var v *vm.VM
	h.waitFor(fmt.Sprintf("%s to be %s", name, want), 30*time.Second, func() bool {
		v = h.vm(name)
		return v.State == want
	})
	return v
}

// lastHeartbeat returns the highest heartbeat counter on the console.
func lastHeartbeat(log string) int {
	n := 0
	for _, m := range heartbeatRE.FindAllStringSubmatch(log, -1) {
		if k, _ := strconv.Atoi(m[1]); k > n {
			n = k
		}
	}
	return n
}

var heartbeatRE = regexp.MustCompile(`bulwark-heartbeat (\d+)`)

func syscallKill(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	// Wait until it is gone (it may be reparented; /proc entry vanishes
	// once reaped).
	for i := 0; i < 100; i++ {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clearAppendOnly lifts chattr +a (which the daemon sets on its audit
// anchor file) so that the test's directory can be removed.
func clearAppendOnly(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err == nil && flags&fsAppendFL != 0 {
		unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsAppendFL))
	}
}

// fsAppendFL is FS_APPEND_FL from linux/fs.h.
const fsAppendFL = 0x20
