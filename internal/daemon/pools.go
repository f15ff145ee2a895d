package daemon

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/cgroup"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/poolsvc"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Defaults of the host slice kept out of the root pool for Bulwark itself
// (daemon, switch, monitor) and the host's own processes.
const (
	DefaultReservedCPUMilli  = 500
	DefaultReservedMemoryMiB = 1024
)

// hostCapacity is the root pool's capacity: the CPUs this process may run
// on × 1000 and the host's memory, less the reserved slice.
func hostCapacity(cfg Config) (pool.Capacity, error) {
	resCPU, resMem := cfg.ReservedCPUMilli, cfg.ReservedMemoryMiB
	if resCPU == 0 {
		resCPU = DefaultReservedCPUMilli
	}
	if resMem == 0 {
		resMem = DefaultReservedMemoryMiB
	}
	memMiB, err := memTotalMiB("/proc/meminfo")
	if err != nil {
		return pool.Capacity{}, err
	}
	c := pool.Capacity{CPUMilli: int64(runtime.NumCPU())*1000 - resCPU, MemoryMiB: memMiB - resMem}
	if c.CPUMilli <= 0 || c.MemoryMiB <= 0 {
		return pool.Capacity{}, fmt.Errorf("resource pools: the reserved slice (%dm CPU, %d MiB) leaves nothing of this host (%d CPUs, %d MiB)",
			resCPU, resMem, runtime.NumCPU(), memMiB)
	}
	return c, nil
}

// memTotalMiB reads MemTotal from a meminfo file (kernel-provided).
func memTotalMiB(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for lines := 0; sc.Scan() && lines < 256; lines++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "MemTotal:" && fields[2] == "kB" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("%s: MemTotal %q", path, fields[1])
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("%s: no MemTotal line", path)
}

// limitsOf maps a pool plan's group to the cgroup controls. Disk bytes/s
// and IOPS of a VM are enforced by QEMU's throttle group (exact per VM
// disk, whatever the host's block devices), not here.
func limitsOf(g pool.Group) cgroup.Limits {
	return cgroup.Limits{
		MemoryMax:   g.Memory.MaxMiB << 20,
		MemoryMin:   g.Memory.MinMiB << 20,
		MemoryLow:   g.Memory.LowMiB << 20,
		CPUWeight:   int(g.CPU.Weight),
		CPUShares:   int(g.CPU.Shares),
		CPUMaxMilli: g.CPU.MaxMilli,
		IOWeight:    int(g.IO.Weight),
		BlkioWeight: int(g.IO.BlkioWeight),
	}
}

// pools wires resource pools into the manager: admission at every start,
// live changes of a running VM's pool and resources, and reconciliation
// of every group after a pool changes.
type pools struct {
	svc  *poolsvc.Service
	cg   *manager.CgroupSet // nil without cgroups
	mgr  *manager.Manager
	pids int
	log  *slog.Logger
}

func startPools(ctx context.Context, cfg Config, st *store.Store, mgr *manager.Manager, cg *manager.CgroupSet, log *slog.Logger) (*pools, error) {
	capacity, err := hostCapacity(cfg)
	if err != nil {
		return nil, err
	}
	overhead := int64(cfg.VMMemOverheadMiB)
	if overhead == 0 {
		overhead = 256
	}
	svc, err := poolsvc.New(ctx, st, mgr, capacity, overhead, log)
	if err != nil {
		return nil, err
	}
	p := &pools{svc: svc, cg: cg, mgr: mgr, pids: cfg.VMPidsMax, log: log}
	log.Info("resource pools", "capacity_cpu_millicores", capacity.CPUMilli, "capacity_memory_mib", capacity.MemoryMiB,
		"pools", len(svc.Tree().Pools()))
	mgr.SetAdmission(p.admit)
	mgr.SetLiveResources(p.live)
	return p, nil
}

// admit is the manager's admission: the pool arithmetic decides, and the
// other running VMs' groups are brought to the new plan (CPU and I/O
// weights are relative among siblings).
func (p *pools) admit(ctx context.Context, spec vm.Spec) (manager.Placement, func(), error) {
	pl, release, err := p.svc.Admit(ctx, spec)
	if err != nil {
		return manager.Placement{}, nil, err
	}
	out := manager.Placement{Rel: pl.VM.Path, Limits: limitsOf(pl.VM)}
	for _, g := range pl.Pools {
		out.Pools = append(out.Pools, manager.GroupLimits{Rel: g.Path, Limits: limitsOf(g)})
	}
	if p.cg != nil {
		p.applyVMs(ctx, pl.Others)
	}
	return out, release, nil
}

func (p *pools) applyVMs(ctx context.Context, groups []pool.Group) {
	for _, g := range groups {
		l := limitsOf(g)
		l.PidsMax = p.pidsMax()
		if err := p.cg.ApplyVM(ctx, g.VM, g.Path, l); err != nil {
			p.log.Error("resource pools: a running VM's group could not follow the plan", "vm", g.VM, "group", g.Path, "err", err)
		}
	}
}

func (p *pools) pidsMax() int {
	if p.pids == 0 {
		return 128
	}
	return p.pids
}

// live applies a running VM's new pool and resources: the new claim must
// fit (else the change is refused and nothing moves), then the pool
// groups, the other VMs' and the VM's own group follow the plan.
func (p *pools) live(ctx context.Context, v *vm.VM, spec vm.Spec) error {
	plan, err := p.svc.Plan(ctx, &spec)
	if err != nil {
		return err
	}
	if err := p.apply(ctx, plan); err != nil {
		return err
	}
	// Disk bytes/s and IOPS: QEMU's throttle group, through QMP.
	var oldDisk, newDisk vm.DiskResources
	if v.Spec.Resources != nil {
		oldDisk = v.Spec.Resources.Disk
	}
	if spec.Resources != nil {
		newDisk = spec.Resources.Disk
	}
	oldDisk.Shares, newDisk.Shares = "", "" // weights are the cgroup's
	if oldDisk != newDisk && p.mgr != nil {
		if err := p.mgr.SetDiskLimits(ctx, spec.Name, newDisk); err != nil {
			// Put the cgroups back to the plan of the old definition.
			if plan, perr := p.svc.Plan(ctx, &v.Spec); perr == nil {
				if aerr := p.apply(ctx, plan); aerr != nil {
					p.log.Error("resource pools: restoring the cgroups after refused disk limits", "vm", spec.Name, "err", aerr)
				}
			}
			return fmt.Errorf("disk limits: %w", err)
		}
	}
	return nil
}

// Reconcile writes the current plan to every pool group and every running
// VM's group (after a pool was created, changed or deleted).
func (p *pools) Reconcile(ctx context.Context) error {
	plan, err := p.svc.Plan(ctx, nil)
	if err != nil {
		return err
	}
	return p.apply(ctx, plan)
}

func (p *pools) apply(ctx context.Context, plan *pool.Plan) error {
	if p.cg == nil {
		return nil
	}
	for _, g := range plan.Pools {
		if _, err := p.cg.ApplyPool(g.Path, limitsOf(g)); err != nil {
			return fmt.Errorf("cgroup of pool %s: %w", g.Pool, err)
		}
	}
	for _, g := range plan.VMs {
		l := limitsOf(g)
		l.PidsMax = p.pidsMax()
		if err := p.cg.ApplyVM(ctx, g.VM, g.Path, l); err != nil {
			return fmt.Errorf("cgroup of vm %s: %w", g.VM, err)
		}
	}
	return nil
}
