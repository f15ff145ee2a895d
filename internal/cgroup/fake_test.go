package cgroup

import (
	"context"
	"errors"
	"io/fs"
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

// Tests in this file run against fake trees in a temp directory: plain
// files standing in for the kernel's interface files. The populate hook
// plays the kernel's part when a group directory is made.

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var v2GroupFiles = map[string]string{
	"cgroup.controllers":     "cpu io memory pids\n",
	"cgroup.subtree_control": "",
	"cgroup.procs":           "",
	"cgroup.kill":            "",
	"memory.max":             "max\n",
	"memory.swap.max":        "max\n",
	"memory.current":         "0\n",
	"memory.events":          "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
	"pids.max":               "max\n",
	"pids.current":           "0\n",
	"pids.events":            "max 0\n",
	"cpu.weight":             "100\n",
	"cpu.max":                "max 100000\n",
	"cpu.stat":               "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
	"memory.min":             "0\n",
	"memory.low":             "0\n",
	"io.weight":              "default 100\n",
	"io.max":                 "",
	"io.stat":                "",
}

// fakeV2 returns a v2 root offering rootControllers, with groups populated
// like the kernel does.
func fakeV2(t *testing.T, rootControllers string, opts ...Option) (string, *Hierarchy) {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":     rootControllers + "\n",
		"cgroup.subtree_control": "cpu memory pids\n", // as systemd leaves it
		"cgroup.procs":           "1\n",
	})
	h, err := DetectAt(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.populate = func(dir string) error { writeFiles(t, dir, v2GroupFiles); return nil }
	return root, h
}

var v1GroupFiles = map[string]map[string]string{
	"memory": {
		"cgroup.procs":                "",
		"memory.limit_in_bytes":       "9223372036854771712\n",
		"memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"memory.usage_in_bytes":       "0\n",
		"memory.oom_control":          "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
		"memory.soft_limit_in_bytes":  "9223372036854771712\n",
		"memory.use_hierarchy":        "1\n",
	},
	"pids": {"cgroup.procs": "", "pids.max": "max\n", "pids.current": "0\n", "pids.events": "max 0\n"},
	"cpu,cpuacct": {
		"cgroup.procs":      "",
		"cpu.shares":        "1024\n",
		"cpu.cfs_period_us": "100000\n",
		"cpu.cfs_quota_us":  "-1\n",
		"cpu.stat":          "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
		"cpuacct.usage":     "0\n",
	},
	"blkio": {
		"cgroup.procs":                              "",
		"blkio.weight":                              "500\n",
		"blkio.throttle.read_bps_device":            "",
		"blkio.throttle.write_bps_device":           "",
		"blkio.throttle.read_iops_device":           "",
		"blkio.throttle.write_iops_device":          "",
		"blkio.throttle.io_service_bytes_recursive": "Total 0\n",
		"blkio.throttle.io_serviced_recursive":      "Total 0\n",
	},
}

