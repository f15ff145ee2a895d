package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Snapshots is what VM snapshots need from storage (*storage.Service):
// freezing a disk's top into a layer, digests, revert, delete and the
// snapshot records.
type Snapshots interface {
	FreezeDisk(ctx context.Context, ref, snap string) (*storage.Freeze, error)
	Unfreeze(ctx context.Context, fz *storage.Freeze) error
	OpenTop(ctx context.Context, ref string) (storage.Layer, error)
	ChainDigests(ctx context.Context, ref string, known map[string]string) ([]storage.LayerDigest, error)
	VerifySnapshot(ctx context.Context, snap *storage.Snapshot) storage.VerifyReport
	RevertDisk(ctx context.Context, top, layer string) error
	DeleteSnapshotLayers(ctx context.Context, plan []storage.DeleteAction) error
	Clone(ctx context.Context, pool, base, name string) (*storage.Volume, error)
	Delete(ctx context.Context, pool, name string) error
	Volumes() []storage.Volume
	SaveSnapshot(ctx context.Context, snap *storage.Snapshot) error
	Snapshots(ctx context.Context, vmName string) ([]storage.Snapshot, error)
	GetSnapshot(ctx context.Context, vmName, name string) (*storage.Snapshot, error)
	DropSnapshot(ctx context.Context, snap *storage.Snapshot) error
}

// liveSnapshotter is a running hypervisor that can switch its disks to
// new overlays without stopping the guest (qemu: blockdev-snapshot).
type liveSnapshotter interface {
	SnapshotDisks(ctx context.Context, tops map[int]hv.DiskFile) error
}

// Operations on snapshots, for *vm.ConflictError.
const (
	OpSnapshot vm.Op = "snapshot"
	OpRevert   vm.Op = "revert to a snapshot"
)

// snapshotTimeout bounds the hypervisor's part of a live snapshot.
const snapshotTimeout = 30 * time.Second

func (m *Manager) snapshots() (Snapshots, error) {
	s, ok := m.vols.(Snapshots)
	if !ok || s == nil {
		return nil, fmt.Errorf("%w: no storage in this daemon", storage.ErrUnavailable)
	}
	return s, nil
}

// stoppedState says whether a VM has no hypervisor.
func stoppedState(s vm.State) bool { return s == vm.Defined || s == vm.Stopped || s == vm.Crashed }

