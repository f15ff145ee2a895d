package api

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// VMUpdate is the answer to PATCH /api/v1/vms/{name}: the VM after the
// change and what changed (empty when the patch changed nothing).
type VMUpdate struct {
	VM      *vm.VM      `json:"vm"`
	Changes []vm.Change `json:"changes"`
}

// updateVM changes a VM's definition (vm.Patch: optional fields, lists
// replaced whole). The route needs VM.Config on the VM; what the change
// newly names needs what creating it would: VM.HostPaths for host paths,
// Network.Attach for networks and for every security group a NIC joins or
// leaves. The manager judges the change under the VM's operation lock and
// refuses anything but NIC groups while the VM runs.
func (s *Server) updateVM(w http.ResponseWriter, r *http.Request) error {
	var p vm.Patch
	if err := decodeStrict(r.Body, &p); err != nil {
		return err
	}
	name := r.PathValue("name")
	v, changes, err := s.mgr.Update(r.Context(), name, p, func(old, new vm.Spec) error {
		return s.authorizeChange(r, old, new)
	})
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []vm.Change{}
	}
	auditTarget(r, "/vms/"+name, "changed VM %s: %s", name, vm.FormatChanges(changes))
	for _, c := range changes {
		if c.Field == "pool" {
			if err := s.refreshInherit(r.Context(), actor(r)); err != nil {
				s.log.Error("resource pools: permission inheritance not updated", "vm", name, "err", err)
			}
			break
		}
	}
	return writeJSON(w, http.StatusOK, VMUpdate{VM: v, Changes: changes})
}

// authorizeChange runs create's privilege checks on what a change newly
// names, so that an unchanged host path an administrator put in a VM does
// not stop a VM.Config user from changing its memory, and a change cannot
// name what its caller could not have named at creation.
func (s *Server) authorizeChange(r *http.Request, old, new vm.Spec) error {
	if new.Image != old.Image && new.Image != "" {
		if err := s.callerCheck(r, PrivDatastoreAudit, "/images/"+new.Image)(); err != nil {
			return &httpError{code: http.StatusForbidden, field: "image", msg: fmt.Sprintf("image %s: needs %s on /images/%s: %v", new.Image, PrivDatastoreAudit, new.Image, err)}
		}
	}
	if old.Image != "" && new.Image == old.Image && (new.Kernel != old.Kernel || new.Initrd != old.Initrd) {
		// Checked again at every start (imagestore.Store.CheckBoot).
		return badRequest("kernel", "VM %s boots image %s's kernel and initrd; they cannot be changed on their own", old.Name, old.Image)
	}
	if err := s.checkHostPaths(r, newlyNamed(old, new)); err != nil {
		return err
	}
	if err := s.checkAttach(r, attachChanges(old, new)); err != nil {
		return err
	}
	if old.Pool != new.Pool || !reflect.DeepEqual(old.Resources, new.Resources) {
		return s.checkPool(r, &old, new)
	}
	return nil
}

// newlyNamed returns new with every kernel, initrd and disk that old
// already had blanked (a disk counts as already there only if old had the
// same disk, read-only flag included, at any position), keeping positions
// so that messages name the right field.
func newlyNamed(old, new vm.Spec) vm.Spec {
	out := vm.Spec{Name: new.Name}
	if new.Kernel != old.Kernel {
		out.Kernel = new.Kernel
	}
	if new.Initrd != old.Initrd {
		out.Initrd = new.Initrd
	}
	out.Disks = make([]vm.Disk, len(new.Disks))
	for i, d := range new.Disks {
		if !slices.ContainsFunc(old.Disks, func(o vm.Disk) bool { return reflect.DeepEqual(o, d) }) {
			out.Disks[i] = d
		}
	}
	return out
}

// attachChanges returns, per NIC of new (same positions), the network if
// the NIC is new or moved (NICs are matched by MAC) and the security groups
// it joins or leaves (all of them if only their order changed). Leaving a
// group can open traffic (a drop rule naming it as remote no longer
// matches), so it needs Network.Attach too.
func attachChanges(old, new vm.Spec) vm.Spec {
	out := vm.Spec{Name: new.Name, NICs: make([]vm.NIC, len(new.NICs))}
	for i, n := range new.NICs {
		j := slices.IndexFunc(old.NICs, func(o vm.NIC) bool { return o.MAC == n.MAC })
		if j < 0 || old.NICs[j].Network != n.Network {
			out.NICs[i] = vm.NIC{Network: n.Network, Groups: n.Groups}
			continue
		}
		was := old.NICs[j].Groups
		if slices.Equal(was, n.Groups) {
			continue
		}
		if len(was) == len(n.Groups) && !slices.ContainsFunc(was, func(g string) bool { return !slices.Contains(n.Groups, g) }) {
			// The same groups in another order: the first matching rule
			// decides, so the order is part of what the NIC may reach.
			out.NICs[i].Groups = n.Groups
			continue
		}
		for _, g := range n.Groups {
			if !slices.Contains(was, g) {
				out.NICs[i].Groups = append(out.NICs[i].Groups, g)
			}
		}
		for _, g := range was {
			if !slices.Contains(n.Groups, g) {
				out.NICs[i].Groups = append(out.NICs[i].Groups, g)
			}
		}
	}
	return out
}