// fakeV1 returns a v1 root with memory, pids and a co-mounted cpu,cpuacct
// (cpu and cpuacct are symlinks to it, as systemd mounts them), and no
// blkio; a v2 mount at unified without controllers, like a hybrid host.
func fakeV1(t *testing.T, opts ...Option) (string, *Hierarchy) {
	t.Helper()
	root := t.TempDir()
	for _, m := range []string{"memory", "pids", "cpu,cpuacct"} {
		writeFiles(t, filepath.Join(root, m), v1GroupFiles[m])
	}
	writeFiles(t, filepath.Join(root, "unified"), map[string]string{"cgroup.controllers": "hugetlb\n"})
	for _, l := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := DetectAt(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.populate = func(dir string) error {
		rel, _ := filepath.Rel(root, dir)
		writeFiles(t, dir, v1GroupFiles[strings.Split(rel, "/")[0]])
		return nil
	}
	return root, h
}

func TestValidatePath(t *testing.T) {
	long := strings.Repeat("a", maxComponentLen+1)
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"web1", true},
		{"bulwark/vm/web1", true},
		{"bulwark/monitor/web-1.example_2", true},
		{strings.Repeat("a", maxComponentLen), true},
		{"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", true},
		{"bulwark/vm/pool." + strings.Repeat("p", 63) + "/" + strings.Repeat("v", 63), true},
		{"", false},
		{"/bulwark", false},
		{"bulwark/", false},
		{"bulwark//vm", false},
		{"..", false},
		{"bulwark/../etc", false},
		{".", false},
		{"bulwark/./vm", false},
		{long, false},
		{"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", false},
		{strings.Repeat(strings.Repeat("a", 100)+"/", 10) + "b", true},                      // 1011 bytes, 11 components
		{strings.Repeat(strings.Repeat("a", 100)+"/", 10) + strings.Repeat("b", 20), false}, // 1030 bytes
		{"web 1", false},
		{"web\n1", false},
		{"wéb", false},
		{"web\x00", false},
		{"a:b", false},
		{"a\\b", false},
	} {
		err := validatePath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("validatePath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("validatePath(%q) = %v, not ErrInvalidPath", tc.path, err)
		}
	}
	_, h := fakeV2(t, "cpu memory pids")
	if _, err := h.Create("../escape", Limits{}); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Create(../escape) = %v", err)
	}
	if _, err := h.Open("a//b"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Open(a//b) = %v", err)
	}
}

func TestDetect(t *testing.T) {
	_, h := fakeV2(t, "cpuset cpu io memory hugetlb pids rdma")
	if h.Version() != V2 || !slices.Equal(h.Controllers(), []string{"memory", "pids", "cpu", "io"}) {
		t.Errorf("v2: version %d controllers %v", h.Version(), h.Controllers())
	}
	_, h = fakeV2(t, "memory pids")
	if !slices.Equal(h.Controllers(), []string{"memory", "pids"}) {
		t.Errorf("v2 without cpu, io: controllers %v", h.Controllers())
	}

	_, h = fakeV1(t)
	if h.Version() != V1 || !slices.Equal(h.Controllers(), []string{"memory", "pids", "cpu", "cpuacct"}) || len(h.hiers) != 3 {
		t.Errorf("v1: version %d controllers %v hierarchies %+v", h.Version(), h.Controllers(), h.hiers)
	}

	// v2 root without pids and no v1 memory: both reasons reported.
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cgroup.controllers": "cpu memory\n"})
	_, err := DetectAt(root)
	if err == nil || !strings.Contains(err.Error(), "controller pids not available") || !strings.Contains(err.Error(), "no memory hierarchy") {
		t.Errorf("v2 without pids: %v", err)
	}
	// v1 without pids.
	root = t.TempDir()
	writeFiles(t, filepath.Join(root, "memory"), v1GroupFiles["memory"])
	if _, err := DetectAt(root); err == nil || !strings.Contains(err.Error(), "no pids hierarchy") {
		t.Errorf("v1 without pids: %v", err)
	}
	if _, err := DetectAt(filepath.Join(root, "absent")); err == nil {
		t.Error("absent root detected")
	}
}

