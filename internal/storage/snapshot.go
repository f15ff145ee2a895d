package storage

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// Snapshots freeze a VM's disks: each read-write volume disk's current
// top becomes a read-only layer (renamed to a volume of its own) and a new
// empty qcow2 overlay on it takes the disk's volume name, so the VM's
// definition does not change. The frozen layer is never written again: it
// is the base of the overlay (a volume with clones is read-only), and its
// SHA-256, computed by the daemon from the file, is in the snapshot
// record, with those of every layer below it.
//
// A snapshot is a record (store kind "snapshot", name "VM/SNAP"): the VM's
// definition at the time and, per disk, the frozen chain with digests.
// Revert, restore and delete work from that record, never from headers.

// kindSnapshot is the store kind of snapshot records, named "VM/SNAP".
const kindSnapshot = "snapshot"

// MaxSnapshotsPerVM bounds one VM's snapshots: each one adds a layer to
// the chain of every disk, and chains are bounded (maxChain).
const MaxSnapshotsPerVM = maxChain - 2

// Snapshot is one snapshot of a VM, as recorded.
type Snapshot struct {
	VM      string    `json:"vm"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Running is true when the snapshot was taken with the guest running:
	// the disks are crash-consistent (as after a power cut), not clean.
	Running bool `json:"running"`
	// Spec is the VM's definition when the snapshot was taken.
	Spec  vm.Spec        `json:"spec"`
	Disks []SnapshotDisk `json:"disks"`
}

// SnapshotDisk is one disk of the VM at the time of a snapshot.
type SnapshotDisk struct {
	Disk int `json:"disk"` // index in Spec.Disks
	// Volume is the disk's volume (POOL/NAME); "" for a host path.
	Volume string `json:"volume,omitempty"`
	// ReadOnly disks are recorded as they are, not frozen: the guest
	// cannot change them, and a base with clones stays unchanged anyway.
	ReadOnly bool `json:"read_only,omitempty"`
	// Layers is the frozen chain, the frozen layer first, its bases
	// after it; empty for a read-only disk.
	Layers []LayerDigest `json:"layers,omitempty"`
}

// Frozen is the volume (POOL/NAME) that holds the disk's state at the
// snapshot, "" for a disk that was not frozen.
func (d SnapshotDisk) Frozen() string {
	if len(d.Layers) == 0 {
		return ""
	}
	return d.Layers[0].Volume
}

// LayerDigest is one read-only layer and the SHA-256 of its file.
type LayerDigest struct {
	Volume string `json:"volume"` // POOL/NAME
	SHA256 string `json:"sha256"`
}

// Ref returns "VM/SNAP", the record's name.
func (s Snapshot) Ref() string { return s.VM + "/" + s.Name }

// ValidateSnapshotName checks a snapshot name: VM-name rules.
func ValidateSnapshotName(name string) error { return ValidateName("snapshot", name) }

// SnapshotPlan says, for each disk of spec, whether a snapshot freezes it
// (the indexes returned), or refuses the VM: a read-write disk on a host
// path cannot be frozen (Bulwark does not own the file), so a snapshot of
// that VM would not capture its state.
func SnapshotPlan(spec vm.Spec) ([]int, error) {
	var freeze []int
	for i, d := range spec.Disks {
		switch {
		case d.ReadOnly:
		case d.Volume == "":
			return nil, fmt.Errorf("%w: vm %s: snapshot refused: disks[%d] is the host path %s attached read-write, which Bulwark cannot freeze; only disks on storage volumes are snapshotted (move it to a volume, or attach it read_only)", ErrConflict, spec.Name, i, d.Path)
		default:
			freeze = append(freeze, i)
		}
	}
	if len(freeze) == 0 {
		return nil, fmt.Errorf("%w: vm %s: snapshot refused: it has no read-write disk on a storage volume, so there is nothing to freeze", ErrConflict, spec.Name)
	}
	return freeze, nil
}

// RefuseVMDelete says whether a VM with these snapshots may be deleted:
// only with none. A snapshot outliving its VM would keep layers that no
// VM definition names, and a later VM given the same name would inherit
// the records (a revert could put the old VM's data on the new VM's disks
// of the same volume names). Deleting the snapshots is the explicit step.
func RefuseVMDelete(vmName string, snaps []Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	names := make([]string, len(snaps))
	for i, sn := range snaps {
		names[i] = sn.Name
	}
	return fmt.Errorf("%w: vm %s: delete refused: it has %d snapshot(s) (%s), which would outlive it; delete them first (bulwark vm snapshot delete %s SNAP, newest first)", ErrConflict, vmName, len(snaps), strings.Join(names, ", "), vmName)
}

// frozenName is the volume name a disk's frozen layer gets: readable
// ("web-snap-before-upgrade") when that is a valid, free name, else
// suffix (random hex) after a cut of the volume's name.
func frozenName(vol, snap, suffix string, taken func(string) bool) string {
	n := vol + "-snap-" + snap
	if ValidateName("volume", n) == nil && !taken(n) {
		return n
	}
	if len(vol) > 40 {
		vol = strings.TrimRight(vol[:40], "-")
	}
	return vol + "-snap-" + suffix
}

// DeleteAction is what deleting a snapshot does to one frozen layer.
type DeleteAction struct {
	Layer string `json:"layer"` // POOL/NAME
	// Merge is the VM's current top (POOL/NAME) that is folded into the
	// layer (the layer then takes the top's name); "" when the layer is
	// simply removed.
	Merge string `json:"merge,omitempty"`
}

// PlanSnapshotDelete decides how a snapshot's frozen layers go away, from
// the records alone. A layer nothing is based on is removed. A layer whose
// only dependant is the disk's current top (the VM's newest snapshot) is
// merged: the top's changes are written into it and it becomes the top;
// that needs the VM stopped (live says it is not). Any other dependant (a
// later snapshot's layer, a clone, a VM restored from the snapshot) keeps
// the layer, and the delete is refused naming it: only the newest
// snapshot, or one nothing depends on, can be deleted.
func PlanSnapshotDelete(s Snapshot, tops map[int]string, vols []Volume, live bool) ([]DeleteAction, error) {
	var out []DeleteAction
	for _, d := range s.Disks {
		f := d.Frozen()
		if f == "" {
			continue
		}
		pool, name, err := ParseRef(f)
		if err != nil {
			return nil, err
		}
		var deps []string
		for _, v := range vols {
			if v.Pool == pool && v.Base == name {
				deps = append(deps, v.Ref())
			}
		}
		sort.Strings(deps)
		switch {
		case len(deps) == 0:
			out = append(out, DeleteAction{Layer: f})
		case len(deps) == 1 && deps[0] == tops[d.Disk]:
			if live {
				return nil, fmt.Errorf("%w: snapshot %s: delete refused while the VM runs: disks[%d]'s current state (%s) is an overlay on the snapshot's layer %s, which must be merged into it; stop the VM first", ErrConflict, s.Ref(), d.Disk, deps[0], f)
			}
			out = append(out, DeleteAction{Layer: f, Merge: deps[0]})
		default:
			return nil, fmt.Errorf("%w: snapshot %s: delete refused: its layer %s of disks[%d] is the base of %s (a later snapshot's layer, a clone or a VM restored from it); only the newest snapshot, or one nothing depends on, can be deleted: delete those first", ErrConflict, s.Ref(), f, d.Disk, strings.Join(deps, ", "))
		}
	}
	return out, nil
}

// DigestMismatch is one layer whose file no longer has its recorded digest.
type DigestMismatch struct {
	Volume   string `json:"volume"`
	Recorded string `json:"recorded"`
	Actual   string `json:"actual"`
	Problem  string `json:"problem,omitempty"` // the file could not be read
}

func (m DigestMismatch) String() string {
	if m.Problem != "" {
		return fmt.Sprintf("layer %s: %s", m.Volume, m.Problem)
	}
	return fmt.Sprintf("layer %s: SHA-256 is %s, the snapshot recorded %s", m.Volume, m.Actual, m.Recorded)
}

// VerifyReport is the outcome of checking a snapshot's layers.
type VerifyReport struct {
	Snapshot   string           `json:"snapshot"` // VM/SNAP
	Layers     []LayerDigest    `json:"layers"`   // as recorded
	Mismatches []DigestMismatch `json:"mismatches,omitempty"`
	OK         bool             `json:"ok"`
}

// Err is nil for a clean report, else an ErrInvalid naming every layer
// that differs with both digests.
func (r VerifyReport) Err() error {
	if r.OK {
		return nil
	}
	var parts []string
	for _, m := range r.Mismatches {
		parts = append(parts, m.String())
	}
	return fmt.Errorf("%w: snapshot %s failed verification: %s", ErrTampered, r.Snapshot, strings.Join(parts, "; "))
}

// ErrTampered is wrapped by a verification failure: a frozen layer's file
// no longer has the digest the snapshot recorded.
var ErrTampered = fmt.Errorf("%w: digest mismatch", ErrConflict)
