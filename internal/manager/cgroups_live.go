package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/bulwark-project/bulwark/internal/cgroup"
)

// ApplyVM updates a running VM's group: in place when it is already at
// rel, otherwise (its pool changed) by making the group at rel with l,
// moving every process of the VM's old groups into it and removing them.
// A VM without a group is left alone (it is not running). If a move fails
// half-way, the processes moved so far are put back and the new group is
// removed, so that the VM never runs outside a group with its controls.
func (c *CgroupSet) ApplyVM(ctx context.Context, vm, rel string, l cgroup.Limits) error {
	if err := checkVMRel(vm, rel); err != nil {
		return err
	}
	rels, err := c.vmGroups(vm)
	if err != nil {
		return err
	}
	if len(rels) == 0 {
		return nil
	}
	if len(rels) == 1 && rels[0] == rel {
		_, err := c.H.Apply(c.abs(rel), l)
		return err
	}
	ng, err := c.H.Create(c.abs(rel), l)
	if err != nil {
		return err
	}
	var moved []int
	var from *cgroup.Group
	undo := func(cause error) error {
		for _, pid := range moved {
			if from != nil {
				from.Add(pid)
			}
		}
		ng.Remove()
		return cause
	}
	for _, old := range rels {
		if old == rel {
			continue
		}
		g, err := c.H.Open(c.abs(old))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return undo(err)
		}
		from = g
		pids, err := g.PIDs()
		if err != nil {
			return undo(err)
		}
		for _, pid := range pids {
			if err := ng.Add(pid); err != nil {
				return undo(fmt.Errorf("move pid %d of vm %q to %s: %w", pid, vm, rel, err))
			}
			moved = append(moved, pid)
		}
		if left, _ := g.PIDs(); len(left) > 0 {
			return undo(fmt.Errorf("vm %q: %d processes appeared in %s while moving it", vm, len(left), old))
		}
		if err := g.Remove(); err != nil {
			return undo(err)
		}
	}
	return nil
}

// VMStats returns the usage counters of the VM's group (the first one
// found, wherever its pool put it); ok is false when it has none.
func (c *CgroupSet) VMStats(vm string) (cgroup.Stats, bool) {
	rels, err := c.vmGroups(vm)
	if err != nil || len(rels) == 0 {
		return cgroup.Stats{}, false
	}
	g, err := c.H.Open(c.abs(rels[0]))
	if err != nil {
		return cgroup.Stats{}, false
	}
	st, err := g.Stats()
	return st, err == nil
}
