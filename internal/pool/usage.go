package pool

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// usage is what every pool holds for a set of running VMs.
type usage struct {
	t *Tree
	// held: per node, the draws of its child pools plus the reservations
	// of the VMs directly in it. vms: the VMs' part alone.
	held, vms [nres][]int64
	running   []VMClaim
	skip      string // a VM left out (its claim is being replaced)
}

// usage adds up running (except the VM named skip) bottom-up. Running
// claims were admitted before, so they are only checked for what the
// arithmetic relies on: a known pool and reservations in range.
func (t *Tree) usage(running []VMClaim, skip string) (*usage, error) {
	u := &usage{t: t, running: running, skip: skip}
	for r := range nres {
		u.held[r] = make([]int64, len(t.nodes))
		u.vms[r] = make([]int64, len(t.nodes))
	}
	for k := range running {
		c := &running[k]
		if c.Name == skip {
			continue
		}
		i, err := t.lookupFor(c.Pool, c.Name)
		if err != nil {
			return nil, err
		}
		for r := range nres {
			v := c.reservation(r)
			if v < 0 || v > r.max() {
				return nil, errorf(ErrInvalid, poolName(c.Pool), r.vmField(), "vm %q: %s %d out of range 0..%d", c.Name, r.vmField(), v, r.max())
			}
			u.vms[r][i] += v // at most len(running) × 2^24: no overflow
		}
	}
	for r := range nres {
		copy(u.held[r], u.vms[r])
		for i := len(t.nodes) - 1; i > 0; i-- {
			u.held[r][t.nodes[i].parent] += u.draw(i, r)
		}
	}
	return u, nil
}

// draw is what pool i takes from its parent: its reservation, or what it
// holds when that is more and the pool is expandable.
func (u *usage) draw(i int, r resource) int64 {
	n := &u.t.nodes[i]
	if n.expandable() {
		return max(n.res[r], u.held[r][i])
	}
	return n.res[r]
}

// room is how much more reservation of r pool i can hold: its unreserved
// part, plus its parents' while they lend (expandable), bounded by every
// limit on the way. Lending at level k covers only what the levels below
// could not, so a limit at level k allows sum(room below k) + (limit -
// held at k).
func (u *usage) room(i int, r resource) int64 {
	var acc int64
	bound := int64(math.MaxInt64)
	for j := i; ; j = u.t.nodes[j].parent {
		n := &u.t.nodes[j]
		held := u.held[r][j]
		if j != 0 && n.lim[r] != Unlimited {
			bound = min(bound, acc+max(0, n.lim[r]-held))
		}
		acc += max(0, n.res[r]-held)
		if !n.expandable() {
			break
		}
	}
	return min(acc, bound)
}

// check refuses a tree whose pools hold more than they may: above a
// limit, or above the reservation of a pool that is not expandable (the
// root: above the capacity). Children are checked before their parents,
// so the error names the pool nearest the excess.
func (t *Tree) check(u *usage) error {
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := &t.nodes[i]
		for r := range nres {
			held := u.held[r][i]
			if i != 0 && n.lim[r] != Unlimited && held > n.lim[r] {
				e := errorf(ErrNoRoom, n.pool.Name, r.poolField("limit"), "pool %q: %s reservations held in it total %s, %s above its limit %s (held by %s)",
					n.pool.Name, r, r.fmtAmount(held), r.fmtAmount(held-n.lim[r]), r.fmtAmount(n.lim[r]), fmtHolders(u.holders(i, r), r))
				e.Shortfall = held - n.lim[r]
				return e
			}
			if !n.expandable() && held > n.res[r] {
				what := "reservation"
				if i == 0 {
					what = "capacity"
				}
				e := errorf(ErrNoRoom, n.pool.Name, r.poolField("reservation"), "pool %q: %s reservations held in it total %s, %s above its %s %s (held by %s)",
					n.pool.Name, r, r.fmtAmount(held), r.fmtAmount(held-n.res[r]), what, r.fmtAmount(n.res[r]), fmtHolders(u.holders(i, r), r))
				e.Shortfall = held - n.res[r]
				return e
			}
		}
	}
	return nil
}

