package pool

import (
	"fmt"
	"testing"
)

// benchTree is 10 pools below the root, each with 9 children (100 pools;
// every third child expandable), and 1,000 running VMs spread over them
// and the root, each reserving 100m CPU and 128 MiB.
func benchTree(b *testing.B) (*Tree, []VMClaim) {
	var pools []Pool
	for i := range 10 {
		top := fmt.Sprintf("p%d", i)
		pools = append(pools, pl(top, "", 13000, 20000))
		for j := range 9 {
			c := pl(fmt.Sprintf("p%d-%d", i, j), top, 1300, 1700)
			c.Expandable = j%3 == 0
			pools = append(pools, c)
		}
	}
	tree := mustTree(b, Capacity{CPUMilli: 160000, MemoryMiB: 256 << 10}, pools...)
	running := make([]VMClaim, 0, 1000)
	for k := range 1000 {
		pool := pools[k%len(pools)].Name
		if k%11 == 0 {
			pool = ""
		}
		running = append(running, claim(fmt.Sprintf("vm%d", k), pool, 100, 128))
	}
	if err := Check(tree, running); err != nil {
		b.Fatal(err)
	}
	return tree, running
}

// BenchmarkAdmit is one admission decision on a tree of 100 pools with
// 1,000 running VMs: the cost a VM start pays.
func BenchmarkAdmit(b *testing.B) {
	tree, running := benchTree(b)
	newVM := claim("new", "p3-3", 500, 512)
	b.ReportAllocs()
	for b.Loop() {
		if err := Admit(tree, running, newVM); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan computes the controls of every pool and VM in the same
// tree: the cost of a full rewrite of the cgroup tree.
func BenchmarkPlan(b *testing.B) {
	tree, running := benchTree(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPlan(tree, running); err != nil {
			b.Fatal(err)
		}
	}
}
