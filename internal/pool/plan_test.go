package pool

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestPlan(t *testing.T) {
	gold := pl("gold", "", 4000, 8192)
	gold.CPU.Shares, gold.Memory.Shares = "high", "high" // 8000, 327680
	silver := withLimits(pl("silver", "", 0, 0), 2000, 4096)
	silver.CPU.Shares, silver.Memory.Shares, silver.Disk.Shares = "low", "low", "low" // 2000, 81920, 500
	silver.Disk.WriteIOPS = 300
	tree := mustTree(t, host, gold, silver)

	web := VMClaim{Name: "web", Pool: "gold", VCPUs: 2, MemoryMiB: 2048, OverheadMiB: 64} // cpu 2000, mem 20480
	web.Resources.Memory.ReservationMiB = 1024
	db := VMClaim{Name: "db", Pool: "gold", VCPUs: 4, MemoryMiB: 4096, OverheadMiB: 64} // cpu 8000, mem 40960
	db.Resources = vm.Resources{
		CPU:    vm.CPUResources{Shares: "high", LimitMilli: 3000},
		Memory: vm.MemoryResources{ReservationMiB: 2048, LimitMiB: 3000},
		Disk:   vm.DiskResources{Shares: "high", ReadBPS: 1 << 20, WriteBPS: 2 << 20, ReadIOPS: 100, WriteIOPS: 200},
	}
	small := VMClaim{Name: "small", VCPUs: 1, MemoryMiB: 512, OverheadMiB: 64} // cpu 1000, mem 5120

	p, err := NewPlan(tree, []VMClaim{web, db, small})
	if err != nil {
		t.Fatal(err)
	}
	// Memory low at the root: spare 16384 − 8192 = 8192 divided
	// 327680 : 81920 : 5120 (Σ 414720) among gold, silver and small.
	// In gold: low 14664 − (1024 + 2048) = 11592 divided 1 : 2 between
	// web and db, each capped by its hard cap.
	wantPools := []Group{
		{Pool: "host", Path: "", CPU: CPUControls{MaxMilli: 8000}, Memory: MemoryControls{MinMiB: 8192, LowMiB: 16384, MaxMiB: 16384}},
		{Pool: "gold", Path: "pool.gold", CPU: CPUControls{Weight: 10000, Shares: 262144},
			Memory: MemoryControls{MinMiB: 8192, LowMiB: 8192 + 6472}, IO: IOControls{Weight: 10000, BlkioWeight: 1000}},
		{Pool: "silver", Path: "pool.silver", CPU: CPUControls{Weight: 2500, Shares: 65536, MaxMilli: 2000},
			Memory: MemoryControls{MinMiB: 0, LowMiB: 1618, MaxMiB: 4096}, IO: IOControls{Weight: 5000, BlkioWeight: 500, WriteIOPS: 300}},
	}
	wantVMs := []Group{
		{Pool: "gold", VM: "web", Path: "pool.gold/web", CPU: CPUControls{Weight: 2500, Shares: 65536, MaxMilli: 2000},
			Memory: MemoryControls{MinMiB: 1024, LowMiB: 2112, MaxMiB: 2112}, IO: IOControls{Weight: 5000, BlkioWeight: 500}},
		{Pool: "gold", VM: "db", Path: "pool.gold/db", CPU: CPUControls{Weight: 10000, Shares: 262144, MaxMilli: 3000},
			Memory: MemoryControls{MinMiB: 2048, LowMiB: 3064, MaxMiB: 3064},
			IO:     IOControls{Weight: 10000, BlkioWeight: 1000, ReadBPS: 1 << 20, WriteBPS: 2 << 20, ReadIOPS: 100, WriteIOPS: 200}},
		{Pool: "host", VM: "small", Path: "small", CPU: CPUControls{Weight: 1250, Shares: 32768, MaxMilli: 1000},
			Memory: MemoryControls{MinMiB: 0, LowMiB: 101, MaxMiB: 576}, IO: IOControls{Weight: 10000, BlkioWeight: 1000}},
	}
	if !reflect.DeepEqual(p.Pools, wantPools) {
		t.Errorf("pools:\n got %+v\nwant %+v", p.Pools, wantPools)
	}
	if !reflect.DeepEqual(p.VMs, wantVMs) {
		t.Errorf("vms:\n got %+v\nwant %+v", p.VMs, wantVMs)
	}
}