// fit refuses claim c in pool i when one of its reservations exceeds the
// room there. subject names the claimant in the message.
func (u *usage) fit(i int, c *VMClaim, subject string) error {
	for r := range nres {
		want := c.reservation(r)
		if want == 0 {
			continue
		}
		if have := u.room(i, r); want > have {
			return u.refuse(i, r, want, have, subject, r.vmField())
		}
	}
	return nil
}

// refuse builds the refusal for want of r in pool i, given room have:
// the shortfall, then what each pool on the lending chain has left and
// who holds the rest, then the limit that binds, if one does.
func (u *usage) refuse(i int, r resource, want, have int64, subject, field string) *Error {
	var b strings.Builder
	fmt.Fprintf(&b, "pool %q: cannot reserve %s %s for %s (%s): %s short: ", u.t.nodes[i].pool.Name, r.fmtAmount(want), r, subject, field, r.fmtAmount(want-have))
	var acc int64
	bound, binding := int64(math.MaxInt64), -1
	for j, first := i, true; ; j, first = u.t.nodes[j].parent, false {
		n := &u.t.nodes[j]
		held := u.held[r][j]
		if j != 0 && n.lim[r] != Unlimited && acc+max(0, n.lim[r]-held) < bound {
			bound, binding = acc+max(0, n.lim[r]-held), j
		}
		unres := max(0, n.res[r]-held)
		acc += unres
		what := "reservation"
		if j == 0 {
			what = "capacity"
		}
		if first {
			fmt.Fprintf(&b, "%s unreserved (", r.fmtAmount(unres))
		} else {
			fmt.Fprintf(&b, " + %s in pool %q (", r.fmtAmount(unres), n.pool.Name)
		}
		if n.expandable() {
			b.WriteString("expandable, ")
		}
		fmt.Fprintf(&b, "%s %s; held by %s)", what, r.fmtAmount(n.res[r]), fmtHolders(u.holders(j, r), r))
		if !n.expandable() {
			break
		}
	}
	if bound < acc {
		n := &u.t.nodes[binding]
		fmt.Fprintf(&b, "; the limit %s of pool %q leaves %s", r.fmtAmount(n.lim[r]), n.pool.Name, r.fmtAmount(max(0, n.lim[r]-u.held[r][binding])))
	}
	e := errorf(ErrNoRoom, u.t.nodes[i].pool.Name, field, "%s", b.String())
	e.Shortfall = want - have
	return e
}

// Holder is a pool or VM that holds part of a pool's reservation.
type Holder struct {
	// Kind is "pool" or "vm".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Amount is what it holds: a VM's reservation, a child pool's draw
	// (its reservation, plus what it borrows when expandable).
	Amount int64 `json:"amount"`
}

