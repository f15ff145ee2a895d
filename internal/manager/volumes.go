package manager

import (
	"context"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Volumes is what the manager needs from storage (internal/storage): disks
// that name a volume are checked when a VM is defined and opened, whole
// chain and headers verified, when it starts.
type Volumes interface {
	// CheckAttach says whether ref ("POOL/NAME") may be attached.
	CheckAttach(ref string, readOnly bool) error
	// OpenChain opens ref's chain, base first; the caller closes the files.
	OpenChain(ctx context.Context, ref string, readOnly bool) ([]storage.Layer, error)
}

// SetVolumes connects the manager to the storage service.
func (m *Manager) SetVolumes(v Volumes) { m.vols = v }

// CheckVolumes refuses a definition whose disks name volumes that do not
// exist or may not be attached as asked; errors are *vm.FieldError.
func (m *Manager) CheckVolumes(spec vm.Spec) error {
	for i, d := range spec.Disks {
		if d.Volume == "" {
			continue
		}
		field := fmt.Sprintf("disks[%d].volume", i)
		if m.vols == nil {
			return &vm.FieldError{Field: field, Msg: "no storage in this daemon"}
		}
		if err := m.vols.CheckAttach(d.Volume, d.ReadOnly); err != nil {
			return &vm.FieldError{Field: field, Msg: err.Error()}
		}
	}
	return nil
}

// openVolumes opens the chain of every disk on a volume, indexed like
// spec.Disks (nil for host-path disks). On error nothing stays open.
func (m *Manager) openVolumes(ctx context.Context, spec vm.Spec) ([][]hv.DiskFile, error) {
	var out [][]hv.DiskFile
	for i, d := range spec.Disks {
		if d.Volume == "" {
			continue
		}
		if err := m.CheckVolumes(vm.Spec{Disks: []vm.Disk{d}}); err != nil {
			closeVolumes(out)
			return nil, &vm.FieldError{Field: fmt.Sprintf("disks[%d].volume", i), Msg: err.(*vm.FieldError).Msg}
		}
		layers, err := m.vols.OpenChain(ctx, d.Volume, d.ReadOnly)
		if err != nil {
			closeVolumes(out)
			return nil, &vm.FieldError{Field: fmt.Sprintf("disks[%d].volume", i), Msg: "start refused: " + err.Error()}
		}
		for len(out) <= i {
			out = append(out, nil)
		}
		for _, l := range layers {
			out[i] = append(out[i], hv.DiskFile{File: l.File, Format: l.Format, ReadOnly: l.ReadOnly, MaxSize: l.MaxSize, SHA256: l.SHA256})
		}
	}
	return out, nil
}

func closeVolumes(vs [][]hv.DiskFile) {
	for _, chain := range vs {
		for _, l := range chain {
			l.File.Close()
		}
	}
}

// VolumeUsers returns the VM disks that name ref: a volume in a VM's
// definition is in use whether the VM runs or not (deleting it would
// break the VM's next start). It is the storage service's UsersFunc.
func (m *Manager) VolumeUsers(ctx context.Context, ref string) ([]storage.Use, error) {
	vms, err := m.store.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	var out []storage.Use
	for _, v := range vms {
		for i, d := range v.Spec.Disks {
			if d.Volume == ref {
				out = append(out, storage.Use{VM: v.Spec.Name, Disk: i, ReadOnly: d.ReadOnly})
			}
		}
	}
	return out, nil
}
