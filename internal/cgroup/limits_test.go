package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// traced records every control write of h, as "FILE=VALUE" with FILE
// relative to root.
func traced(t *testing.T, root string, h *Hierarchy) *[]string {
	var got []string
	h.trace = func(file, value string) {
		rel, err := filepath.Rel(root, file)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rel+"="+value)
	}
	return &got
}

func checkWrites(t *testing.T, what string, got *[]string, want []string) {
	t.Helper()
	if !slices.Equal(*got, want) {
		t.Errorf("%s: writes\n%s\nwant\n%s", what, strings.Join(*got, "\n"), strings.Join(want, "\n"))
	}
	*got = nil
}

var fullLimits = Limits{
	MemoryMax: 2 << 30, MemoryMin: 1 << 30, MemoryLow: 1536 << 20, PidsMax: 128,
	CPUWeight: 250, CPUShares: 2000, CPUMaxMilli: 1500,
	IOWeight: 300, BlkioWeight: 700,
	IO: []IOLimit{
		{Major: 254, Minor: 0, ReadBPS: 10 << 20, WriteBPS: 5 << 20, ReadIOPS: 1000, WriteIOPS: 500},
		{Major: 8, Minor: 16, WriteIOPS: 42},
	},
}

func TestApplyV2(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	writeFiles(t, root, map[string]string{"io.cost.qos": "254:0 enable=1 ctrl=auto rpct=0.00 rlat=250000 wpct=0.00 wlat=250000 min=1.00 max=10000.00\n"})
	got := traced(t, root, h)

	// A pool, then a VM in it: the pool's group enables the controllers
	// for its children, the VM's holds processes and enables none.
	pool := Limits{MemoryMax: 8 << 30, MemoryMin: 2 << 30, CPUWeight: 400, CPUMaxMilli: 4000}
	if _, err := h.Create("bulwark/vm/pool.a", pool); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "pool", got, []string{
		"bulwark/vm/pool.a/cpu.weight=400",
		"bulwark/vm/pool.a/cpu.max=400000 100000",
		"bulwark/vm/pool.a/memory.min=2147483648",
		"bulwark/vm/pool.a/memory.low=0",
		"bulwark/vm/pool.a/memory.max=8589934592",
		"bulwark/vm/pool.a/memory.swap.max=0",
		"bulwark/vm/pool.a/io.weight=default 100",
		"bulwark/vm/pool.a/pids.max=max",
	})
	g, err := h.Create("bulwark/vm/pool.a/web1", fullLimits)
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Unenforced(); len(n) != 0 {
		t.Errorf("Unenforced = %q", n)
	}
	vm := "bulwark/vm/pool.a/web1/"
	checkWrites(t, "vm", got, []string{
		vm + "cpu.weight=250",
		vm + "cpu.max=150000 100000",
		vm + "memory.min=1073741824",
		vm + "memory.low=1610612736",
		vm + "memory.max=2147483648",
		vm + "memory.swap.max=0",
		vm + "io.weight=default 300",
		vm + "io.max=254:0 rbps=10485760 wbps=5242880 riops=1000 wiops=500",
		vm + "io.max=8:16 rbps=max wbps=max riops=max wiops=42",
		vm + "pids.max=128",
	})
	for file, want := range map[string]string{
		"bulwark/cgroup.subtree_control":                "+memory +pids +cpu +io",
		"bulwark/vm/cgroup.subtree_control":             "+memory +pids +cpu +io",
		"bulwark/vm/pool.a/cgroup.subtree_control":      "+memory +pids +cpu +io",
		"bulwark/vm/pool.a/web1/cgroup.subtree_control": "",
		vm + "cpu.max": "150000 100000",
		vm + "io.max":  "8:16 rbps=max wbps=max riops=max wiops=42",
	} {
		if s := readString(t, filepath.Join(root, file)); s != want {
			t.Errorf("%s = %q, want %q", file, s, want)
		}
	}

	// Apply to the live group: zero limits reset every control, and the
	// devices the kernel lists in io.max get their caps lifted.
	writeFiles(t, root, map[string]string{vm + "io.max": "254:0 rbps=10485760 wbps=5242880 riops=1000 wiops=500\n8:16 rbps=max wbps=max riops=max wiops=42\n"})
	if _, err := h.Apply("bulwark/vm/pool.a/web1", Limits{}); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "reset", got, []string{
		vm + "cpu.weight=100",
		vm + "cpu.max=max 100000",
		vm + "memory.min=0",
		vm + "memory.low=0",
		vm + "memory.max=max",
		vm + "memory.swap.max=max",
		vm + "io.weight=default 100",
		vm + "io.max=254:0 rbps=max wbps=max riops=max wiops=max",
		vm + "io.max=8:16 rbps=max wbps=max riops=max wiops=max",
		vm + "pids.max=max",
	})
	// One device kept, one dropped; shares alone convert to a weight.
	writeFiles(t, root, map[string]string{vm + "io.max": "254:0 rbps=1048576 wbps=max riops=max wiops=max\n"})
	if _, err := h.Apply("bulwark/vm/pool.a/web1", Limits{CPUShares: 512, BlkioWeight: 1000, IO: []IOLimit{{Major: 8, Minor: 16, ReadBPS: 1}}}); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "change", got, []string{
		vm + "cpu.weight=50",
		vm + "cpu.max=max 100000",
		vm + "memory.min=0",
		vm + "memory.low=0",
		vm + "memory.max=max",
		vm + "memory.swap.max=max",
		vm + "io.weight=default 200",
		vm + "io.max=8:16 rbps=1 wbps=max riops=max wiops=max",
		vm + "io.max=254:0 rbps=max wbps=max riops=max wiops=max",
		vm + "pids.max=max",
	})

	if _, err := h.Apply("bulwark/vm/pool.b", Limits{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Apply to an absent group: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "bulwark/vm/pool.b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Apply created a group: %v", err)
	}
	*got = nil

	// A write error names the file and the value, and stops there.
	os.Remove(filepath.Join(root, vm+"memory.max"))
	_, err = h.Apply("bulwark/vm/pool.a/web1", Limits{MemoryMax: 4096})
	if err == nil || !strings.Contains(err.Error(), `"4096"`) || !strings.Contains(err.Error(), filepath.Join(root, vm+"memory.max")) {
		t.Errorf("write error %v does not name file and value", err)
	}
	if n := len(*got); n != 5 || !strings.HasSuffix((*got)[n-1], "memory.max=4096") {
		t.Errorf("writes after the failed one: %q", *got)
	}
	writeFiles(t, root, map[string]string{vm + "memory.max": "max\n"})
	// Files of older kernels or options: memory.min (4.18) and memory.low
	// are protections, a note when asked for and skipped on reset; cpu.max
	// (CONFIG_CFS_BANDWIDTH) is a cap, an error when asked for.
	os.Remove(filepath.Join(root, vm+"memory.min"))
	os.Remove(filepath.Join(root, vm+"cpu.max"))
	*got = nil
	if g, err = h.Apply("bulwark/vm/pool.a/web1", Limits{MemoryMin: 1 << 20}); err != nil || len(g.Unenforced()) != 1 || !strings.Contains(g.Unenforced()[0], "memory.min 1048576 not enforced") {
		t.Errorf("Apply without memory.min: %v, notes %q", err, g.Unenforced())
	}
	if slices.ContainsFunc(*got, func(w string) bool { return strings.Contains(w, "memory.min") || strings.Contains(w, "cpu.max") }) {
		t.Errorf("absent files written: %q", *got)
	}
	if _, err = h.Apply("bulwark/vm/pool.a/web1", Limits{CPUMaxMilli: 100}); err == nil || !strings.Contains(err.Error(), "cpu.max is absent") {
		t.Errorf("CPU cap without cpu.max: %v", err)
	}
	// A malformed io.max is an error too.
	writeFiles(t, root, map[string]string{vm + "io.max": "8:16 rbps=-1 wbps=max riops=max wiops=max\n"})
	if _, err := h.Apply("bulwark/vm/pool.a/web1", Limits{}); err == nil || !strings.Contains(err.Error(), "io.max") {
		t.Errorf("bad io.max: %v", err)
	}
}

