package pool

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// Tree is a validated pool tree. It is immutable: changes go through
// CheckChange, which returns a new Tree, so a refused change leaves
// nothing half-applied. A Tree is safe for concurrent reads.
type Tree struct {
	capacity Capacity
	// nodes[0] is the root; the rest in pre-order (a parent before its
	// children, siblings by name), so a reverse walk sees children first.
	nodes []node
	index map[string]int
}

type node struct {
	pool     Pool // Parent normalized: RootName below the root, "" for the root
	parent   int  // -1 for the root
	children []int
	depth    int // 0 for the root
	res, lim [nres]int64
	// shares of CPU and memory and the disk shares, parsed.
	shares     [nres]int64
	diskShares int64
	path       string
}

func (n *node) expandable() bool { return n.parent >= 0 && n.pool.Expandable }

// NewTree validates pools against each other and the capacity and returns
// the tree. The order of pools does not matter. The root is implicit: a
// pool named "host" is refused, and a pool whose Parent is "" or "host" is
// a child of the root.
func NewTree(c Capacity, pools []Pool) (*Tree, error) {
	t, err := build(c, pools)
	if err != nil {
		return nil, err
	}
	u, err := t.usage(nil, "")
	if err != nil {
		return nil, err
	}
	if err := t.check(u); err != nil {
		return nil, err
	}
	return t, nil
}

// build checks names, values and structure (not capacity) and lays the
// tree out.
func build(c Capacity, pools []Pool) (*Tree, error) {
	if c.CPUMilli < 1 || c.CPUMilli > vm.MaxMillicores {
		return nil, errorf(ErrInvalid, RootName, "cpu_millicores", "pool %q: capacity %dm out of range 1..%dm", RootName, c.CPUMilli, vm.MaxMillicores)
	}
	if c.MemoryMiB < 1 || c.MemoryMiB > vm.MaxMiB {
		return nil, errorf(ErrInvalid, RootName, "memory_mib", "pool %q: capacity %d MiB out of range 1..%d MiB", RootName, c.MemoryMiB, vm.MaxMiB)
	}
	if len(pools) > MaxPools {
		return nil, errorf(ErrInvalid, "", "", "%d pools: at most %d", len(pools), MaxPools)
	}
	byName := make(map[string]int, len(pools))
	for i := range pools {
		if err := checkPool(&pools[i]); err != nil {
			return nil, err
		}
		if _, dup := byName[pools[i].Name]; dup {
			return nil, errorf(ErrInvalid, pools[i].Name, "name", "pool %q: defined twice", pools[i].Name)
		}
		byName[pools[i].Name] = i
	}
	parent := make([]int, len(pools)) // index into pools; -1: the root
	for i := range pools {
		p := poolName(pools[i].Parent)
		if p == RootName {
			parent[i] = -1
			continue
		}
		j, ok := byName[p]
		if !ok {
			return nil, errorf(ErrInvalid, pools[i].Name, "parent", "pool %q: parent %q does not exist", pools[i].Name, p)
		}
		parent[i] = j
	}
	depth, err := depths(pools, parent)
	if err != nil {
		return nil, err
	}

	t := layout(c, pools, parent, depth)
	return t, t.checkNesting()
}

// checkNesting refuses a pool whose reservation alone cannot fit in its
// parent: above the parent's limit, or above the parent's reservation
// (the root's: the capacity) when the parent is not expandable. The sums
// are check's job; this gives the plainer message first.
func (t *Tree) checkNesting() error {
	for i := 1; i < len(t.nodes); i++ {
		n, p := &t.nodes[i], &t.nodes[t.nodes[i].parent]
		for r := range nres {
			switch {
			case p.parent >= 0 && p.lim[r] != Unlimited && n.res[r] > p.lim[r]:
				e := errorf(ErrNoRoom, n.pool.Name, r.poolField("reservation"), "pool %q: %s %s is above the limit %s of its parent %q (%s short)",
					n.pool.Name, r.poolField("reservation"), r.fmtAmount(n.res[r]), r.fmtAmount(p.lim[r]), p.pool.Name, r.fmtAmount(n.res[r]-p.lim[r]))
				e.Shortfall = n.res[r] - p.lim[r]
				return e
			case !p.expandable() && n.res[r] > p.res[r]:
				what := "the reservation"
				if p.parent < 0 {
					what = "the capacity"
				}
				e := errorf(ErrNoRoom, n.pool.Name, r.poolField("reservation"), "pool %q: %s %s is above %s %s of its parent %q, which is not expandable (%s short)",
					n.pool.Name, r.poolField("reservation"), r.fmtAmount(n.res[r]), what, r.fmtAmount(p.res[r]), p.pool.Name, r.fmtAmount(n.res[r]-p.res[r]))
				e.Shortfall = n.res[r] - p.res[r]
				return e
			}
		}
	}
	return nil
}

