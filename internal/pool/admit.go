package pool

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Admit decides whether newVM may start beside the running VMs: each of
// its reservations must fit in what its pool has unreserved, plus what
// expandable ancestors can lend, within every limit on the way. A VM
// without reservations is always admitted (limits and shares still
// apply). The refusal names the pool, the field, the shortfall and who
// holds the capacity, for example
//
//	pool "gold": cannot reserve 2000m CPU for vm "web" (resources.cpu.reservation_millicores): 1500m short: 500m unreserved (reservation 4000m; held by vm db 2000m, pool silver 1500m)
//
// Admit costs O(pools + running VMs).
func Admit(t *Tree, running []VMClaim, newVM VMClaim) error {
	if err := newVM.validate(); err != nil {
		return err
	}
	i, err := t.lookupFor(newVM.Pool, newVM.Name)
	if err != nil {
		return err
	}
	for k := range running {
		if running[k].Name == newVM.Name {
			return errorf(ErrInvalid, poolName(newVM.Pool), "name", "vm %q is already running", newVM.Name)
		}
	}
	u, err := t.usage(running, "")
	if err != nil {
		return err
	}
	return u.fit(i, &newVM, fmt.Sprintf("vm %q", newVM.Name))
}

// Check verifies that the running VMs fit in the tree, for example after
// the host's capacity changed (the daemon restarted with less memory):
// the error names the first pool that holds more than it may.
func Check(t *Tree, running []VMClaim) error {
	u, err := t.usage(running, "")
	if err != nil {
		return err
	}
	return t.check(u)
}

// ChangeKind is what a Change does.
type ChangeKind int

const (
	// SetVM replaces a VM's claim: a raised (or lowered) reservation, a
	// move to another pool (Pool differs), or both.
	SetVM ChangeKind = iota + 1
	// CreatePool adds Change.Pool.
	CreatePool
	// SetPool replaces the pool named Change.Pool.Name: reservations,
	// limits, shares, parent, expandable. Pools are not renamed.
	SetPool
	// DeletePool removes the pool Change.Name.
	DeletePool
)

// Change is one change to check against the tree and the running VMs.
type Change struct {
	Kind ChangeKind
	// VM is the VM's new claim (SetVM), matched by name.
	VM VMClaim
	// Pool is the pool's new definition (CreatePool, SetPool).
	Pool Pool
	// Name is the pool to delete (DeletePool).
	Name string
	// Members lists every defined VM, running or not, with its pool
	// (DeletePool): a pool that holds one is not deleted.
	Members []Member
}

// CheckChange decides whether c may be applied and returns the tree as it
// is after it (t itself for SetVM), so that the caller stores exactly
// what was checked: a refused change leaves nothing half-applied.
//
// SetVM of a VM that is not running only checks the claim and that its
// pool exists (its reservation is checked when it starts); of a running
// VM it checks the new claim in place of the old one, so moving a running
// VM to a pool without room is refused. A pool change is checked by
// rebuilding the tree and fitting the running VMs in it. A pool that
// holds pools or VMs (running or not) is not deleted; the root is never
// created, changed or deleted.
func CheckChange(t *Tree, running []VMClaim, c Change) (*Tree, error) {
	switch c.Kind {
	case SetVM:
		if err := checkSetVM(t, running, &c.VM); err != nil {
			return nil, err
		}
		return t, nil
	case CreatePool, SetPool:
		name := c.Pool.Name
		if name == RootName || name == "" && c.Kind == SetPool {
			return nil, errorf(ErrInvalid, RootName, "name", "pool %q: the root pool is the host's capacity and cannot be defined, changed or deleted", RootName)
		}
		_, exists := t.index[name]
		pools := t.Pools()
		switch {
		case c.Kind == CreatePool && exists:
			return nil, errorf(ErrInvalid, name, "name", "pool %q already exists", name)
		case c.Kind == CreatePool:
			pools = append(pools, c.Pool)
		case !exists:
			return nil, errorf(ErrNotFound, name, "name", "pool %q does not exist", name)
		default:
			pools[slices.IndexFunc(pools, func(p Pool) bool { return p.Name == name })] = c.Pool
		}
		nt, err := build(t.capacity, pools)
		if err != nil {
			return nil, err
		}
		u, err := nt.usage(running, "")
		if err != nil {
			return nil, err
		}
		if err := nt.check(u); err != nil {
			return nil, err
		}
		return nt, nil
	case DeletePool:
		return checkDelete(t, running, &c)
	}
	return nil, errorf(ErrInvalid, "", "", "unknown change kind %d", c.Kind)
}

func checkSetVM(t *Tree, running []VMClaim, c *VMClaim) error {
	if err := c.validate(); err != nil {
		return err
	}
	i, err := t.lookupFor(c.Pool, c.Name)
	if err != nil {
		return err
	}
	k := slices.IndexFunc(running, func(r VMClaim) bool { return r.Name == c.Name })
	if k < 0 {
		return nil
	}
	u, err := t.usage(running, c.Name)
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("vm %q", c.Name)
	if from := poolName(running[k].Pool); from != poolName(c.Pool) {
		subject = fmt.Sprintf("vm %q moving from pool %q", c.Name, from)
	}
	return u.fit(i, c, subject)
}

func checkDelete(t *Tree, running []VMClaim, c *Change) (*Tree, error) {
	name := c.Name
	if poolName(name) == RootName {
		return nil, errorf(ErrInvalid, RootName, "name", "pool %q: the root pool is the host's capacity and cannot be defined, changed or deleted", RootName)
	}
	i, err := t.lookup(name, "")
	if err != nil {
		return nil, err
	}
	if kids := t.Children(name); len(kids) > 0 {
		return nil, errorf(ErrInUse, name, "", "pool %q holds %d pools (%s): delete or move them first", name, len(kids), fmtNames(kids))
	}
	held := make(map[string]bool)
	for _, m := range c.Members {
		if m.Pool == name {
			held[m.VM] = true
		}
	}
	for k := range running {
		if running[k].Pool == name {
			held[running[k].Name] = true
		}
	}
	if len(held) > 0 {
		vms := slices.Sorted(maps.Keys(held))
		return nil, errorf(ErrInUse, name, "", "pool %q holds %d vms (%s): delete them or move them to another pool first", name, len(vms), fmtNames(vms))
	}
	pools := t.Pools()
	pools = slices.Delete(pools, i-1, i) // nodes[i] is pools[i-1]
	return build(t.capacity, pools)
}

// fmtNames lists at most maxHolders names and counts the rest.
func fmtNames(names []string) string {
	if len(names) <= maxHolders {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxHolders], ", "), len(names)-maxHolders)
}