func TestApplyV2Unenforced(t *testing.T) {
	root, h := fakeV2(t, "cpu io memory pids")
	// io.weight present, io.cost enabled nowhere (no io.cost.qos).
	g, err := h.Create("vm/web1", Limits{IOWeight: 200})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Unenforced(); len(n) != 1 || !strings.Contains(n[0], "io.cost") {
		t.Errorf("Unenforced = %q", n)
	}
	// No io.weight file: a note, no write; without a weight, no note.
	os.Remove(filepath.Join(root, "vm/web1/io.weight"))
	if g, err = h.Apply("vm/web1", Limits{IOWeight: 200}); err != nil {
		t.Fatal(err)
	}
	if n := g.Unenforced(); len(n) != 1 || !strings.Contains(n[0], "io.weight is absent") {
		t.Errorf("Unenforced = %q", n)
	}
	if g, err = h.Apply("vm/web1", Limits{}); err != nil || len(g.Unenforced()) != 0 {
		t.Errorf("Apply without weight: %v, notes %q", err, g.Unenforced())
	}

	// Without cpu and io controllers: weights are notes, caps errors.
	_, h = fakeV2(t, "memory pids")
	g, err = h.Create("vm/web1", Limits{CPUWeight: 10, IOWeight: 10})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Unenforced(); len(n) != 2 {
		t.Errorf("Unenforced = %q", n)
	}
	for _, l := range []Limits{{CPUMaxMilli: 500}, {IO: []IOLimit{{Major: 8, ReadBPS: 1}}}} {
		if _, err := h.Apply("vm/web1", l); err == nil || !strings.Contains(err.Error(), "not available") {
			t.Errorf("Apply(%+v) without the controller: %v", l, err)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	_, h := fakeV2(t, "cpu io memory pids")
	for _, l := range []Limits{
		{MemoryMax: -1}, {MemoryMin: -1}, {MemoryLow: -1}, {PidsMax: -1},
		{MemoryMax: 1 << 20, MemoryMin: 2 << 20},
		{CPUWeight: -1}, {CPUWeight: 10001}, {CPUShares: 1}, {CPUShares: 262145},
		{CPUMaxMilli: 9}, {CPUMaxMilli: -5}, {CPUMaxMilli: MaxCPUMaxMilli + 1},
		{IOWeight: 10001}, {IOWeight: -1}, {BlkioWeight: 9}, {BlkioWeight: 1001},
		{IO: make([]IOLimit, maxIODevices+1)},
		{IO: []IOLimit{{Major: 8}, {Major: 8}}},
		{IO: []IOLimit{{Major: 1 << 12}}}, {IO: []IOLimit{{Minor: 1 << 20}}},
	} {
		if _, err := h.Create("vm/web1", l); err == nil || !strings.Contains(err.Error(), "limits:") {
			t.Errorf("Create(%+v) = %v, want a limits error", l, err)
		}
		if _, err := h.Apply("vm/absent", l); err == nil || !strings.Contains(err.Error(), "limits:") {
			t.Errorf("Apply(%+v) = %v, want a limits error", l, err)
		}
	}
	ok := Limits{MemoryMax: 1 << 20, MemoryMin: 1 << 20, MemoryLow: 4 << 20, CPUWeight: 1, CPUShares: 262144,
		CPUMaxMilli: MinCPUMaxMilli, IOWeight: 10000, BlkioWeight: 10, IO: make([]IOLimit, 1)}
	if err := ok.validate(); err != nil {
		t.Errorf("edge values refused: %v", err)
	}
}

func TestWeightConversion(t *testing.T) {
	for _, tc := range []struct {
		l                         Limits
		weight, shares, io, blkio int
	}{
		{Limits{}, 100, 1024, 100, 500},
		{Limits{CPUWeight: 100, IOWeight: 100}, 100, 1024, 100, 500},
		{Limits{CPUShares: 2048, BlkioWeight: 1000}, 200, 2048, 200, 1000},
		{Limits{CPUWeight: 1, IOWeight: 1}, 1, 10, 1, 10},
		{Limits{CPUWeight: 10000, IOWeight: 10000}, 10000, 102400, 10000, 1000},
		{Limits{CPUShares: 2, BlkioWeight: 10}, 1, 2, 2, 10},
		{Limits{CPUShares: 262144}, 10000, 262144, 100, 500},
		{Limits{CPUWeight: 7, CPUShares: 5000}, 7, 5000, 100, 500}, // both given: each used as is
	} {
		if w, s, i, b := tc.l.cpuWeight(), tc.l.cpuShares(), tc.l.ioWeight(), tc.l.blkioWeight(); w != tc.weight || s != tc.shares || i != tc.io || b != tc.blkio {
			t.Errorf("%+v: weight %d shares %d io %d blkio %d, want %d %d %d %d", tc.l, w, s, i, b, tc.weight, tc.shares, tc.io, tc.blkio)
		}
	}
}

// fakeV1Blkio is fakeV1 with a blkio hierarchy.
func fakeV1Blkio(t *testing.T) (string, *Hierarchy) {
	root, _ := fakeV1(t)
	writeFiles(t, filepath.Join(root, "blkio"), v1GroupFiles["blkio"])
	h, err := DetectAt(root)
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

func TestApplyV1(t *testing.T) {
	root, h := fakeV1Blkio(t)
	if !slices.Equal(h.Controllers(), []string{"memory", "pids", "cpu", "cpuacct", "blkio"}) {
		t.Fatalf("controllers %v", h.Controllers())
	}
	got := traced(t, root, h)
	g, err := h.Create("vm/pool.a/web1", fullLimits)
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Unenforced(); len(n) != 1 || !strings.Contains(n[0], "memory min 1073741824 not guaranteed") {
		t.Errorf("Unenforced = %q", n)
	}
	const cpu, mem, blk = "cpu,cpuacct/vm/pool.a/web1/", "memory/vm/pool.a/web1/", "blkio/vm/pool.a/web1/"
	checkWrites(t, "create", got, []string{
		cpu + "cpu.shares=2000",
		cpu + "cpu.cfs_period_us=100000",
		cpu + "cpu.cfs_quota_us=150000",
		mem + "memory.soft_limit_in_bytes=1610612736", // max(min, low)
		mem + "memory.limit_in_bytes=2147483648",      // lowering: memory first
		mem + "memory.memsw.limit_in_bytes=2147483648",
		blk + "blkio.weight=700",
		blk + "blkio.throttle.read_bps_device=254:0 10485760",
		blk + "blkio.throttle.read_bps_device=8:16 0",
		blk + "blkio.throttle.write_bps_device=254:0 5242880",
		blk + "blkio.throttle.write_bps_device=8:16 0",
		blk + "blkio.throttle.read_iops_device=254:0 1000",
		blk + "blkio.throttle.read_iops_device=8:16 0",
		blk + "blkio.throttle.write_iops_device=254:0 500",
		blk + "blkio.throttle.write_iops_device=8:16 42",
		"pids/vm/pool.a/web1/pids.max=128",
	})
	// Reset; the kernel lists the devices with a cap.
	writeFiles(t, root, map[string]string{
		mem + "memory.memsw.limit_in_bytes":      "2147483648\n",
		blk + "blkio.throttle.read_bps_device":   "254:0 10485760\n",
		blk + "blkio.throttle.write_iops_device": "254:0 500\n8:16 42\n",
		blk + "blkio.throttle.write_bps_device":  "",
		blk + "blkio.throttle.read_iops_device":  "",
	})
	if g, err = h.Apply("vm/pool.a/web1", Limits{IOWeight: 20}); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "reset", got, []string{
		cpu + "cpu.shares=1024",
		cpu + "cpu.cfs_period_us=100000",
		cpu + "cpu.cfs_quota_us=-1",
		mem + "memory.soft_limit_in_bytes=-1",
		mem + "memory.memsw.limit_in_bytes=-1", // raising: memsw first
		mem + "memory.limit_in_bytes=-1",
		blk + "blkio.weight=100",
		blk + "blkio.throttle.read_bps_device=254:0 0",
		blk + "blkio.throttle.write_iops_device=254:0 0",
		blk + "blkio.throttle.write_iops_device=8:16 0",
		"pids/vm/pool.a/web1/pids.max=max",
	})
	if len(g.Unenforced()) != 0 {
		t.Errorf("Unenforced = %q", g.Unenforced())
	}
	// Without blkio.weight (no CFQ/BFQ): a weight is a note, not a write.
	os.Remove(filepath.Join(root, blk+"blkio.weight"))
	if g, err = h.Apply("vm/pool.a/web1", Limits{BlkioWeight: 800}); err != nil {
		t.Fatal(err)
	}
	if n := g.Unenforced(); len(n) != 1 || !strings.Contains(n[0], "blkio.weight is absent") {
		t.Errorf("Unenforced = %q", n)
	}
	if slices.ContainsFunc(*got, func(w string) bool { return strings.Contains(w, "blkio.weight") }) {
		t.Errorf("blkio.weight written: %q", *got)
	}
	// A failed write names file and value.
	os.Remove(filepath.Join(root, cpu+"cpu.cfs_quota_us"))
	if _, err := h.Apply("vm/pool.a/web1", Limits{CPUMaxMilli: 250}); err == nil || !strings.Contains(err.Error(), `"25000"`) || !strings.Contains(err.Error(), "cpu.cfs_quota_us") {
		t.Errorf("write error: %v", err)
	}

	// Without blkio: IO caps refused, as is a CPU cap without cpu.
	_, h = fakeV1(t)
	if _, err := h.Create("vm/web1", Limits{IO: []IOLimit{{Major: 8, WriteBPS: 1}}}); err == nil || !strings.Contains(err.Error(), "blkio controller not available") {
		t.Errorf("IO cap without blkio: %v", err)
	}
}

// On kernels before 5.16 a new v1 memory group inherits use_hierarchy 0
// from a root that has it off: Create turns it on, or a pool's memory cap
// would not cover its VMs.
func TestV1UseHierarchy(t *testing.T) {
	root, h := fakeV1(t)
	h.populate = func(dir string) error {
		rel, _ := filepath.Rel(root, dir)
		writeFiles(t, dir, v1GroupFiles[strings.Split(rel, "/")[0]])
		if strings.HasPrefix(rel, "memory/") {
			writeFiles(t, dir, map[string]string{"memory.use_hierarchy": "0\n"})
		}
		return nil
	}
	if _, err := h.Create("vm/pool.a/web1", Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"memory/vm", "memory/vm/pool.a", "memory/vm/pool.a/web1"} {
		if s := readString(t, filepath.Join(root, d, "memory.use_hierarchy")); s != "1" {
			t.Errorf("%s/memory.use_hierarchy = %q", d, s)
		}
	}
}
