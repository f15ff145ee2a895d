package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// LiveGroups is implemented by a Network that can re-bind the security
// groups of a running VM's NICs (netsw.Service). persist writes the VM's
// new definition; it runs after the groups are checked and before the
// ports change, under the switch's configuration lock.
type LiveGroups interface {
	SetNICGroups(ctx context.Context, vmName string, nics []vm.NIC, persist func() error) error
}

// Authorize decides whether the caller may make a change, given the
// definition before and after it. Update calls it under the VM's
// operation lock, before validation (so errors about files reach only
// callers allowed to name them), and what it judges is what is written.
type Authorize func(old, new vm.Spec) error

// Update applies a partial change to a VM's definition and returns the VM
// afterwards with the list of fields that changed (empty: nothing to do,
// nothing written). A VM that is defined, stopped or crashed takes any
// change, validated as Create validates a new VM (files exist, NICs on
// existing networks and groups, free addresses); one with a hypervisor
// (starting, running, paused, stopping) takes only NIC security groups,
// which the switch applies at once, and refuses anything else with a
// *vm.ConflictError naming its state. Update holds the VM's operation lock,
// so it never interleaves with a start, stop or delete.
func (m *Manager) Update(ctx context.Context, name string, p vm.Patch, authorize Authorize) (*vm.VM, []vm.Change, error) {
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	spec, err := p.Apply(v.Spec)
	if err != nil {
		return nil, nil, err
	}
	if spec.Image != v.Spec.Image && spec.Image != "" {
		if m.imageRetarget == nil {
			return nil, nil, &vm.FieldError{Field: "image", Msg: "this daemon has no image registry"}
		}
		if err := m.imageRetarget(v.Spec, &spec); err != nil {
			return nil, nil, err
		}
	}
	changes := vm.Diff(v.Spec, spec)
	if len(changes) == 0 {
		return v, nil, nil
	}
	live := v.State.Active()
	if live {
		for _, c := range changes {
			if !vm.LiveChange(c) {
				return nil, nil, fmt.Errorf("%w: %s cannot change while the VM has a hypervisor (only pool, resources, nics[N].groups and nics[N].rate can); stop it first",
					&vm.ConflictError{Op: vm.OpEdit, State: v.State}, c.Field)
			}
		}
	}
	// Privileges before validation, as Create does: a caller without
	// VM.HostPaths must not learn which host files exist from the errors.
	if authorize != nil {
		if err := authorize(v.Spec, spec); err != nil {
			return nil, nil, err
		}
	}
	if live {
		if err = spec.ValidateNICs(); err == nil {
			err = spec.ValidateResources()
		}
	} else if err = spec.Validate(os.Stat); err == nil {
		// Disks on storage volumes: the volume exists and may be attached
		// so (as Create checks).
		err = m.CheckVolumes(spec)
	}
	if err != nil {
		return nil, nil, err
	}
	if live {
		err = m.updateLive(ctx, v, spec)
	} else {
		changes, err = m.updateStopped(ctx, v, spec)
	}
	if err != nil {
		return nil, nil, err
	}
	m.log.Info("vm definition changed", "vm", name, "state", v.State, "changes", vm.FormatChanges(changes))
	nv, err := m.store.GetVM(ctx, name)
	return nv, changes, err
}

// updateStopped checks NICs against networks and groups (filling in
// addresses of new NICs) and writes the definition. It returns the changes
// again, as address assignment may add some.
func (m *Manager) updateStopped(ctx context.Context, v *vm.VM, spec vm.Spec) ([]vm.Change, error) {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if err := m.prepareNICs(ctx, &spec); err != nil {
		return nil, err
	}
	if err := m.store.SetSpec(ctx, v.Spec.Name, spec); err != nil {
		return nil, err
	}
	return vm.Diff(v.Spec, spec), nil
}

// LiveResources applies a running VM's new pool and resources: it admits
// the new claim (refusing a move to a pool without room) and writes the
// VM's cgroup. It does not persist the definition.
type LiveResources func(ctx context.Context, v *vm.VM, spec vm.Spec) error

// SetLiveResources installs how pool and resource changes reach a running
// VM (the daemon: resource pools and cgroups).
func (m *Manager) SetLiveResources(f LiveResources) { m.liveResources = f }

// LiveRates is implemented by a Network that can change the rate limits of
// a running VM's NICs (netsw.Service).
type LiveRates interface {
	SetNICRates(ctx context.Context, vmName string, nics []vm.NIC) error
}

// updateLive applies a running VM's changes: pool and resources first
// (admission may refuse), then NIC rate limits, then security groups (the
// switch re-binds the ports and the definition is written under its
// lock). If a later step fails, the earlier ones are put back, so that the
// store, the cgroups and the switch agree.
func (m *Manager) updateLive(ctx context.Context, v *vm.VM, spec vm.Spec) error {
	var res, rates, groups bool
	for _, c := range vm.Diff(v.Spec, spec) {
		switch {
		case vm.ResourceChange(c):
			res = true
		case strings.Contains(c.Field, "].rate"):
			rates = true
		default:
			groups = true
		}
	}
	if res {
		if m.liveResources == nil {
			return errors.New("this daemon cannot change a running VM's pool or resources")
		}
		if err := m.liveResources(ctx, v, spec); err != nil {
			return err
		}
	}
	undo := func() {
		if res {
			nv := *v
			nv.Spec = spec
			if err := m.liveResources(context.Background(), &nv, v.Spec); err != nil {
				m.log.Error("restoring a running VM's resources after a failed change", "vm", v.Spec.Name, "err", err)
			}
		}
	}
	if rates {
		lr, ok := m.net.(LiveRates)
		if !ok || m.net == nil {
			undo()
			return errors.New("this daemon's switch cannot change rate limits of a running VM")
		}
		if err := lr.SetNICRates(ctx, v.Spec.Name, spec.NICs); err != nil {
			undo()
			return err
		}
	}
	if !groups {
		if err := m.store.SetSpec(ctx, v.Spec.Name, spec); err != nil {
			undo()
			return err
		}
		return nil
	}
	err := m.updateGroups(ctx, v, spec)
	if err != nil {
		undo()
	}
	return err
}

// updateGroups writes a running VM's new security groups and re-binds its
// ports. If the switch refuses after the write, the old definition is put
// back so that the store and the switch agree.
func (m *Manager) updateGroups(ctx context.Context, v *vm.VM, spec vm.Spec) error {
	lg, ok := m.net.(LiveGroups)
	if !ok || m.net == nil {
		return errors.New("this daemon's switch cannot change security groups of a running VM")
	}
	persisted := false
	err := lg.SetNICGroups(ctx, v.Spec.Name, spec.NICs, func() error {
		if err := m.store.SetSpec(ctx, v.Spec.Name, spec); err != nil {
			return err
		}
		persisted = true
		return nil
	})
	if err != nil && persisted {
		if rerr := m.store.SetSpec(context.Background(), v.Spec.Name, v.Spec); rerr != nil {
			m.log.Error("restoring a VM's definition after the switch refused its groups", "vm", v.Spec.Name, "err", rerr)
		}
	}
	return err
}

// SetImageRetarget installs how a change of a VM's image is resolved:
// kernel, initrd and command line from the new image (see Patch.Image).
func (m *Manager) SetImageRetarget(f func(old vm.Spec, new *vm.Spec) error) { m.imageRetarget = f }
