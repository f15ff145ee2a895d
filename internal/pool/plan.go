package pool

import (
	"math"
	"math/bits"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// Plan is what the cgroup layer writes: one group per pool, mirroring the
// tree, and one per VM below its pool's group. Paths are relative to the
// VM base; the root pool's group is the base itself ("").
type Plan struct {
	// Pools: the root first, then each parent before its children.
	Pools []Group
	// VMs in the order given to NewPlan.
	VMs []Group
}

// Group is the controls of one cgroup. A zero weight is "do not write":
// only the root has one, since the base's siblings are not Bulwark's.
type Group struct {
	// Pool is the pool, or the VM's pool; VM is "" for a pool's group.
	Pool   string
	VM     string
	Path   string
	CPU    CPUControls
	Memory MemoryControls
	IO     IOControls
}

// CPUControls are relative among siblings (pools and VMs under the same
// pool group): each group's shares are scaled so that the sibling with
// the most shares gets the top of the range,
//
//	weight = clamp(round(shares × 10000 / max sibling shares), 1, 10000)
//	v1     = clamp(round(shares × 262144 / max sibling shares), 2, 262144)
//
// which keeps the ratios of vSphere's shares exactly while they are
// within the range (1:10000 on v2, 1:131072 on v1) and rounds the
// smallest up to the minimum beyond.
type CPUControls struct {
	// Weight is cgroup v2 cpu.weight, 1..10000.
	Weight int64
	// Shares is cgroup v1 cpu.shares, 2..262144.
	Shares int64
	// MaxMilli is the ceiling in millicores, 0: unlimited. v2: cpu.max
	// "MaxMilli×period/1000 period"; v1: cpu.cfs_quota_us likewise over
	// cpu.cfs_period_us.
	MaxMilli int64
}

// MemoryControls, in MiB.
type MemoryControls struct {
	// MinMiB is the reservation, the memory the kernel never reclaims
	// from the group (v2 memory.min). A pool's is what it draws from its
	// parent (its reservation, or what it holds when more and
	// expandable), so that it covers its children's: v2 honours a child's
	// memory.min only within its parent's. The root's is the total
	// reserved; the base's ancestors need at least as much (systemd:
	// MemoryMin= on the daemon's unit). v1 has no equivalent: on v1 the
	// reservation rests on admission control alone.
	MinMiB int64
	// LowMiB is best-effort protection (v2 memory.low; v1: the closest
	// is memory.soft_limit_in_bytes): the reservation plus a part of the
	// parent's memory that its children have not reserved, divided among
	// the siblings by memory shares, capped by the group's MaxMiB:
	//
	//	low(child) = min(cap, min(child) + (low(parent) − Σ min(siblings)) × shares / Σ shares)
	//
	// with low(root) = the capacity. The children's lows thus add up to
	// at most their parent's.
	LowMiB int64
	// MaxMiB is the hard cap (v2 memory.max, v1
	// memory.limit_in_bytes), 0: unlimited. A VM's is its limit (its
	// memory when not set) plus its hypervisor overhead, so a guest that
	// touches more than its limit is killed in its own group, never
	// pushing on the host. The root's is the capacity: all VMs together
	// never eat the slice kept for the host.
	MaxMiB int64
}

// IOControls: weights are relative among siblings like CPU's,
//
//	weight = clamp(round(shares × 10000 / max sibling shares), 1, 10000)  (v2 io.weight)
//	blkio  = clamp(round(shares × 1000 / max sibling shares), 10, 1000)   (v1 blkio.weight)
//
// limits (0: none) go to v2 io.max or v1 blkio.throttle.* for each disk.
type IOControls struct {
	Weight      int64
	BlkioWeight int64
	ReadBPS     int64
	WriteBPS    int64
	ReadIOPS    int64
	WriteIOPS   int64
}

// Weight ranges of the cgroup interfaces.
const (
	WeightMin, WeightMax           = 1, 10000  // v2 cpu.weight, io.weight
	CPUSharesMin, CPUSharesMax     = 2, 262144 // v1 cpu.shares
	BlkioWeightMin, BlkioWeightMax = 10, 1000  // v1 blkio.weight
)

// NewPlan computes the controls of every pool and of vms (the VMs to
// confine: those running and the one starting). The VMs must fit (see
// Admit); a plan for VMs that do not is refused, so that nothing runs
// with a protection the host cannot give.
func NewPlan(t *Tree, vms []VMClaim) (*Plan, error) {
	seen := make(map[string]bool, len(vms))
	where := make([]int, len(vms))
	for k := range vms {
		c := &vms[k]
		if err := c.validate(); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, errorf(ErrInvalid, poolName(c.Pool), "name", "vm %q: listed twice", c.Name)
		}
		seen[c.Name] = true
		i, err := t.lookupFor(c.Pool, c.Name)
		if err != nil {
			return nil, err
		}
		where[k] = i
	}
	u, err := t.usage(vms, "")
	if err != nil {
		return nil, err
	}
	if err := t.check(u); err != nil {
		return nil, err
	}

	p := &Plan{Pools: make([]Group, len(t.nodes)), VMs: make([]Group, len(vms))}
	// Sibling sets: per pool node, its child pools and its VMs.
	vmsIn := make([][]int, len(t.nodes))
	for k, i := range where {
		vmsIn[i] = append(vmsIn[i], k)
	}
	vmShares := make([][3]int64, len(vms)) // cpu, mem, disk
	for k := range vms {
		c := &vms[k]
		vmShares[k] = claimShares(c) // validated above
		p.VMs[k] = vmGroup(t, c, where[k])
	}
	for i := range t.nodes {
		n := &t.nodes[i]
		g := Group{Pool: n.pool.Name, Path: n.path}
		g.CPU.MaxMilli = n.lim[cpu]
		g.Memory.MaxMiB = n.lim[mem]
		g.Memory.MinMiB = u.draw(i, mem)
		if i == 0 {
			g.Memory.MinMiB = u.held[mem][0]
			g.Memory.LowMiB = t.capacity.MemoryMiB
		}
		d := n.pool.Disk
		g.IO = IOControls{ReadBPS: d.ReadBPS, WriteBPS: d.WriteBPS, ReadIOPS: d.ReadIOPS, WriteIOPS: d.WriteIOPS}
		p.Pools[i] = g
	}
	// Top-down: a pool's low is final before its children's.
	for i := range t.nodes {
		p.divide(t, i, vmsIn[i], vmShares)
	}
	p.Pools[0].CPU.MaxMilli = t.capacity.CPUMilli
	p.Pools[0].Memory.MaxMiB = t.capacity.MemoryMiB
	p.clampCPU(t, where)
	return p, nil
}

