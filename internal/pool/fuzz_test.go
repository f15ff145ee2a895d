package pool

import (
	"errors"
	"fmt"
	"testing"
)

// bytesource hands out fuzz input, zeros once it runs out.
type bytesource struct{ b []byte }

func (s *bytesource) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

// value is mostly a small non-negative multiple of scale, sometimes
// negative or far past the bounds.
func (s *bytesource) value(scale int64) int64 {
	switch b := s.byte(); {
	case b < 64:
		return 0
	case b < 240:
		return int64(b-64) * scale
	case b < 248:
		return -int64(s.byte()) - 1
	default:
		return int64(int16(uint16(s.byte())<<8|uint16(s.byte()))) * scale * 64
	}
}

var (
	fuzzNames  = []string{"a", "p0", "p11", "host", "Bad", "", "zz"}
	fuzzShares = []string{"", "low", "normal", "high", "1", "1048576", "0", "x"}
)

// pick returns list[b % len] when b ≥ 244, else def: the odd value now
// and then.
func (s *bytesource) pick(def string, list []string) string {
	if b := s.byte(); b >= 244 {
		return list[int(b)%len(list)]
	}
	return def
}

// pool is mostly a well-formed pool "pI" below the root or an earlier
// pool; now and then a bad name, a duplicate, a forward or dangling
// parent (cycles), a bad share.
func (s *bytesource) pool(i int) Pool {
	p := Pool{Name: s.pick(fmt.Sprintf("p%d", i), fuzzNames)}
	switch b := s.byte(); {
	case b < 60 || i == 0 && b < 244:
	case b < 244:
		p.Parent = fmt.Sprintf("p%d", int(b)%i)
	default:
		p.Parent = fmt.Sprintf("p%d", int(b)%12)
	}
	p.CPU = Alloc{Reservation: s.value(5), Limit: s.value(40), Shares: s.pick("", fuzzShares)}
	p.Memory = Alloc{Reservation: s.value(8), Limit: s.value(64), Shares: s.pick("", fuzzShares)}
	flags := s.byte()
	p.Expandable = flags&1 != 0
	if flags&2 == 0 {
		p.CPU.Limit = 0
	}
	if flags&4 == 0 {
		p.Memory.Limit = 0
	}
	if flags&8 != 0 {
		p.Disk = DiskAlloc{Shares: s.pick("", fuzzShares), ReadBPS: s.value(1 << 20), WriteIOPS: s.value(1)}
	}
	return p
}

// claim is VM "vmI" in one of npools pools "pN" or the root, or now and
// then in a pool that does not exist.
func (s *bytesource) claim(i, npools int) VMClaim {
	c := VMClaim{Name: fmt.Sprintf("vm%d", i), Pool: fmt.Sprintf("p%d", int(s.byte())%(npools+2)), VCPUs: 1 + int(s.byte()%8), MemoryMiB: 64 << (s.byte() % 8), OverheadMiB: int64(s.byte())}
	c.Resources.CPU.ReservationMilli = s.value(20) % (int64(c.VCPUs)*1000 + 1)
	c.Resources.Memory.ReservationMiB = s.value(16) % (c.MemoryMiB + 1)
	if c.Pool == fmt.Sprintf("p%d", npools) {
		c.Pool = ""
	}
	c.Resources.CPU.Shares = s.pick("", fuzzShares)
	c.Resources.Memory.Shares = s.pick("", fuzzShares)
	return c
}

// FuzzTree builds trees from random pool lists, admits random VMs and
// applies a random change. Nothing may panic, every refusal is a
// *pool.Error, and whatever is accepted satisfies the invariants.
func FuzzTree(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 16, 2, 0, 1, 0, 10, 0, 20, 2, 0, 50, 0, 0, 2, 1})
	f.Add([]byte("\x05\x20\x03\x00\x01\x00\x30\x00\x40\x01\x00\x10\x00\x00\x01\x03\x02\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x01\x07\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &bytesource{b: data}
		c := Capacity{CPUMilli: 1000 * int64(s.byte()%17), MemoryMiB: 512 * int64(s.byte()%33)}
		pools := make([]Pool, int(s.byte()%12))
		for i := range pools {
			pools[i] = s.pool(i)
		}
		tree, err := NewTree(c, pools)
		if err != nil {
			mustBePoolError(t, err)
			return
		}
		checkInvariants(t, tree, nil)

		var running []VMClaim
		for i := range int(s.byte() % 16) {
			vmc := s.claim(i, len(pools))
			if err := Admit(tree, running, vmc); err != nil {
				mustBePoolError(t, err)
				continue
			}
			running = append(running, vmc)
		}
		checkInvariants(t, tree, running)

		var ch Change
		switch s.byte() % 4 {
		case 0:
			ch = Change{Kind: SetVM, VM: s.claim(int(s.byte()%16), len(pools))}
		case 1:
			ch = Change{Kind: CreatePool, Pool: s.pool(len(pools))}
		case 2:
			ch = Change{Kind: SetPool, Pool: s.pool(int(s.byte() % 12))}
		case 3:
			ch = Change{Kind: DeletePool, Name: s.pick(fmt.Sprintf("p%d", s.byte()%12), fuzzNames)}
		}
		nt, err := CheckChange(tree, running, ch)
		if err != nil {
			mustBePoolError(t, err)
			return
		}
		if ch.Kind == SetVM {
			for k := range running {
				if running[k].Name == ch.VM.Name {
					running[k] = ch.VM
				}
			}
		}
		checkInvariants(t, nt, running)
	})
}