// layout places the checked pools in pre-order below the root, siblings
// by name, and computes their paths and parsed shares.
func layout(c Capacity, pools []Pool, parent, depth []int) *Tree {
	t := &Tree{capacity: c, nodes: make([]node, 0, len(pools)+1), index: make(map[string]int, len(pools)+1)}
	root := node{pool: Pool{Name: RootName}, parent: -1}
	root.res = [nres]int64{c.CPUMilli, c.MemoryMiB}
	root.lim = root.res
	t.nodes = append(t.nodes, root)
	t.index[RootName] = 0
	kids := make([][]int, len(pools)+1) // by pools index + 1; 0: the root
	for i := range pools {
		kids[parent[i]+1] = append(kids[parent[i]+1], i)
	}
	for k := range kids {
		slices.SortFunc(kids[k], func(a, b int) int { return strings.Compare(pools[a].Name, pools[b].Name) })
	}
	// Pre-order walk with an explicit stack (depth is bounded anyway).
	type frame struct{ pool, parentNode int }
	stack := make([]frame, 0, len(pools))
	for k := len(kids[0]) - 1; k >= 0; k-- {
		stack = append(stack, frame{kids[0][k], 0})
	}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p := pools[f.pool]
		p.Parent = poolName(p.Parent)
		n := node{pool: p, parent: f.parentNode, depth: depth[f.pool]}
		n.res = [nres]int64{p.CPU.Reservation, p.Memory.Reservation}
		n.lim = [nres]int64{p.CPU.Limit, p.Memory.Limit}
		// checkPool parsed these already.
		n.shares[cpu], _ = vm.ParseShares("cpu.shares", p.CPU.Shares, PoolCPUSharesLow, PoolCPUSharesNormal, PoolCPUSharesHigh, 1)
		n.shares[mem], _ = vm.ParseShares("memory.shares", p.Memory.Shares, PoolMemorySharesLow, PoolMemorySharesNormal, PoolMemorySharesHigh, 1)
		n.diskShares, _ = vm.ParseShares("disk.shares", p.Disk.Shares, DiskSharesLow, DiskSharesNormal, DiskSharesHigh, 1)
		n.path = "pool." + p.Name
		if f.parentNode != 0 {
			n.path = t.nodes[f.parentNode].path + "/" + n.path
		}
		idx := len(t.nodes)
		t.nodes = append(t.nodes, n)
		t.index[p.Name] = idx
		t.nodes[f.parentNode].children = append(t.nodes[f.parentNode].children, idx)
		for k := len(kids[f.pool+1]) - 1; k >= 0; k-- {
			stack = append(stack, frame{kids[f.pool+1][k], idx})
		}
	}
	return t
}

// checkPool checks one pool's name and values on their own.
func checkPool(p *Pool) error {
	if err := vm.ValidateName("name", p.Name); err != nil {
		return errorf(ErrInvalid, p.Name, "name", "pool: %v", err)
	}
	if p.Name == RootName {
		return errorf(ErrInvalid, RootName, "name", "pool %q: the root pool is the host's capacity and cannot be defined, changed or deleted", RootName)
	}
	if p.Parent != "" && p.Parent != RootName {
		if err := vm.ValidateName("parent", p.Parent); err != nil {
			return errorf(ErrInvalid, p.Name, "parent", "pool %q: %v", p.Name, err)
		}
	}
	for r := range nres {
		a := p.alloc(r)
		for _, f := range []struct {
			name string
			v    int64
		}{{"reservation", a.Reservation}, {"limit", a.Limit}} {
			if f.v < 0 || f.v > r.max() {
				return errorf(ErrInvalid, p.Name, r.poolField(f.name), "pool %q: %s %s out of range 0..%s", p.Name, r.poolField(f.name), r.fmtAmount(f.v), r.fmtAmount(r.max()))
			}
		}
		if a.Limit != Unlimited && a.Limit < a.Reservation {
			return errorf(ErrInvalid, p.Name, r.poolField("limit"), "pool %q: %s %s is below the reservation %s", p.Name, r.poolField("limit"), r.fmtAmount(a.Limit), r.fmtAmount(a.Reservation))
		}
	}
	for _, s := range []struct{ field, v string }{{"cpu.shares", p.CPU.Shares}, {"memory.shares", p.Memory.Shares}, {"disk.shares", p.Disk.Shares}} {
		if _, err := vm.ParseShares(s.field, s.v, 1, 1, 1, 1); err != nil {
			return errorf(ErrInvalid, p.Name, s.field, "pool %q: %v", p.Name, err)
		}
	}
	for _, f := range []struct {
		name   string
		v, max int64
	}{
		{"disk.read_bytes_per_sec", p.Disk.ReadBPS, vm.MaxBPS}, {"disk.write_bytes_per_sec", p.Disk.WriteBPS, vm.MaxBPS},
		{"disk.read_iops", p.Disk.ReadIOPS, vm.MaxIOPS}, {"disk.write_iops", p.Disk.WriteIOPS, vm.MaxIOPS},
	} {
		if f.v < 0 || f.v > f.max {
			return errorf(ErrInvalid, p.Name, f.name, "pool %q: %s %d out of range 0..%d", p.Name, f.name, f.v, f.max)
		}
	}
	return nil
}

