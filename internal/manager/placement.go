package manager

import (
	"context"

	"github.com/bulwark-project/bulwark/internal/cgroup"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Placement is where and how a VM runs: its cgroup below the VM base and
// its controls, and the pool groups above it (parents first), written
// before the VM's own.
type Placement struct {
	Rel    string
	Limits cgroup.Limits
	Pools  []GroupLimits
}

// GroupLimits is one pool group's controls.
type GroupLimits struct {
	Rel    string
	Limits cgroup.Limits
}

// Admission decides a VM start against the resource pools. Admitted, the
// VM's reservations are held for it until release is called (Start calls
// it once the VM's state records it running, or the start failed).
type Admission func(ctx context.Context, spec vm.Spec) (pl Placement, release func(), err error)

// SetAdmission installs resource-pool admission for VM starts.
func (m *Manager) SetAdmission(a Admission) { m.admission = a }
