package pool

import "testing"

// A child's CPU ceiling never exceeds its parent's in the plan: cgroup v1
// refuses such a quota (EINVAL) and the VM would not start.
func TestPlanClampsCPUToParent(t *testing.T) {
	tr, err := NewTree(Capacity{CPUMilli: 1500, MemoryMiB: 8192}, []Pool{
		{Name: "big", CPU: Alloc{Limit: 1800}},
		{Name: "small", CPU: Alloc{Limit: 500}},
		{Name: "free"},
		{Name: "inner", Parent: "small", CPU: Alloc{Limit: 800}},
	})
	if err != nil {
		t.Fatal(err)
	}
	vms := []VMClaim{
		{Name: "root2", VCPUs: 2, MemoryMiB: 256},
		{Name: "in-small", Pool: "small", VCPUs: 1, MemoryMiB: 256},
		{Name: "in-inner", Pool: "inner", VCPUs: 4, MemoryMiB: 256},
		{Name: "in-free", Pool: "free", VCPUs: 1, MemoryMiB: 256},
	}
	p, err := NewPlan(tr, vms)
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]int64{}
	for _, g := range p.Pools {
		pools[g.Pool] = g.CPU.MaxMilli
	}
	want := map[string]int64{RootName: 1500, "big": 1500, "small": 500, "free": 0, "inner": 500}
	for n, w := range want {
		if pools[n] != w {
			t.Errorf("pool %s: ceiling %d, want %d", n, pools[n], w)
		}
	}
	wantVM := map[string]int64{"root2": 1500, "in-small": 500, "in-inner": 500, "in-free": 1000}
	for _, g := range p.VMs {
		if g.CPU.MaxMilli != wantVM[g.VM] {
			t.Errorf("vm %s: ceiling %d, want %d", g.VM, g.CPU.MaxMilli, wantVM[g.VM])
		}
	}
}