func TestDetectSelfBase(t *testing.T) {
	self := filepath.Join(t.TempDir(), "cgroup")
	writeFiles(t, filepath.Dir(self), map[string]string{"cgroup": "0::/system.slice/bulwark.service\n"})
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":                              "cpu io memory pids\n",
		"system.slice/bulwark.service/cgroup.controllers": "memory pids\n",
	})
	h, err := DetectAt(root, SelfBase(), selfCgroupFrom(self))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "system.slice/bulwark.service"); h.hiers[0].base != want || !slices.Equal(h.Controllers(), []string{"memory", "pids"}) {
		t.Errorf("base %s controllers %v, want %s [memory pids]", h.hiers[0].base, h.Controllers(), want)
	}

	// Not delegated: the service's group lacks pids.
	writeFiles(t, root, map[string]string{"system.slice/bulwark.service/cgroup.controllers": "memory\n"})
	if _, err := DetectAt(root, SelfBase(), selfCgroupFrom(self)); err == nil || !strings.Contains(err.Error(), "not delegated") {
		t.Errorf("undelegated: %v", err)
	}

	// v1: each hierarchy has its own base, as on a container host.
	writeFiles(t, filepath.Dir(self), map[string]string{"cgroup": "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/\n"})
	root, _ = fakeV1(t)
	writeFiles(t, filepath.Join(root, "memory/process_api/abc"), v1GroupFiles["memory"])
	writeFiles(t, filepath.Join(root, "cpu,cpuacct/x"), v1GroupFiles["cpu,cpuacct"])
	h, err = DetectAt(root, SelfBase(), selfCgroupFrom(self))
	if err != nil {
		t.Fatal(err)
	}
	var bases []string
	for _, hr := range h.hiers {
		rel, _ := filepath.Rel(root, hr.base)
		bases = append(bases, rel)
	}
	if want := []string{"memory/process_api/abc", "pids", "cpu,cpuacct/x"}; !slices.Equal(bases, want) {
		t.Errorf("v1 self bases %v, want %v", bases, want)
	}

	// Own cgroup absent under the mount (another cgroup namespace).
	writeFiles(t, filepath.Dir(self), map[string]string{"cgroup": "8:pids:/\n4:memory:/elsewhere\n2:cpu,cpuacct:/\n"})
	if _, err := DetectAt(root, SelfBase(), selfCgroupFrom(self)); err == nil || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("absent own cgroup: %v", err)
	}
}