// CreateSnapshot freezes every read-write volume disk of a VM (read-only
// disks are recorded as they are) and records the snapshot with the
// VM's definition and the SHA-256 of every layer. A stopped VM's disks
// are frozen in storage alone; a running or paused VM's hypervisor is
// switched to the new overlays in one transaction and the guest keeps
// running (its disks are then crash-consistent).
func (m *Manager) CreateSnapshot(ctx context.Context, vmName, snap string) (*storage.Snapshot, error) {
	ss, err := m.snapshots()
	if err != nil {
		return nil, err
	}
	if err := storage.ValidateSnapshotName(snap); err != nil {
		return nil, err
	}
	e := m.entry(vmName)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, err := m.store.GetVM(ctx, vmName)
	if err != nil {
		return nil, err
	}
	live := v.State == vm.Running || v.State == vm.Paused
	if !live && !stoppedState(v.State) {
		return nil, &vm.ConflictError{Op: OpSnapshot, State: v.State}
	}
	freeze, err := storage.SnapshotPlan(v.Spec)
	if err != nil {
		return nil, err
	}
	existing, err := ss.Snapshots(ctx, vmName)
	if err != nil {
		return nil, err
	}
	known := map[string]string{}
	for _, s := range existing {
		if s.Name == snap {
			return nil, fmt.Errorf("%w: snapshot %s/%s already exists", storage.ErrConflict, vmName, snap)
		}
		for _, d := range s.Disks {
			for _, l := range d.Layers {
				known[l.Volume] = l.SHA256
			}
		}
	}
	if len(existing) >= storage.MaxSnapshotsPerVM {
		return nil, fmt.Errorf("%w: vm %s has %d snapshots, the most it may have; delete one first", storage.ErrConflict, vmName, len(existing))
	}
	var inst hv.Instance
	if live {
		e.wmu.Lock()
		inst = e.inst
		e.wmu.Unlock()
		if _, ok := inst.(liveSnapshotter); !ok {
			return nil, fmt.Errorf("vm %s: this hypervisor cannot snapshot a running VM; stop it first", vmName)
		}
	}
	var fzs []*storage.Freeze
	undo := func() {
		for j := len(fzs) - 1; j >= 0; j-- {
			if err := ss.Unfreeze(context.Background(), fzs[j]); err != nil {
				m.log.Error("snapshot: undoing a frozen disk failed; the volume needs repair by hand", "vm", vmName, "volume", fzs[j].Top.Ref(), "err", err)
			}
		}
	}
	for _, i := range freeze {
		fz, err := ss.FreezeDisk(ctx, v.Spec.Disks[i].Volume, snap)
		if err != nil {
			undo()
			return nil, fmt.Errorf("vm %s: snapshot %s: disks[%d]: %w", vmName, snap, i, err)
		}
		fzs = append(fzs, fz)
	}
	if live {
		if err := m.switchLive(ctx, ss, inst.(liveSnapshotter), freeze, fzs); err != nil {
			undo()
			return nil, fmt.Errorf("vm %s: snapshot %s: %w", vmName, snap, err)
		}
	}
	rec := &storage.Snapshot{VM: vmName, Name: snap, Created: time.Now().UTC(), Running: live, Spec: v.Spec}
	k := 0
	for i, d := range v.Spec.Disks {
		sd := storage.SnapshotDisk{Disk: i, Volume: d.Volume, ReadOnly: d.ReadOnly}
		if k < len(freeze) && freeze[k] == i {
			// The frozen layer is written by nobody now: hash it.
			sd.Layers, err = ss.ChainDigests(ctx, fzs[k].Layer.Ref(), known)
			if err != nil {
				return nil, m.snapshotFailed(vmName, snap, live, fzs, err)
			}
			k++
		}
		rec.Disks = append(rec.Disks, sd)
	}
	if err := ss.SaveSnapshot(ctx, rec); err != nil {
		return nil, m.snapshotFailed(vmName, snap, live, fzs, err)
	}
	m.log.Info("vm snapshot taken", "vm", vmName, "snapshot", snap, "running", live, "disks", len(fzs))
	return rec, nil
}

// snapshotFailed handles an error after the disks were frozen. A stopped
// VM's disks are unfrozen; a running VM already writes to the new tops,
// so its layers stay (as volumes, without a snapshot record) and the
// error says so.
func (m *Manager) snapshotFailed(vmName, snap string, live bool, fzs []*storage.Freeze, err error) error {
	if live {
		var layers []string
		for _, fz := range fzs {
			layers = append(layers, fz.Layer.Ref())
		}
		m.log.Error("snapshot: frozen layers left without a record", "vm", vmName, "snapshot", snap, "layers", layers, "err", err)
		return fmt.Errorf("vm %s: snapshot %s: %w (the running VM already uses new overlays; layers %v stay as volumes)", vmName, snap, err, layers)
	}
	ss, _ := m.snapshots()
	for j := len(fzs) - 1; j >= 0; j-- {
		if uerr := ss.Unfreeze(context.Background(), fzs[j]); uerr != nil {
			m.log.Error("snapshot: undoing a frozen disk failed", "vm", vmName, "volume", fzs[j].Top.Ref(), "err", uerr)
		}
	}
	return fmt.Errorf("vm %s: snapshot %s: %w", vmName, snap, err)
}