// depths returns each pool's depth (1 below the root), refusing cycles
// and trees deeper than MaxDepth. Every pool is walked at most once past
// the first known depth, so the cost is linear.
func depths(pools []Pool, parent []int) ([]int, error) {
	depth := make([]int, len(pools)) // 0: not known yet
	onPath := make([]int, len(pools))
	var path []int
	for i := range pools {
		path = path[:0]
		j := i
		base := 0
		for {
			if j < 0 {
				break
			}
			if depth[j] > 0 {
				base = depth[j]
				break
			}
			if onPath[j] == i+1 {
				k := slices.Index(path, j)
				names := make([]string, 0, len(path)-k+1)
				for _, q := range path[k:] {
					names = append(names, pools[q].Name)
				}
				names = append(names, pools[j].Name)
				return nil, errorf(ErrInvalid, pools[j].Name, "parent", "pool %q: parent cycle %s", pools[j].Name, strings.Join(names, " -> "))
			}
			onPath[j] = i + 1
			path = append(path, j)
			j = parent[j]
		}
		for k := len(path) - 1; k >= 0; k-- {
			base++
			depth[path[k]] = base
			if base > MaxDepth {
				q := path[k]
				return nil, errorf(ErrInvalid, pools[q].Name, "parent", "pool %q: nested %d pools deep, at most %d", pools[q].Name, base, MaxDepth)
			}
		}
	}
	return depth, nil
}

// Capacity is the root's capacity.
func (t *Tree) Capacity() Capacity { return t.capacity }

// Pools returns the defined pools (the root not included), each parent
// before its children and siblings by name, with Parent normalized
// ("host" for the root's children).
func (t *Tree) Pools() []Pool {
	out := make([]Pool, 0, len(t.nodes)-1)
	for i := 1; i < len(t.nodes); i++ {
		out = append(out, t.nodes[i].pool)
	}
	return out
}

// Lookup returns a pool by name; "" and "host" return the root, whose
// reservations and limits are the capacity.
func (t *Tree) Lookup(name string) (Pool, bool) {
	i, ok := t.index[poolName(name)]
	if !ok {
		return Pool{}, false
	}
	if i == 0 {
		c := t.capacity
		return Pool{Name: RootName, CPU: Alloc{Reservation: c.CPUMilli, Limit: c.CPUMilli}, Memory: Alloc{Reservation: c.MemoryMiB, Limit: c.MemoryMiB}}, true
	}
	return t.nodes[i].pool, true
}

// Children returns the names of a pool's child pools, by name.
func (t *Tree) Children(name string) []string {
	i, ok := t.index[poolName(name)]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(t.nodes[i].children))
	for _, c := range t.nodes[i].children {
		out = append(out, t.nodes[c].pool.Name)
	}
	return out
}

// Path returns a pool's cgroup path relative to the VM base: "" for the
// root, "pool.P" for P below the root, "pool.P/pool.Q" for Q below P. A
// VM's group is its pool's path joined with its name (VMPath). Pool and
// VM names are DNS labels, which have no '.', so "pool.X" never collides
// with a VM.
func (t *Tree) Path(name string) (string, bool) {
	i, ok := t.index[poolName(name)]
	if !ok {
		return "", false
	}
	return t.nodes[i].path, true
}

// VMPath returns the cgroup path of VM name in pool, relative to the VM
// base ("web" in the root, "pool.P/web" in P).
func (t *Tree) VMPath(pool, name string) (string, bool) {
	p, ok := t.Path(pool)
	if !ok {
		return "", false
	}
	if p == "" {
		return name, true
	}
	return p + "/" + name, true
}

// lookup returns a pool's node index or an ErrNotFound.
func (t *Tree) lookup(name, who string) (int, error) {
	i, ok := t.index[poolName(name)]
	if !ok {
		return 0, errorf(ErrNotFound, name, "pool", "%spool %q does not exist", who, name)
	}
	return i, nil
}

// lookupFor is lookup for the pool of VM vmName; the message is only
// formatted on a miss (admission looks up every running VM).
func (t *Tree) lookupFor(pool, vmName string) (int, error) {
	if i, ok := t.index[poolName(pool)]; ok {
		return i, nil
	}
	return t.lookup(pool, fmt.Sprintf("vm %q: ", vmName))
}