func TestCreateV2(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	g, err := h.Create("bulwark/vm/web1", Limits{MemoryMax: 64 << 20, PidsMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	if g.Path() != "bulwark/vm/web1" {
		t.Errorf("Path() = %q", g.Path())
	}
	leaf := filepath.Join(root, "bulwark/vm/web1")
	for file, want := range map[string]string{
		"cgroup.subtree_control":                 "+io",                    // root: only what systemd had not enabled
		"bulwark/cgroup.subtree_control":         "+memory +pids +cpu +io", // parents: all
		"bulwark/vm/cgroup.subtree_control":      "+memory +pids +cpu +io",
		"bulwark/vm/web1/cgroup.subtree_control": "", // the leaf holds processes
		"bulwark/vm/web1/memory.max":             "67108864",
		"bulwark/vm/web1/memory.swap.max":        "0",
		"bulwark/vm/web1/pids.max":               "8",
	} {
		if got := readString(t, filepath.Join(root, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}

	// Idempotent; zero limits lift the caps.
	writeFiles(t, root, map[string]string{"bulwark/cgroup.subtree_control": "memory pids cpu io\n"})
	if _, err := h.Create("bulwark/vm/web1", Limits{}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory.max": "max", "memory.swap.max": "max", "pids.max": "max"} {
		if got := readString(t, filepath.Join(leaf, file)); got != want {
			t.Errorf("after reset %s = %q, want %q", file, got, want)
		}
	}
	if got := readString(t, filepath.Join(root, "bulwark/cgroup.subtree_control")); got != "memory pids cpu io\n" {
		t.Errorf("enabled controllers rewritten: %q", got)
	}

	// No swap accounting: memory.swap.max absent, not created.
	os.Remove(filepath.Join(leaf, "memory.swap.max"))
	if _, err := h.Create("bulwark/vm/web1", Limits{MemoryMax: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(leaf, "memory.swap.max")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("memory.swap.max created: %v", err)
	}

	if _, err := h.Create("bulwark/vm/web2", Limits{MemoryMax: -1}); err == nil {
		t.Error("negative limit accepted")
	}
	// A write error names the file and the value.
	os.Remove(filepath.Join(leaf, "pids.max"))
	_, err = h.Create("bulwark/vm/web1", Limits{PidsMax: 9})
	if err == nil || !strings.Contains(err.Error(), `"9"`) || !strings.Contains(err.Error(), filepath.Join(leaf, "pids.max")) {
		t.Errorf("write error %v does not name file and value", err)
	}
}

func TestCreateV1(t *testing.T) {
	root, h := fakeV1(t)
	if _, err := h.Create("bulwark/vm/web1", Limits{MemoryMax: 64 << 20, PidsMax: 8}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory/bulwark/vm/web1/memory.limit_in_bytes":       "67108864",
		"memory/bulwark/vm/web1/memory.memsw.limit_in_bytes": "67108864",
		"pids/bulwark/vm/web1/pids.max":                      "8",
		"cpu,cpuacct/bulwark/vm/web1/cgroup.procs":           "",
	} {
		if got := readString(t, filepath.Join(root, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "blkio")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("blkio touched: %v", err)
	}
	if _, err := h.Create("bulwark/vm/web1", Limits{}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory/bulwark/vm/web1/memory.limit_in_bytes":       "-1",
		"memory/bulwark/vm/web1/memory.memsw.limit_in_bytes": "-1",
		"pids/bulwark/vm/web1/pids.max":                      "max",
	} {
		if got := readString(t, filepath.Join(root, file)); got != want {
			t.Errorf("after reset %s = %q, want %q", file, got, want)
		}
	}
}

func TestSymlinksRefused(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, "bulwark")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Create("bulwark/vm/web1", Limits{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Create through a symlinked parent: %v", err)
	}
	if _, err := h.Open("bulwark"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a symlink: %v", err)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("wrote through the symlink: %v", ents)
	}

	// A symlinked interface file is not written through either.
	g, err := h.Create("vm/web1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(elsewhere, "target")
	writeFiles(t, elsewhere, map[string]string{"target": "keep"})
	procs := filepath.Join(root, "vm/web1/cgroup.procs")
	os.Remove(procs)
	if err := os.Symlink(target, procs); err != nil {
		t.Fatal(err)
	}
	if err := g.Add(1234); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Add through a symlinked cgroup.procs: %v", err)
	}
	if got := readString(t, target); got != "keep" {
		t.Errorf("target overwritten: %q", got)
	}
}

func TestOpenChildren(t *testing.T) {
	root, h := fakeV1(t)
	if _, err := h.Open("bulwark/vm/web1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of absent group: %v", err)
	}
	if _, err := h.Children("bulwark"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Children of absent group: %v", err)
	}
	for _, p := range []string{"bulwark/vm/web1", "bulwark/vm/db"} {
		if _, err := h.Create(p, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	// Half-created after a crash: only in memory.
	writeFiles(t, filepath.Join(root, "memory/bulwark/vm/half"), v1GroupFiles["memory"])
	got, err := h.Children("bulwark/vm")
	if err != nil || !slices.Equal(got, []string{"db", "half", "web1"}) {
		t.Errorf("Children = %v, %v", got, err)
	}
	if got, err := h.Children(""); err != nil || !slices.Equal(got, []string{"bulwark"}) {
		t.Errorf("Children(\"\") = %v, %v", got, err)
	}
	g, err := h.Open("bulwark/vm/half")
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := g.PIDs(); err != nil || len(pids) != 0 {
		t.Errorf("PIDs of half group = %v, %v", pids, err)
	}
	if err := os.RemoveAll(filepath.Join(root, "memory/bulwark/vm/half")); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("Remove of a group already gone: %v", err)
	}
}

func TestPIDsUnion(t *testing.T) {
	root, h := fakeV1(t)
	g, err := h.Create("vm/web1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{
		"memory/vm/web1/cgroup.procs":      "30\n10\n",
		"pids/vm/web1/cgroup.procs":        "20\n10\n",
		"cpu,cpuacct/vm/web1/cgroup.procs": "",
	})
	if got, err := g.PIDs(); err != nil || !slices.Equal(got, []int{10, 20, 30}) {
		t.Errorf("PIDs = %v, %v", got, err)
	}
	if err := g.Add(0); err == nil {
		t.Error("Add(0) accepted")
	}
	if err := g.Add(42); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"memory", "pids", "cpu,cpuacct"} {
		if got := readString(t, filepath.Join(root, m, "vm/web1/cgroup.procs")); got != "42" {
			t.Errorf("%s cgroup.procs = %q", m, got)
		}
	}
	writeFiles(t, root, map[string]string{"pids/vm/web1/cgroup.procs": "1\nx\n"})
	if _, err := g.PIDs(); err == nil {
		t.Error("bad cgroup.procs accepted")
	}
}

func TestStats(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	g, err := h.Create("vm/web1", Limits{MemoryMax: 64 << 20, PidsMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(root, "vm/web1"), map[string]string{
		"memory.current": "1234567\n",
		"memory.events":  "low 0\nhigh 0\nmax 17\noom 3\noom_kill 2\noom_group_kill 0\n",
		"pids.current":   "5\n",
		"pids.events":    "max 9\n",
		"cpu.stat":       "usage_usec 5000123\nuser_usec 4000000\nsystem_usec 1000123\nnr_periods 50\nnr_throttled 20\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n",
		// Kernel shapes: a device with all-zero counters has no field, and
		// io.cost adds a decimal after two spaces.
		"io.stat": "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:0 \n8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0  cost.vrate=100.00 cost.usage=10\n",
	})
	want := Stats{MemoryCurrent: 1234567, MemoryMax: 64 << 20, OOMKills: 2, PidsCurrent: 5, PidsMax: 8, PidsMaxHits: 9,
		CPU: CPUStats{Available: true, UsageUsec: 5000123, NrPeriods: 50, NrThrottled: 20, ThrottledUsec: 1500000},
		IO:  IOStats{Available: true, ReadBytes: 4097, WriteBytes: 8194, ReadOps: 4, WriteOps: 6}}
	if s, err := g.Stats(); err != nil || s != want {
		t.Errorf("v2 Stats = %+v, %v, want %+v", s, err, want)
	}
	writeFiles(t, filepath.Join(root, "vm/web1"), map[string]string{"memory.events": "oom_kill x\n"})
	if _, err := g.Stats(); err == nil || !strings.Contains(err.Error(), "memory.events") {
		t.Errorf("bad memory.events: %v", err)
	}

	root, h = fakeV1(t)
	g, err = h.Create("vm/web1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{
		"memory/vm/web1/memory.usage_in_bytes": "7654321\n",
		"memory/vm/web1/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
		"pids/vm/web1/pids.current":            "3\n",
		"pids/vm/web1/pids.events":             "max 1\n",
		"memory/vm/web1/memory.limit_in_bytes": "9223372036854771712\n",
		"cpu,cpuacct/vm/web1/cpuacct.usage":    "2500000999\n",
		"cpu,cpuacct/vm/web1/cpu.stat":         "nr_periods 30\nnr_throttled 7\nthrottled_time 900000000\nnr_bursts 0\nburst_time 0\n",
	})
	want = Stats{MemoryCurrent: 7654321, OOMKills: 4, PidsCurrent: 3, PidsMaxHits: 1,
		CPU: CPUStats{Available: true, UsageUsec: 2500000, NrPeriods: 30, NrThrottled: 7, ThrottledUsec: 900000}}
	if s, err := g.Stats(); err != nil || s != want {
		t.Errorf("v1 Stats = %+v, %v, want %+v", s, err, want)
	}
	// Before Linux 4.13 memory.oom_control has no oom_kill line.
	writeFiles(t, root, map[string]string{"memory/vm/web1/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"})
	if s, err := g.Stats(); err != nil || s.OOMKills != 0 {
		t.Errorf("old oom_control: %+v, %v", s, err)
	}
	writeFiles(t, root, map[string]string{"cpu,cpuacct/vm/web1/cpu.stat": "nr_periods -1\n"})
	if _, err := g.Stats(); err == nil || !strings.Contains(err.Error(), "cpu.stat") {
		t.Errorf("bad cpu.stat: %v", err)
	}
}

func TestMoveSelfV2(t *testing.T) {
	self := filepath.Join(t.TempDir(), "cgroup")
	writeFiles(t, filepath.Dir(self), map[string]string{"cgroup": "0::/system.slice/bulwark.service\n"})
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cgroup.controllers": "cpu io memory pids\n"})
	svc := filepath.Join(root, "system.slice/bulwark.service")
	writeFiles(t, svc, v2GroupFiles)
	h, err := DetectAt(root, SelfBase(), selfCgroupFrom(self))
	if err != nil {
		t.Fatal(err)
	}
	h.populate = func(dir string) error { writeFiles(t, dir, v2GroupFiles); return nil }
	if _, err := h.MoveSelf("daemon"); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(svc, "daemon/cgroup.procs")); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("daemon/cgroup.procs = %q", got)
	}
	if got := readString(t, filepath.Join(svc, "cgroup.subtree_control")); got != "" {
		t.Errorf("MoveSelf enabled controllers in the base: %q", got)
	}
	if _, err := h.Create("vm/web1", Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(svc, "cgroup.subtree_control")); got != "+memory +pids +cpu +io" {
		t.Errorf("base subtree_control = %q", got)
	}
}

func TestKillRefusesSelf(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	g, err := h.Create("vm/web1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{"vm/web1/cgroup.procs": strconv.Itoa(os.Getpid())})
	if err := g.Kill(context.Background()); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("Kill with own pid in group: %v", err)
	}
	if got := readString(t, filepath.Join(root, "vm/web1/cgroup.kill")); got != "" {
		t.Errorf("cgroup.kill written: %q", got)
	}
}

// A group listing a process that is not in it (a stale list, a reused pid)
// must not get that process killed.
func TestKillChecksMembership(t *testing.T) {
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })

	root, h := fakeV1(t)
	g, err := h.Create("vm/web1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{"memory/vm/web1/cgroup.procs": strconv.Itoa(sleep.Process.Pid)})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = g.Kill(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), strconv.Itoa(sleep.Process.Pid)) {
		t.Errorf("Kill = %v, want deadline error naming %d", err, sleep.Process.Pid)
	}
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("non-member killed: %v", err)
	}
}

