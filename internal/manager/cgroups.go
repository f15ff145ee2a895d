package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/bulwark-project/bulwark/internal/cgroup"
)

// CgroupSet keeps one cgroup per VM below Base in a host hierarchy
// (internal/cgroup), e.g. "bulwark/vm/web1".
type CgroupSet struct {
	H    *cgroup.Hierarchy
	Base string
}

func (c *CgroupSet) path(vm string) string { return path.Join(c.Base, vm) }

// Prepare implements Cgroups. The group is removed and made again so that
// its counters (OOM kills, pids.max hits) start from zero for this run.
func (c *CgroupSet) Prepare(ctx context.Context, vm string, memBytes int64, pidsMax int) (func(int) error, error) {
	if _, err := c.Release(ctx, vm); err != nil {
		return nil, err
	}
	g, err := c.H.Create(c.path(vm), cgroup.Limits{MemoryMax: memBytes, PidsMax: pidsMax})
	if err != nil {
		return nil, err
	}
	return g.Add, nil
}

// OOMKills implements Cgroups.
func (c *CgroupSet) OOMKills(vm string) uint64 {
	g, err := c.H.Open(c.path(vm))
	if err != nil {
		return 0
	}
	st, err := g.Stats()
	if err != nil {
		return 0
	}
	return st.OOMKills
}

// Release implements Cgroups.
func (c *CgroupSet) Release(ctx context.Context, vm string) ([]int, error) {
	g, err := c.H.Open(c.path(vm))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pids, _ := g.PIDs()
	if err := g.Kill(ctx); err != nil {
		return pids, fmt.Errorf("kill: %w", err)
	}
	if err := g.Remove(); err != nil {
		return pids, err
	}
	return pids, nil
}

// List implements Cgroups.
func (c *CgroupSet) List() ([]string, error) {
	names, err := c.H.Children(c.Base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return names, err
}
