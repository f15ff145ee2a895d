package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/bulwark-project/bulwark/internal/cgroup"
)

// CgroupSet keeps one cgroup per VM below Base in a host hierarchy
// (internal/cgroup), mirroring the resource-pool tree:
//
//	BASE               the root pool ("host")
//	BASE/pool.P        pool P
//	BASE/pool.P/pool.Q pool Q, a child of P
//	BASE/NAME          VM NAME in the root pool
//	BASE/pool.P/NAME   VM NAME in pool P
//
// VM names are DNS labels, so "pool." never names a VM. A VM's group may
// move between runs (its pool changed while it was stopped, or the daemon
// restarted): Release, OOMKills and List find VM groups by searching the
// tree, not by remembering where Prepare put them.
type CgroupSet struct {
	H    *cgroup.Hierarchy
	Base string
}

// poolPrefix starts the name of every pool group.
const poolPrefix = "pool."

// maxGroupsScanned bounds a search of the tree (pools and VMs together).
const maxGroupsScanned = 1 << 16

// checkVMRel checks that rel is vm's group path relative to Base:
// "NAME" or "pool.P/.../NAME".
func checkVMRel(vm, rel string) error {
	if vm == "" || strings.HasPrefix(vm, poolPrefix) || strings.Contains(vm, "/") {
		return fmt.Errorf("cgroup of vm %q: not a VM name", vm)
	}
	pools, leaf := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		pools, leaf = rel[:i], rel[i+1:]
	}
	if leaf != vm {
		return fmt.Errorf("cgroup of vm %q: path %q does not end in the VM's name", vm, rel)
	}
	if pools != "" {
		return checkPoolRel(pools)
	}
	return nil
}

// checkPoolRel checks a pool's group path relative to Base: "" (the root
// pool) or "pool.P(/pool.Q)*".
func checkPoolRel(rel string) error {
	if rel == "" {
		return nil
	}
	for c := range strings.SplitSeq(rel, "/") {
		if len(c) <= len(poolPrefix) || !strings.HasPrefix(c, poolPrefix) {
			return fmt.Errorf("pool cgroup path %q: component %q is not pool.NAME", rel, c)
		}
	}
	return nil
}

func (c *CgroupSet) abs(rel string) string {
	if rel == "" {
		return c.Base
	}
	return path.Join(c.Base, rel)
}

// Prepare implements Cgroups. rel is the VM's group path relative to Base
// ("NAME" in the root pool, "pool.P/NAME" in pool P, as internal/pool
// computes it) and l its controls. Every group of the VM found in the
// tree, wherever an earlier run put it, is killed and removed first, so
// the counters (OOM kills, pids.max hits, CPU time) start from zero. The
// pool groups above the VM must exist (ApplyPool), so that a VM never
// runs in a pool whose controls were not written. If any control cannot
// be written, the new group is removed and the error names the file and
// the value: the VM must not start. unenforced lists the controls the
// host cannot enforce (cgroup.Group.Unenforced) for the caller to log.
func (c *CgroupSet) Prepare(ctx context.Context, vm, rel string, l cgroup.Limits) (place func(pid int) error, unenforced []string, err error) {
	if err := checkVMRel(vm, rel); err != nil {
		return nil, nil, err
	}
	if pools := path.Dir(rel); pools != "." {
		if _, err := c.H.Open(c.abs(pools)); err != nil {
			return nil, nil, fmt.Errorf("pool group of vm %q: %w", vm, err)
		}
	}
	if _, err := c.Release(ctx, vm); err != nil {
		return nil, nil, err
	}
	g, err := c.H.Create(c.abs(rel), l)
	if err != nil {
		if g, oerr := c.H.Open(c.abs(rel)); oerr == nil {
			g.Remove() // empty: nothing was placed in it
		}
		return nil, nil, err
	}
	return g.Add, g.Unenforced(), nil
}

// ApplyPool creates the group of the pool at rel ("" is the root pool,
// Base itself; "pool.P/pool.Q" is pool Q in P) if needed, with its
// missing parents, and sets its controls to l; on a live pool it changes
// them in place, without touching its VMs' groups. unenforced is as for
// Prepare. Parent pools must be applied before their children are
// created: a parent made here implicitly has no controls. On v1 a CPU cap
// must be raised on a parent before its children and lowered on children
// before their parent (the kernel refuses a child's cap above its
// parent's).
func (c *CgroupSet) ApplyPool(rel string, l cgroup.Limits) (unenforced []string, err error) {
	if err := checkPoolRel(rel); err != nil {
		return nil, err
	}
	g, err := c.H.Create(c.abs(rel), l)
	if err != nil {
		return nil, err
	}
	return g.Unenforced(), nil
}

// RemovePool removes the group of the pool at rel, which must hold no VM
// and no pool groups. A pool without a group is not an error; the root
// pool cannot be removed.
func (c *CgroupSet) RemovePool(rel string) error {
	if err := checkPoolRel(rel); err != nil {
		return err
	}
	if rel == "" {
		return errors.New("the root pool's cgroup cannot be removed")
	}
	g, err := c.H.Open(c.abs(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	kids, err := c.H.Children(c.abs(rel))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(kids) > 0 {
		return fmt.Errorf("pool cgroup %s still holds groups %v", rel, kids)
	}
	return g.Remove()
}

// vmGroups returns the paths relative to Base of every VM group in the
// tree, in breadth-first order, or only those of vm when it is not "".
func (c *CgroupSet) vmGroups(vm string) ([]string, error) {
	var out []string
	queue := []string{""}
	scanned := 0
	for len(queue) > 0 {
		rel := queue[0]
		queue = queue[1:]
		names, err := c.H.Children(c.abs(rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue // no base yet, or removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if scanned++; scanned > maxGroupsScanned {
				return nil, fmt.Errorf("cgroups below %s: more than %d groups", c.Base, maxGroupsScanned)
			}
			child := path.Join(rel, n)
			switch {
			case strings.HasPrefix(n, poolPrefix):
				queue = append(queue, child)
			case vm == "" || n == vm:
				out = append(out, child)
			}
		}
	}
	return out, nil
}

// OOMKills implements Cgroups, summed over the VM's groups.
func (c *CgroupSet) OOMKills(vm string) uint64 {
	rels, err := c.vmGroups(vm)
	if err != nil {
		return 0
	}
	var n uint64
	for _, rel := range rels {
		g, err := c.H.Open(c.abs(rel))
		if err != nil {
			continue
		}
		if st, err := g.Stats(); err == nil {
			n += st.OOMKills
		}
	}
	return n
}

// Release implements Cgroups: it kills and removes every group of the VM
// in the tree.
func (c *CgroupSet) Release(ctx context.Context, vm string) ([]int, error) {
	rels, err := c.vmGroups(vm)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, rel := range rels {
		g, err := c.H.Open(c.abs(rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return pids, err
		}
		p, _ := g.PIDs()
		pids = append(pids, p...)
		if err := g.Kill(ctx); err != nil {
			return pids, fmt.Errorf("kill: %w", err)
		}
		if err := g.Remove(); err != nil {
			return pids, err
		}
	}
	return pids, nil
}

// List implements Cgroups: the VMs with a group anywhere in the tree.
func (c *CgroupSet) List() ([]string, error) {
	rels, err := c.vmGroups("")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, rel := range rels {
		names = append(names, path.Base(rel))
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
