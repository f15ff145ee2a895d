package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blockDevice returns a whole-disk block device of this host (the
// throttle controls accept only those), or skips.
func blockDevice(t *testing.T) IOLimit {
	t.Helper()
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		d, err := parseDevice(strings.TrimSpace(string(b)))
		if err == nil {
			return IOLimit{Major: d.major, Minor: d.minor}
		}
	}
	t.Skip("no block device")
	return IOLimit{}
}

// control reads a control file of g, for the controller that holds it.
func control(t *testing.T, g *Group, controller, file string) string {
	t.Helper()
	dir, ok := g.dirOf(controller)
	if !ok {
		t.Fatalf("no %s controller", controller)
	}
	return strings.TrimSpace(readString(t, filepath.Join(dir, file)))
}

// TestHostApply writes every control of a pool and a VM in it on this
// host's cgroups, reads them back, runs a process in the VM's group,
// changes and resets the controls on the live group.
func TestHostApply(t *testing.T) {
	h := hostHierarchy(t)
	if h.Version() != V1 {
		t.Skip("v1 test; v2 is covered by the fake tree")
	}
	for _, c := range []string{"cpu", "cpuacct", "blkio"} {
		if !slices.Contains(h.Controllers(), c) {
			t.Skipf("no %s hierarchy", c)
		}
	}
	top := testTop(t, h)
	dev := blockDevice(t)
	pool, err := h.Create(top+"/vm/pool.a", Limits{CPUShares: 2048, CPUMaxMilli: 1000, MemoryMax: 512 << 20, MemoryLow: 128 << 20, PidsMax: 64})
	if err != nil {
		t.Fatal(err)
	}
	io := dev
	io.ReadBPS, io.WriteBPS, io.ReadIOPS, io.WriteIOPS = 10<<20, 5<<20, 1000, 500
	l := Limits{CPUShares: 512, CPUMaxMilli: 250, MemoryMax: 128 << 20, MemoryMin: 64 << 20, PidsMax: 16, IOWeight: 200, IO: []IOLimit{io}}
	vm, err := h.Create(top+"/vm/pool.a/web1", l)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unenforced: %q", vm.Unenforced())
	if !slices.ContainsFunc(vm.Unenforced(), func(s string) bool { return strings.Contains(s, "memory min") }) {
		t.Errorf("v1 memory min not reported unenforced: %q", vm.Unenforced())
	}
	dv := strconv.Itoa(int(dev.Major)) + ":" + strconv.Itoa(int(dev.Minor))
	want := map[[2]string]string{
		{"cpu", "cpu.shares"}:                         "512",
		{"cpu", "cpu.cfs_period_us"}:                  "100000",
		{"cpu", "cpu.cfs_quota_us"}:                   "25000",
		{"memory", "memory.soft_limit_in_bytes"}:      "67108864",
		{"memory", "memory.limit_in_bytes"}:           "134217728",
		{"pids", "pids.max"}:                          "16",
		{"blkio", "blkio.throttle.read_bps_device"}:   dv + " 10485760",
		{"blkio", "blkio.throttle.write_bps_device"}:  dv + " 5242880",
		{"blkio", "blkio.throttle.read_iops_device"}:  dv + " 1000",
		{"blkio", "blkio.throttle.write_iops_device"}: dv + " 500",
	}
	if dir, _ := vm.dirOf("blkio"); fileExists(filepath.Join(dir, "blkio.weight")) {
		want[[2]string{"blkio", "blkio.weight"}] = "1000"
	} else if !slices.ContainsFunc(vm.Unenforced(), func(s string) bool { return strings.Contains(s, "blkio.weight is absent") }) {
		t.Errorf("absent blkio.weight not reported: %q", vm.Unenforced())
	}
	for k, v := range want {
		if got := control(t, vm, k[0], k[1]); got != v {
			t.Errorf("%s = %q, want %q", k[1], got, v)
		}
	}
	if got := control(t, pool, "cpu", "cpu.cfs_quota_us"); got != "100000" {
		t.Errorf("pool cpu.cfs_quota_us = %q", got)
	}

	c := start(t, exec.Command("sleep", "60"))
	if err := vm.Add(c.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, ctl := range []string{"cpu", "cpuacct", "memory", "blkio", "pids"} {
		if !strings.Contains(string(b), ":"+ctl+":/"+top+"/vm/pool.a/web1\n") && !strings.Contains(string(b), ","+ctl+":/"+top+"/vm/pool.a/web1\n") {
			t.Errorf("sleep not in %s group:\n%s", ctl, b)
		}
	}
	s, err := pool.Stats()
	if err != nil || !s.CPU.Available || !s.IO.Available || s.PidsCurrent != 1 {
		t.Errorf("pool Stats = %+v, %v (want CPU and IO available, the VM's sleep counted)", s, err)
	}

	// v1 refuses a parent's CPU cap below a child's: the error names the
	// file and the value, and the pool keeps its cap.
	if _, err := h.Apply(top+"/vm/pool.a", Limits{CPUMaxMilli: 100}); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), `"10000"`) {
		t.Errorf("pool cap below its VM's: %v", err)
	}
	if got := control(t, pool, "cpu", "cpu.cfs_quota_us"); got != "100000" {
		t.Errorf("pool cpu.cfs_quota_us after refused lowering = %q", got)
	}

	// Reset on the live group.
	if _, err := h.Apply(top+"/vm/pool.a/web1", Limits{}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[[2]string]string{
		{"cpu", "cpu.shares"}:                         "1024",
		{"cpu", "cpu.cfs_quota_us"}:                   "-1",
		{"memory", "memory.soft_limit_in_bytes"}:      "9223372036854771712",
		{"memory", "memory.limit_in_bytes"}:           "9223372036854771712",
		{"pids", "pids.max"}:                          "max",
		{"blkio", "blkio.throttle.read_bps_device"}:   "",
		{"blkio", "blkio.throttle.write_iops_device"}: "",
	} {
		if got := control(t, vm, k[0], k[1]); got != v {
			t.Errorf("after reset %s = %q, want %q", k[1], got, v)
		}
	}
	// An IO cap on a device that is not a disk fails with file and value.
	if _, err := h.Apply(top+"/vm/pool.a/web1", Limits{IO: []IOLimit{{Major: 4095, Minor: 7, ReadBPS: 1}}}); err == nil || !strings.Contains(err.Error(), `"4095:7 1"`) {
		t.Errorf("IO cap on a missing device: %v", err)
	}
}