func mustBePoolError(t *testing.T, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Msg == "" || pe.Kind == nil {
		t.Fatalf("not a complete *pool.Error: %#v", err)
	}
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNoRoom) && !errors.Is(err, ErrInUse) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// checkInvariants recomputes, independently of the package's usage code,
// what every pool holds, and checks the plan's values.
func checkInvariants(t *testing.T, tree *Tree, running []VMClaim) {
	t.Helper()
	if err := Check(tree, running); err != nil {
		t.Fatalf("accepted state fails Check: %v", err)
	}
	pools := tree.Pools()
	byName := map[string]Pool{}
	for _, p := range pools {
		byName[p.Name] = p
	}
	// held[name][0] CPU, [1] memory; parents come before children in
	// Pools, so walk backwards.
	held := map[string]*[2]int64{RootName: {}}
	for _, p := range pools {
		held[p.Name] = &[2]int64{}
	}
	for _, c := range running {
		h := held[poolName(c.Pool)]
		h[0] += c.Resources.CPU.ReservationMilli
		h[1] += c.Resources.Memory.ReservationMiB
	}
	for k := len(pools) - 1; k >= 0; k-- {
		p := pools[k]
		res := [2]int64{p.CPU.Reservation, p.Memory.Reservation}
		lim := [2]int64{p.CPU.Limit, p.Memory.Limit}
		for r := range 2 {
			h := held[p.Name][r]
			if !p.Expandable && h > res[r] {
				t.Fatalf("pool %s holds %d of resource %d, above its reservation %d and not expandable", p.Name, h, r, res[r])
			}
			if lim[r] != 0 && h > lim[r] {
				t.Fatalf("pool %s holds %d of resource %d, above its limit %d", p.Name, h, r, lim[r])
			}
			if lim[r] != 0 && res[r] > lim[r] {
				t.Fatalf("pool %s: limit below reservation", p.Name)
			}
			held[p.Parent][r] += max(res[r], h*boolInt(p.Expandable))
		}
	}
	c := tree.Capacity()
	if root := held[RootName]; root[0] > c.CPUMilli || root[1] > c.MemoryMiB {
		t.Fatalf("root holds %v, capacity %+v", *root, c)
	}

	us, err := Usages(tree, running)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		for _, a := range []Account{u.CPU, u.Memory} {
			if a.Unreserved < 0 || a.Available < 0 || a.Borrowed < 0 || a.Available < a.Unreserved {
				t.Fatalf("pool %s accounts %+v", u.Pool, a)
			}
		}
	}

	plan, err := NewPlan(tree, running)
	if err != nil {
		t.Fatalf("plan for admitted vms: %v", err)
	}
	groups := map[string]Group{}
	for _, g := range plan.Pools {
		groups[g.Pool] = g
	}
	childLow, childMin := map[string]int64{}, map[string]int64{}
	for _, p := range pools {
		childLow[p.Parent] += groups[p.Name].Memory.LowMiB
		childMin[p.Parent] += groups[p.Name].Memory.MinMiB
	}
	for _, g := range plan.VMs {
		childLow[g.Pool] += g.Memory.LowMiB
		childMin[g.Pool] += g.Memory.MinMiB
	}
	for _, g := range append(plan.Pools, plan.VMs...) {
		if g.Memory.MinMiB > g.Memory.LowMiB || g.Memory.MaxMiB != 0 && g.Memory.LowMiB > g.Memory.MaxMiB || g.Memory.MaxMiB != 0 && g.Memory.MinMiB > g.Memory.MaxMiB {
			t.Fatalf("group %q memory %+v", g.Path, g.Memory)
		}
		if g.Path == "" {
			continue
		}
		if g.CPU.Weight < WeightMin || g.CPU.Weight > WeightMax || g.CPU.Shares < CPUSharesMin || g.CPU.Shares > CPUSharesMax ||
			g.IO.Weight < WeightMin || g.IO.Weight > WeightMax || g.IO.BlkioWeight < BlkioWeightMin || g.IO.BlkioWeight > BlkioWeightMax {
			t.Fatalf("group %q weights %+v %+v", g.Path, g.CPU, g.IO)
		}
	}
	for name, g := range groups {
		if childLow[name] > g.Memory.LowMiB {
			t.Fatalf("children of %s have memory low %d above its %d", name, childLow[name], g.Memory.LowMiB)
		}
		if childMin[name] > g.Memory.MinMiB {
			t.Fatalf("children of %s have memory min %d above its %d", name, childMin[name], g.Memory.MinMiB)
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
