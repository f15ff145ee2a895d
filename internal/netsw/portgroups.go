package netsw

import (
	"context"
	"fmt"
	"slices"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// SetVMPortGroups re-binds the security groups of a VM's ports (by NIC
// index) and installs the recompiled policy at once. It is atomic: if the
// new configuration does not compile, no port changes. NICs without a port
// (not on a network, or the VM not running) are skipped. Flows admitted
// under the old groups are re-checked on their next packet, like after any
// policy change, so a connection the new groups forbid is cut.
func (s *Switch) SetVMPortGroups(vmName string, groups map[int][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := map[*Port]*[]string{}
	for _, p := range s.byID {
		g, ok := groups[p.NIC]
		if p.Kind != VMPort || p.VM != vmName || !ok {
			continue
		}
		old[p] = p.groups.Load()
		ng := slices.Clone(g)
		p.groups.Store(&ng)
	}
	if len(old) == 0 {
		return nil
	}
	if err := s.recompileLocked(); err != nil {
		for p, g := range old {
			p.groups.Store(g)
		}
		return fmt.Errorf("vm %q: security groups: %w", vmName, err)
	}
	return nil
}

// SetNICGroups changes the security groups of a running VM's NICs: it
// checks that every group exists, calls persist (which writes the VM's new
// definition) and then re-binds the ports. All of it happens under the
// service's lock, so a group cannot be deleted between the check and the
// write (DeleteGroup looks for NICs in the stored definitions under the
// same lock). nics is the VM's complete new NIC list; errors naming a
// NIC's group are *vm.FieldError. If re-binding fails after persist, the
// error says so and the caller must restore the old definition.
func (s *Service) SetNICGroups(ctx context.Context, vmName string, nics []vm.NIC, persist func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	groups := map[int][]string{}
	for i, nic := range nics {
		if nic.Network == "" {
			continue
		}
		for j, g := range nic.Groups {
			if _, ok := s.groups[g]; !ok {
				return &vm.FieldError{Field: fmt.Sprintf("nics[%d].groups[%d]", i, j), Msg: fmt.Sprintf("security group %q does not exist", g)}
			}
		}
		groups[i] = nic.Groups
	}
	if err := persist(); err != nil {
		return err
	}
	return s.sw.SetVMPortGroups(vmName, groups)
}