func fileExists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestHostCPUMax runs a CPU-burning shell in a group capped at 250
// millicores and measures its CPU time over two seconds: it must stay
// near a quarter of a core (asserted loosely: between 10 and 40 %).
func TestHostCPUMax(t *testing.T) {
	h := hostHierarchy(t)
	if !slices.Contains(h.Controllers(), "cpu") {
		t.Skip("no cpu controller")
	}
	top := testTop(t, h)
	g, err := h.Create(top+"/vm/hog", Limits{CPUMaxMilli: 250, PidsMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, g, exec.Command("sh", "-c", "read x; while :; do :; done"))
	time.Sleep(200 * time.Millisecond) // past the first period
	s0, err := g.Stats()
	if err != nil || !s0.CPU.Available {
		t.Skipf("CPU usage not accounted here: %+v, %v", s0.CPU, err)
	}
	t0 := time.Now()
	time.Sleep(2 * time.Second)
	s1, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(t0)
	share := float64(s1.CPU.UsageUsec-s0.CPU.UsageUsec) / float64(wall.Microseconds())
	t.Logf("CPU over %v: %.1f %% of one core (cap 25 %%); throttled in %d of %d periods, %v held back",
		wall.Round(time.Millisecond), 100*share, s1.CPU.NrThrottled-s0.CPU.NrThrottled, s1.CPU.NrPeriods-s0.CPU.NrPeriods,
		time.Duration(s1.CPU.ThrottledUsec-s0.CPU.ThrottledUsec)*time.Microsecond)
	if share > 0.40 || share < 0.10 {
		t.Errorf("CPU share %.3f of a core, want about 0.25", share)
	}
	if s1.CPU.NrThrottled == s0.CPU.NrThrottled {
		t.Error("never throttled")
	}
	if err := g.Kill(killCtx(t)); err != nil {
		t.Fatal(err)
	}
}