func TestKillWritesKillFile(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	g, err := h.Create("vm/web1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Kill(context.Background()); err != nil {
		t.Errorf("Kill of an empty group: %v", err)
	}
	// The fake never empties; no process is signalled (pid above pid_max).
	writeFiles(t, root, map[string]string{"vm/web1/cgroup.procs": "4194305\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Kill(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "[4194305]") {
		t.Errorf("Kill = %v", err)
	}
	if got := readString(t, filepath.Join(root, "vm/web1/cgroup.kill")); got != "1" {
		t.Errorf("cgroup.kill = %q", got)
	}
}

func TestParseSelfCgroup(t *testing.T) {
	s, err := parseSelfCgroup("9:name=systemd:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/a (deleted)\n0::/\n")
	if err != nil {
		t.Fatal(err)
	}
	if !s.hasV2 || s.v2 != "/" || s.v1["memory"] != "/process_api/x" || s.v1["cpuacct"] != "/a" || s.v1["name=systemd"] != "/" {
		t.Errorf("parsed %+v", s)
	}
	for _, bad := range []string{"garbage", "1:memory", "1:memory:relative"} {
		if _, err := parseSelfCgroup(bad); err == nil {
			t.Errorf("parseSelfCgroup(%q) accepted", bad)
		}
	}
}
