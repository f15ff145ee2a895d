package manager

import (
	"context"
	"errors"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// SetDiskLimits applies disk bandwidth and IOPS limits to a running VM's
// hypervisor (all its disks together; 0 lifts a limit). It neither
// persists the definition nor takes the VM's operation lock: it is meant
// for the LiveResources hook, which Update calls under that lock. It
// fails with ErrNotRunning when the VM has no live hypervisor.
func (m *Manager) SetDiskLimits(ctx context.Context, name string, d vm.DiskResources) error {
	e := m.entry(name)
	e.wmu.Lock()
	inst := e.inst
	e.wmu.Unlock()
	if inst == nil {
		return ErrNotRunning
	}
	dt, ok := inst.(hv.DiskThrottler)
	if !ok {
		return errors.New("this hypervisor backend cannot change disk limits of a running VM")
	}
	if err := dt.SetDiskLimits(ctx, d); err != nil {
		return err
	}
	m.log.Info("vm disk limits changed", "vm", name, "read_bps", d.ReadBPS, "write_bps", d.WriteBPS,
		"read_iops", d.ReadIOPS, "write_iops", d.WriteIOPS)
	return nil
}