// switchLive opens each new top (its chain checked as a start checks it)
// and hands them to the hypervisor.
func (m *Manager) switchLive(ctx context.Context, ss Snapshots, ls liveSnapshotter, idx []int, fzs []*storage.Freeze) error {
	tops := map[int]hv.DiskFile{}
	defer func() {
		for _, t := range tops {
			t.File.Close()
		}
	}()
	for k, i := range idx {
		l, err := ss.OpenTop(ctx, fzs[k].Top.Ref())
		if err != nil {
			return fmt.Errorf("disks[%d]: %w", i, err)
		}
		tops[i] = hv.DiskFile{File: l.File, Format: l.Format, ReadOnly: l.ReadOnly, MaxSize: l.MaxSize}
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	return ls.SnapshotDisks(ctx, tops)
}

// refuseIfSnapshots refuses the delete of a VM that has snapshots
// (storage.RefuseVMDelete). The caller holds the VM's opMu, which
// CreateSnapshot also takes, so no snapshot appears meanwhile.
func (m *Manager) refuseIfSnapshots(ctx context.Context, name string) error {
	ss, ok := m.vols.(Snapshots)
	if !ok || ss == nil {
		return nil // no storage: no snapshots
	}
	list, err := ss.Snapshots(ctx, name)
	if err != nil {
		return fmt.Errorf("vm %s: delete: listing its snapshots: %w", name, err)
	}
	return storage.RefuseVMDelete(name, list)
}

// ListSnapshots returns a VM's snapshots, oldest first.
func (m *Manager) ListSnapshots(ctx context.Context, vmName string) ([]storage.Snapshot, error) {
	ss, err := m.snapshots()
	if err != nil {
		return nil, err
	}
	if _, err := m.store.GetVM(ctx, vmName); err != nil {
		return nil, err
	}
	return ss.Snapshots(ctx, vmName)
}

// GetSnapshot returns one snapshot of a VM.
func (m *Manager) GetSnapshot(ctx context.Context, vmName, snap string) (*storage.Snapshot, error) {
	ss, err := m.snapshots()
	if err != nil {
		return nil, err
	}
	if _, err := m.store.GetVM(ctx, vmName); err != nil {
		return nil, err
	}
	return ss.GetSnapshot(ctx, vmName, snap)
}

// VerifySnapshot recomputes the digest of every layer of a snapshot.
func (m *Manager) VerifySnapshot(ctx context.Context, vmName, snap string) (storage.VerifyReport, error) {
	s, err := m.GetSnapshot(ctx, vmName, snap)
	if err != nil {
		return storage.VerifyReport{}, err
	}
	ss, _ := m.snapshots()
	return ss.VerifySnapshot(ctx, s), nil
}

// RevertSnapshot puts a stopped VM's disks back to a snapshot: each
// frozen disk's current top is discarded and a new empty overlay on the
// snapshot's layer takes its place. The layers are verified first (a
// mismatch is refused naming the layer and both digests). The VM's
// definition is kept; its disks must still be the snapshot's.
func (m *Manager) RevertSnapshot(ctx context.Context, vmName, snap string) (*storage.Snapshot, error) {
	ss, err := m.snapshots()
	if err != nil {
		return nil, err
	}
	e := m.entry(vmName)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, err := m.store.GetVM(ctx, vmName)
	if err != nil {
		return nil, err
	}
	if !stoppedState(v.State) {
		return nil, fmt.Errorf("%w; stop it first", &vm.ConflictError{Op: OpRevert, State: v.State})
	}
	s, err := ss.GetSnapshot(ctx, vmName, snap)
	if err != nil {
		return nil, err
	}
	for _, d := range s.Disks {
		if d.Frozen() == "" {
			continue
		}
		if d.Disk >= len(v.Spec.Disks) || v.Spec.Disks[d.Disk].Volume != d.Volume {
			return nil, fmt.Errorf("%w: vm %s: revert to %s refused: disks[%d] was volume %s at the snapshot and is not now; restore the snapshot as a new VM instead", storage.ErrConflict, vmName, snap, d.Disk, d.Volume)
		}
	}
	if err := ss.VerifySnapshot(ctx, s).Err(); err != nil {
		return nil, fmt.Errorf("revert refused: %w", err)
	}
	for _, d := range s.Disks {
		if d.Frozen() == "" {
			continue
		}
		if err := ss.RevertDisk(ctx, d.Volume, d.Frozen()); err != nil {
			return nil, fmt.Errorf("vm %s: revert to %s: disks[%d]: %w", vmName, snap, d.Disk, err)
		}
	}
	m.log.Info("vm reverted to snapshot", "vm", vmName, "snapshot", snap)
	return s, nil
}

// DeleteSnapshot removes a snapshot: layers nothing depends on are
// deleted, the newest snapshot's layers get the disks' current changes
// merged in (the VM must be stopped for that), and a snapshot with later
// snapshots or restored VMs on its layers is refused naming them.
func (m *Manager) DeleteSnapshot(ctx context.Context, vmName, snap string) error {
	ss, err := m.snapshots()
	if err != nil {
		return err
	}
	e := m.entry(vmName)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	s, err := ss.GetSnapshot(ctx, vmName, snap)
	if err != nil {
		return err
	}
	tops := map[int]string{}
	live := false
	if v, err := m.store.GetVM(ctx, vmName); err == nil {
		live = !stoppedState(v.State)
		for i, d := range v.Spec.Disks {
			if d.Volume != "" && !d.ReadOnly {
				tops[i] = d.Volume
			}
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		// A deleted VM's snapshots can still be deleted.
		return err
	}
	plan, err := storage.PlanSnapshotDelete(*s, tops, ss.Volumes(), live)
	if err != nil {
		return err
	}
	if err := ss.DeleteSnapshotLayers(ctx, plan); err != nil {
		return fmt.Errorf("snapshot %s/%s: %w", vmName, snap, err)
	}
	if err := ss.DropSnapshot(ctx, s); err != nil {
		return err
	}
	m.log.Info("vm snapshot deleted", "vm", vmName, "snapshot", snap, "layers", len(plan))
	return nil
}

// RestoreVolumeName is the volume a restored VM's disk i gets.
func RestoreVolumeName(newVM string, disk int) string { return fmt.Sprintf("%s-disk%d", newVM, disk) }

// RestoreSpec is the definition a snapshot restores into a new VM: the
// recorded spec under the new name, each frozen disk on a new clone of
// its layer (same pool), NICs with new MACs and addresses (left empty
// here; Create assigns them).
func RestoreSpec(s *storage.Snapshot, newName string) (vm.Spec, error) {
	if err := vm.ValidateName("name", newName); err != nil {
		return vm.Spec{}, err
	}
	spec := s.Spec
	spec.Name = newName
	spec.Disks = append([]vm.Disk(nil), s.Spec.Disks...)
	spec.NICs = append([]vm.NIC(nil), s.Spec.NICs...)
	for i := range spec.NICs {
		spec.NICs[i].MAC, spec.NICs[i].IP = "", ""
	}
	for _, d := range s.Disks {
		if d.Frozen() == "" || d.Disk >= len(spec.Disks) {
			continue
		}
		pool, _, err := storage.ParseRef(d.Frozen())
		if err != nil {
			return vm.Spec{}, err
		}
		vol := RestoreVolumeName(newName, d.Disk)
		if err := storage.ValidateName("volume", vol); err != nil {
			return vm.Spec{}, &vm.FieldError{Field: "name", Msg: fmt.Sprintf("%q is too long for its disks' volume names (%s): %v", newName, vol, err)}
		}
		spec.Disks[d.Disk] = vm.Disk{Volume: pool + "/" + vol}
	}
	return spec, nil
}

// cmdlineToken is one word of a kernel command line.
var cmdlineToken = regexp.MustCompile(`\S+`)

// RestoreCmdline rewrites what a kernel command line says about the VM's
// own identity for a VM restored from a snapshot, which gets a new name
// and new NIC addresses but the recorded command line: an address the
// guest would otherwise configure is not its own (the switch drops its
// traffic as spoofed, and it claims the original's address). The command
// line is the operator's text, not derived from the NICs, so only what
// provably names the original is rewritten:
//
//   - bulwark.ip=ADDR[/PREFIX] and the kernel's ip=ADDR[:...] whose ADDR
//     is old[i]'s address get new[i]'s (the prefix and other fields kept);
//   - bulwark.hostname=OLDNAME gets the new VM's name.
//
// Everything else (gateway, DNS, other words, spacing) is kept.
func RestoreCmdline(cmdline, oldName, newName string, old, nics []vm.NIC) string {
	addr := map[string]string{}
	for i := range old {
		if i < len(nics) && old[i].IP != "" && nics[i].IP != "" {
			addr[old[i].IP] = nics[i].IP
		}
	}
	return cmdlineToken.ReplaceAllStringFunc(cmdline, func(w string) string {
		key, val, ok := strings.Cut(w, "=")
		if !ok {
			return w
		}
		switch key {
		case "bulwark.hostname":
			if val == oldName {
				return key + "=" + newName
			}
		case "bulwark.ip", "ip":
			sep := "/"
			if key == "ip" {
				sep = ":"
			}
			a, rest, cut := strings.Cut(val, sep)
			if n, ok := addr[a]; ok {
				if cut {
					return key + "=" + n + sep + rest
				}
				return key + "=" + n
			}
		}
		return w
	})
}

// RestoreSnapshot makes a new VM from a snapshot (RestoreSpec): the
// layers are verified first, then each frozen disk's layer is cloned,
// then authorize judges the new definition (privileges on what it names)
// and the VM is created with new NIC addresses, which its kernel command
// line is then given (RestoreCmdline). On any error the clones are
// deleted again.
func (m *Manager) RestoreSnapshot(ctx context.Context, vmName, snap, newName string, authorize func(vm.Spec) error) (*vm.VM, error) {
	ss, err := m.snapshots()
	if err != nil {
		return nil, err
	}
	s, err := ss.GetSnapshot(ctx, vmName, snap)
	if err != nil {
		return nil, err
	}
	spec, err := RestoreSpec(s, newName)
	if err != nil {
		return nil, err
	}
	if authorize != nil {
		if err := authorize(spec); err != nil {
			return nil, err
		}
	}
	if _, err := m.store.GetVM(ctx, newName); err == nil {
		return nil, fmt.Errorf("%w: vm %s already exists", storage.ErrConflict, newName)
	}
	if err := ss.VerifySnapshot(ctx, s).Err(); err != nil {
		return nil, fmt.Errorf("restore refused: %w", err)
	}
	var made []*storage.Volume
	cleanup := func() {
		for _, c := range made {
			if err := ss.Delete(context.Background(), c.Pool, c.Name); err != nil {
				m.log.Error("restore: could not remove a clone", "volume", c.Ref(), "err", err)
			}
		}
	}
	for _, d := range s.Disks {
		if d.Frozen() == "" {
			continue
		}
		pool, layer, _ := storage.ParseRef(d.Frozen())
		c, err := ss.Clone(ctx, pool, layer, RestoreVolumeName(newName, d.Disk))
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("restore %s/%s as %s: disks[%d]: %w", vmName, snap, newName, d.Disk, err)
		}
		made = append(made, c)
	}
	// The new VM's opMu is held from its creation until its command line
	// names its own addresses: nothing can start it in between.
	e := m.entry(newName)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	nv, err := m.Create(ctx, spec)
	if err != nil {
		cleanup()
		return nil, err
	}
	if c := RestoreCmdline(nv.Spec.Cmdline, s.Spec.Name, newName, s.Spec.NICs, nv.Spec.NICs); c != nv.Spec.Cmdline {
		fixed := nv.Spec
		fixed.Cmdline = c
		err := fixed.Validate(os.Stat)
		if err == nil {
			err = m.store.SetSpec(ctx, newName, fixed)
		}
		if err != nil {
			// All or nothing: the VM was never started, so it goes.
			if derr := m.store.DeleteVM(context.Background(), newName); derr != nil {
				m.log.Error("restore: could not remove the half-restored VM", "vm", newName, "err", derr)
			}
			cleanup()
			return nil, fmt.Errorf("restore %s as %s: its kernel command line with the new addresses: %w", s.Ref(), newName, err)
		}
		m.log.Info("restored vm's kernel command line rewritten", "vm", newName, "from", nv.Spec.Cmdline, "to", c)
		if nv, err = m.store.GetVM(ctx, newName); err != nil {
			return nil, err
		}
	}
	m.log.Info("vm restored from snapshot", "vm", newName, "from", s.Ref())
	return nv, nil
}