func TestPlanNestedPaths(t *testing.T) {
	tree := mustTree(t, host, pl("p", "", 0, 0), pl("q", "p", 0, 0))
	p, err := NewPlan(tree, []VMClaim{claim("name", "q", 0, 0), claim("top", "", 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, g := range append(p.Pools, p.VMs...) {
		paths = append(paths, g.Path)
	}
	want := []string{"", "pool.p", "pool.p/pool.q", "pool.p/pool.q/name", "top"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
	// A lone child gets the top weight: weights are only relative.
	if g := p.Pools[2]; g.CPU.Weight != WeightMax || g.CPU.Shares != CPUSharesMax || g.IO.BlkioWeight != BlkioWeightMax {
		t.Errorf("lone child %+v", g)
	}
}

// An expandable pool's memory.min is what it holds, so it covers its
// children's on cgroup v2.
func TestPlanExpandableMin(t *testing.T) {
	tree := mustTree(t, host, expandable(pl("gold", "", 0, 1000)))
	p, err := NewPlan(tree, []VMClaim{claim("a", "gold", 0, 2000), claim("b", "gold", 0, 1500)})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Pools[1].Memory.MinMiB; got != 3500 {
		t.Errorf("gold memory min %d, want 3500", got)
	}
	if got := p.Pools[0].Memory.MinMiB; got != 3500 {
		t.Errorf("root memory min %d, want 3500", got)
	}
}

func TestPlanSharePresetsScale(t *testing.T) {
	mk := func(name string, vcpus int, mib int64, cpuShares, memShares string) VMClaim {
		c := VMClaim{Name: name, VCPUs: vcpus, MemoryMiB: mib}
		c.Resources.CPU.Shares, c.Resources.Memory.Shares = cpuShares, memShares
		return c
	}
	tests := []struct {
		name    string
		a, b    VMClaim
		wa, wb  int64 // cpu weights
		la, lb  int64 // memory low with nothing reserved: spare split by memory shares
		capMiB  int64
		comment string
	}{
		{"cpu normal scales with vcpus", mk("a", 4, 1024, "", ""), mk("b", 1, 1024, "", ""), 10000, 2500, 1000, 1000, 2000, ""},
		{"4 low vcpus equal 1 high", mk("a", 4, 1024, "low", ""), mk("b", 1, 1024, "high", ""), 10000, 10000, 1000, 1000, 2000, ""},
		{"memory normal scales with MiB", mk("a", 1, 1024, "", ""), mk("b", 1, 4096, "", ""), 10000, 10000, 400, 1600, 2000, ""},
		{"4096 low MiB equal 1024 high", mk("a", 1, 1024, "", "high"), mk("b", 1, 4096, "", "low"), 10000, 10000, 1000, 1000, 2000, ""},
		{"custom numbers are taken as they are", mk("a", 64, 1024, "100", "1"), mk("b", 1, 2048, "300", "3"), 3333, 10000, 500, 1500, 2000, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := mustTree(t, Capacity{CPUMilli: 64000, MemoryMiB: tt.capMiB})
			p, err := NewPlan(tree, []VMClaim{tt.a, tt.b})
			if err != nil {
				t.Fatal(err)
			}
			a, b := p.VMs[0], p.VMs[1]
			if a.CPU.Weight != tt.wa || b.CPU.Weight != tt.wb {
				t.Errorf("cpu weights %d, %d; want %d, %d", a.CPU.Weight, b.CPU.Weight, tt.wa, tt.wb)
			}
			if a.Memory.LowMiB != tt.la || b.Memory.LowMiB != tt.lb {
				t.Errorf("memory low %d, %d; want %d, %d", a.Memory.LowMiB, b.Memory.LowMiB, tt.la, tt.lb)
			}
		})
	}
}

func TestWeightFormulas(t *testing.T) {
	tests := []struct {
		s, top, lo, hi, want int64
	}{
		{1, 1, WeightMin, WeightMax, 10000},
		{500, 2000, WeightMin, WeightMax, 2500},
		{1, 3, WeightMin, WeightMax, 3333},
		{2, 3, WeightMin, WeightMax, 6667},  // rounds to nearest
		{1, 20000, WeightMin, WeightMax, 1}, // 0.5 rounds up
		{1, 20001, WeightMin, WeightMax, 1}, // below the range: the minimum
		{1, vm.MaxShares, WeightMin, WeightMax, 1},
		{vm.MaxShares, vm.MaxShares, WeightMin, WeightMax, 10000},
		{1, vm.MaxShares, CPUSharesMin, CPUSharesMax, 2},
		{1, 2, CPUSharesMin, CPUSharesMax, 131072},
		{vm.MaxShares, vm.MaxShares, CPUSharesMin, CPUSharesMax, 262144},
		{1, 1000, BlkioWeightMin, BlkioWeightMax, 10},
		{500, 1000, BlkioWeightMin, BlkioWeightMax, 500},
		{1000, 1000, BlkioWeightMin, BlkioWeightMax, 1000},
		{0, 1000, WeightMin, WeightMax, 1},
		{5, 0, WeightMin, WeightMax, 1},
		// Shares of VMs with 1 TiB of memory at 20 per MiB, and beyond.
		{20 << 20, 20 << 20, WeightMin, WeightMax, 10000},
		{math.MaxInt64, math.MaxInt64, WeightMin, WeightMax, 10000},
		{math.MaxInt64 / 2, math.MaxInt64, CPUSharesMin, CPUSharesMax, 131072},
	}
	for _, tt := range tests {
		if got := scale(tt.s, tt.top, tt.lo, tt.hi); got != tt.want {
			t.Errorf("scale(%d, %d, %d..%d) = %d, want %d", tt.s, tt.top, tt.lo, tt.hi, got, tt.want)
		}
	}
	if got := mulDiv(math.MaxInt64, math.MaxInt64, 1); got != math.MaxInt64 {
		t.Errorf("mulDiv saturates: %d", got)
	}
	if got := mulDiv(1<<40, 3, 1<<41); got != 1 {
		t.Errorf("mulDiv(2^40, 3, 2^41) = %d", got)
	}
}

func TestPlanRefusals(t *testing.T) {
	tree := mustTree(t, host, pl("gold", "", 1000, 0))
	tests := []struct {
		name string
		vms  []VMClaim
		kind error
		msg  string
	}{
		{"over the pool", []VMClaim{claim("a", "gold", 600, 0), claim("b", "gold", 600, 0)}, ErrNoRoom, `pool "gold": CPU reservations held in it total 1200m, 200m above its reservation 1000m`},
		{"listed twice", []VMClaim{claim("a", "gold", 0, 0), claim("a", "gold", 0, 0)}, ErrInvalid, `vm "a": listed twice`},
		{"unknown pool", []VMClaim{claim("a", "lead", 0, 0)}, ErrNotFound, `pool "lead" does not exist`},
		{"invalid claim", []VMClaim{{Name: "a", VCPUs: 1, MemoryMiB: 1}}, ErrInvalid, `memory_mib: 1 out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(tree, tt.vms)
			wantErr(t, err, tt.kind, tt.msg)
			if p != nil {
				t.Error("a refused plan was returned")
			}
		})
	}
	if _, err := NewPlan(tree, nil); err != nil || errors.Is(err, ErrInvalid) {
		t.Errorf("empty plan: %v", err)
	}
}