// holders lists who holds pool i's r, largest first, then by kind and name.
func (u *usage) holders(i int, r resource) []Holder {
	var hs []Holder
	for _, c := range u.t.nodes[i].children {
		if d := u.draw(c, r); d > 0 {
			hs = append(hs, Holder{Kind: "pool", Name: u.t.nodes[c].pool.Name, Amount: d})
		}
	}
	name := u.t.nodes[i].pool.Name
	for k := range u.running {
		c := &u.running[k]
		if c.Name != u.skip && poolName(c.Pool) == name && c.reservation(r) > 0 {
			hs = append(hs, Holder{Kind: "vm", Name: c.Name, Amount: c.reservation(r)})
		}
	}
	slices.SortFunc(hs, func(a, b Holder) int {
		return cmp.Or(cmp.Compare(b.Amount, a.Amount), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return hs
}

// fmtHolders writes "vm db 2000m, pool silver 1500m", naming at most
// maxHolders and summing up the rest, or "nothing".
func fmtHolders(hs []Holder, r resource) string {
	if len(hs) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for k, h := range hs {
		if k == maxHolders {
			var rest int64
			for _, h := range hs[k:] {
				rest += h.Amount
			}
			fmt.Fprintf(&b, " and %d more %s", len(hs)-k, r.fmtAmount(rest))
			break
		}
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s %s", h.Kind, h.Name, r.fmtAmount(h.Amount))
	}
	return b.String()
}

// Usage is a pool's reservation accounts.
type Usage struct {
	Pool       string  `json:"pool"`
	Parent     string  `json:"parent,omitempty"`
	Expandable bool    `json:"expandable,omitempty"`
	CPU        Account `json:"cpu"`    // millicores
	Memory     Account `json:"memory"` // MiB
}

// Account is one resource of one pool.
type Account struct {
	// Reservation is the pool's own; the root's is the capacity.
	Reservation int64 `json:"reservation"`
	// Limit is the pool's ceiling; Unlimited: none. The root's is the
	// capacity.
	Limit int64 `json:"limit"`
	// ReservedByPools is what the child pools draw from it;
	// ReservedByVMs what the running VMs directly in it reserve.
	ReservedByPools int64 `json:"reserved_by_pools"`
	ReservedByVMs   int64 `json:"reserved_by_vms"`
	// Borrowed is what an expandable pool holds beyond its reservation,
	// taken from its parent.
	Borrowed int64 `json:"borrowed"`
	// Unreserved is the reservation less what is held, at least 0.
	Unreserved int64 `json:"unreserved"`
	// Available is the largest reservation a new VM could get here:
	// Unreserved plus what expandable ancestors can lend, within limits.
	Available int64 `json:"available"`
}

// Usages returns every pool's accounts for the running VMs, the root
// first and then in the order of Tree.Pools.
func Usages(t *Tree, running []VMClaim) ([]Usage, error) {
	u, err := t.usage(running, "")
	if err != nil {
		return nil, err
	}
	out := make([]Usage, len(t.nodes))
	for i := range t.nodes {
		out[i] = u.of(i)
	}
	return out, nil
}

func (u *usage) of(i int) Usage {
	n := &u.t.nodes[i]
	us := Usage{Pool: n.pool.Name, Parent: n.pool.Parent, Expandable: n.expandable()}
	for r := range nres {
		held, vms := u.held[r][i], u.vms[r][i]
		a := Account{
			Reservation: n.res[r], Limit: n.lim[r],
			ReservedByPools: held - vms, ReservedByVMs: vms,
			Unreserved: max(0, n.res[r]-held), Available: u.room(i, r),
		}
		if n.expandable() {
			a.Borrowed = max(0, held-n.res[r])
		}
		if r == cpu {
			us.CPU = a
		} else {
			us.Memory = a
		}
	}
	return us
}

// Description is a pool's accounts and who holds its reservations.
type Description struct {
	Usage
	CPUHolders    []Holder `json:"cpu_holders"`
	MemoryHolders []Holder `json:"memory_holders"`
}

// Describe returns who holds what in pool name, for `pool show` and
// messages.
func Describe(t *Tree, running []VMClaim, name string) (Description, error) {
	i, err := t.lookup(name, "")
	if err != nil {
		return Description{}, err
	}
	u, err := t.usage(running, "")
	if err != nil {
		return Description{}, err
	}
	return Description{Usage: u.of(i), CPUHolders: u.holders(i, cpu), MemoryHolders: u.holders(i, mem)}, nil
}

// String writes the description as lines for a terminal.
func (d Description) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pool %s", d.Pool)
	if d.Parent != "" {
		fmt.Fprintf(&b, " (parent %s", d.Parent)
		if d.Expandable {
			b.WriteString(", expandable")
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	for _, x := range []struct {
		r  resource
		a  Account
		hs []Holder
	}{{cpu, d.CPU, d.CPUHolders}, {mem, d.Memory, d.MemoryHolders}} {
		a, r := x.a, x.r
		lim := "unlimited"
		if a.Limit != Unlimited {
			lim = r.fmtAmount(a.Limit)
		}
		fmt.Fprintf(&b, "%s: reservation %s, limit %s, reserved by pools %s, by vms %s, borrowed %s, unreserved %s, available %s\n",
			r, r.fmtAmount(a.Reservation), lim, r.fmtAmount(a.ReservedByPools), r.fmtAmount(a.ReservedByVMs),
			r.fmtAmount(a.Borrowed), r.fmtAmount(a.Unreserved), r.fmtAmount(a.Available))
		for _, h := range x.hs {
			fmt.Fprintf(&b, "  %s %s %s\n", h.Kind, h.Name, r.fmtAmount(h.Amount))
		}
	}
	return b.String()
}