// clampCPU caps every group's CPU ceiling at its nearest ancestor's (the
// root's is the capacity). A child can never use more than its parent
// anyway, and cgroup v1 refuses a child's cfs quota above its parent's
// (EINVAL), which would stop VMs from starting: a VM's default ceiling of
// vCPUs × 1000 above its pool's limit, or a pool limit above the host's
// capacity. Parents come before their children in t.nodes.
func (p *Plan) clampCPU(t *Tree, where []int) {
	eff := make([]int64, len(t.nodes)) // the ceiling in force at each pool
	for i := range t.nodes {
		c := p.Pools[i].CPU.MaxMilli
		if i == 0 {
			eff[i] = c
			continue
		}
		parent := eff[t.nodes[i].parent]
		switch {
		case c == 0: // unlimited ("max" is allowed under any parent)
			eff[i] = parent
		case c > parent:
			p.Pools[i].CPU.MaxMilli = parent
			eff[i] = parent
		default:
			eff[i] = c
		}
	}
	for k, i := range where {
		if c := p.VMs[k].CPU.MaxMilli; c == 0 || c > eff[i] {
			p.VMs[k].CPU.MaxMilli = eff[i]
		}
	}
}

// divide sets the weights and memory low of pool i's children: its
// child pools and the VMs vmk (indexes into p.VMs and vmShares).
func (p *Plan) divide(t *Tree, i int, vmk []int, vmShares [][3]int64) {
	kids := t.nodes[i].children
	var maxS [3]int64
	var sumMem, sumMin int64
	for _, c := range kids {
		cn := &t.nodes[c]
		maxS = [3]int64{max(maxS[0], cn.shares[cpu]), max(maxS[1], cn.shares[mem]), max(maxS[2], cn.diskShares)}
		sumMem += cn.shares[mem]
		sumMin += p.Pools[c].Memory.MinMiB
	}
	for _, k := range vmk {
		s := vmShares[k]
		maxS = [3]int64{max(maxS[0], s[0]), max(maxS[1], s[1]), max(maxS[2], s[2])}
		sumMem += s[1]
		sumMin += p.VMs[k].Memory.MinMiB
	}
	spare := max(0, p.Pools[i].Memory.LowMiB-sumMin)
	set := func(g *Group, s [3]int64) {
		g.CPU.Weight = scale(s[0], maxS[0], WeightMin, WeightMax)
		g.CPU.Shares = scale(s[0], maxS[0], CPUSharesMin, CPUSharesMax)
		g.IO.Weight = scale(s[2], maxS[2], WeightMin, WeightMax)
		g.IO.BlkioWeight = scale(s[2], maxS[2], BlkioWeightMin, BlkioWeightMax)
		low := g.Memory.MinMiB + mulDiv(spare, s[1], sumMem)
		if g.Memory.MaxMiB != 0 {
			low = min(low, g.Memory.MaxMiB)
		}
		g.Memory.LowMiB = max(low, g.Memory.MinMiB)
	}
	for _, c := range kids {
		cn := &t.nodes[c]
		set(&p.Pools[c], [3]int64{cn.shares[cpu], cn.shares[mem], cn.diskShares})
	}
	for _, k := range vmk {
		set(&p.VMs[k], vmShares[k])
	}
}

// vmGroup fills a VM's own values; weights and low come from its
// siblings.
func vmGroup(t *Tree, c *VMClaim, i int) Group {
	path := c.Name
	if t.nodes[i].path != "" {
		path = t.nodes[i].path + "/" + c.Name
	}
	r := &c.Resources
	g := Group{Pool: t.nodes[i].pool.Name, VM: c.Name, Path: path}
	g.CPU.MaxMilli = r.CPU.LimitMilli
	if g.CPU.MaxMilli == 0 {
		g.CPU.MaxMilli = int64(c.VCPUs) * 1000
	}
	lim := r.Memory.LimitMiB
	if lim == 0 {
		lim = c.MemoryMiB
	}
	g.Memory.MaxMiB = lim + c.OverheadMiB
	g.Memory.MinMiB = r.Memory.ReservationMiB
	d := r.Disk
	g.IO = IOControls{ReadBPS: d.ReadBPS, WriteBPS: d.WriteBPS, ReadIOPS: d.ReadIOPS, WriteIOPS: d.WriteIOPS}
	return g
}

// claimShares is a validated claim's CPU, memory and disk shares: presets
// scale with its vCPUs and MiB.
func claimShares(c *VMClaim) [3]int64 {
	r := &c.Resources
	cs, _ := vm.ParseShares("resources.cpu.shares", r.CPU.Shares, VMCPUSharesLow, VMCPUSharesNormal, VMCPUSharesHigh, int64(c.VCPUs))
	ms, _ := vm.ParseShares("resources.memory.shares", r.Memory.Shares, VMMemorySharesLow, VMMemorySharesNormal, VMMemorySharesHigh, c.MemoryMiB)
	ds, _ := vm.ParseShares("resources.disk.shares", r.Disk.Shares, DiskSharesLow, DiskSharesNormal, DiskSharesHigh, 1)
	return [3]int64{cs, ms, ds}
}

// scale maps shares s (0 < s ≤ top) to lo..hi so that top gets hi:
// round(s × hi / top), at least lo.
func scale(s, top, lo, hi int64) int64 {
	if top <= 0 || s <= 0 {
		return lo
	}
	q, r := mulDivRem(s, hi, top)
	if r >= top-r { // 2r ≥ top without overflowing
		q++
	}
	return min(max(q, lo), hi)
}

// mulDiv is floor(a × b / c), exact in 128 bits (see mulDivRem).
func mulDiv(a, b, c int64) int64 {
	q, _ := mulDivRem(a, b, c)
	return q
}

// mulDivRem is floor(a × b / c) and the remainder, for a, b ≥ 0 and
// c > 0, exact in 128 bits. The callers keep b ≤ c or a ≤ c, so the
// quotient fits; a quotient that would not saturates at MaxInt64
// rather than panic, and a zero or negative operand gives 0.
func mulDivRem(a, b, c int64) (q, r int64) {
	if c <= 0 || a <= 0 || b <= 0 {
		return 0, 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return math.MaxInt64, 0
	}
	uq, ur := bits.Div64(hi, lo, uint64(c))
	if uq > math.MaxInt64 {
		return math.MaxInt64, 0
	}
	return int64(uq), int64(ur)
}
