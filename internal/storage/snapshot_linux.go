package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/bulwark-project/bulwark/internal/store"
)

// Freeze is one disk frozen for a snapshot: Layer is the volume its old
// top became, Top the new overlay that took the disk's volume name.
type Freeze struct {
	Layer Volume
	Top   Volume
	orig  Volume // the disk's volume before, for Unfreeze
}

// FreezeDisk freezes the volume ref (a VM's read-write disk) for snapshot
// snap: its file is renamed to a new volume (the frozen layer, same format
// and base), and a new empty qcow2 overlay on that layer takes ref's name.
// The VM's definition keeps naming ref. A VM may be running on ref: its
// hypervisor holds the old file by descriptor and keeps writing to the
// layer until it is switched to the new top (blockdev-snapshot); the
// caller does that, or the VM is stopped. Unfreeze undoes it.
func (s *Service) FreezeDisk(ctx context.Context, ref, snap string) (*Freeze, error) {
	pool, name, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	var p *Pool
	var layerRef string
	if err == nil {
		p, err = s.poolLocked(pool)
	}
	if err == nil {
		if c := s.clonesLocked(v); len(c) > 0 {
			err = fmt.Errorf("%w: volume %s: snapshot refused: it is the base of clone(s) %v and must not change", ErrConflict, ref, c)
		}
	}
	if err == nil {
		var chain []*Volume
		if chain, err = s.chainLocked(ref); err == nil && len(chain)+1 > maxChain {
			err = fmt.Errorf("%w: volume %s: snapshot refused: its chain has %d layers and may have at most %d; delete a snapshot first", ErrConflict, ref, len(chain), maxChain)
		}
	}
	if err == nil {
		ln := frozenName(v.Name, snap, hex.EncodeToString(suffix[:]), func(n string) bool {
			return s.vols[pool+"/"+n] != nil || s.busy[pool+"/"+n] != ""
		})
		layerRef = pool + "/" + ln
		if err = s.reserveLocked(ref, "snapshot", true); err == nil {
			if err = s.reserveLocked(layerRef, "snapshot", false); err != nil {
				delete(s.busy, ref)
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer s.release(ref)
	defer s.release(layerRef)
	if err := p.check(); err != nil {
		return nil, err
	}
	if err := s.checkHeader(p, v); err != nil {
		return nil, err
	}
	fz := &Freeze{orig: *v, Layer: *v}
	fz.Layer.Name = layerRef[len(pool)+1:]
	fz.Layer.SHA256 = ""
	fz.Top = Volume{Pool: pool, Name: v.Name, Format: FormatQcow2, Size: v.Size, Base: fz.Layer.Name, Created: time.Now().UTC()}
	// undoFreeze (the journal's replay) takes a file under the layer's
	// name as the moved top: none may exist before.
	if p.exists(fz.Layer.FileName()) {
		return nil, fmt.Errorf("%w: volume %s: snapshot: pool %s: a file %s exists that no volume record names; remove it by hand", ErrConflict, ref, p.Name, fz.Layer.FileName())
	}
	j := &journalEntry{Op: opFreeze, Orig: *v, New: fz.Top, Layer: fz.Layer}
	if err := s.writeJournal(ctx, j); err != nil {
		return nil, err
	}
	err = p.commit(v.FileName(), fz.Layer.FileName())
	if crashed(opFreeze, 1) {
		return nil, errCrashed
	}
	if err == nil {
		err = s.record(ctx, &fz.Layer)
	}
	if crashed(opFreeze, 2) {
		return nil, errCrashed
	}
	tmp := tempName(v.Name)
	if err == nil {
		err = s.create(ctx, p, tmp, FormatQcow2, v.Size, fz.Layer.FileName(), fz.Layer.Format)
	}
	if err == nil {
		err = p.commit(tmp, fz.Top.FileName())
	}
	if crashed(opFreeze, 3) {
		return nil, errCrashed
	}
	if err == nil {
		err = s.update(ctx, &fz.Top)
	}
	if crashed(opFreeze, 4) {
		return nil, errCrashed
	}
	if err != nil {
		p.remove(tmp)
		return nil, s.undoJournal(ctx, p, j, fmt.Errorf("volume %s: snapshot: %w", ref, spaceErr(p, err)))
	}
	s.dropJournal(ctx, j)
	return fz, nil
}

// undoJournal undoes a failed journalled operation (as a replay would)
// and returns cause; if the undo fails too, the entry is kept for the
// next start and the error says so.
func (s *Service) undoJournal(ctx context.Context, p *Pool, j *journalEntry, cause error) error {
	var err error
	switch j.Op {
	case opFreeze:
		err = s.undoFreeze(ctx, p, j)
	case opRevert:
		err = s.undoRevert(ctx, p, j)
	}
	if err != nil {
		s.log.Error("storage: undoing a failed snapshot operation failed; it is retried at the next start", "volume", j.name(), "op", j.Op, "err", err)
		return fmt.Errorf("%w (undoing it failed too, retried at the next start: %v)", cause, err)
	}
	s.dropJournal(ctx, j)
	return cause
}

// Unfreeze undoes FreezeDisk (a live snapshot the hypervisor refused): the
// new top is removed and the layer takes the disk's name again. It is
// journalled as the freeze was: an interrupted undo is finished at start.
func (s *Service) Unfreeze(ctx context.Context, fz *Freeze) error {
	s.mu.Lock()
	p := s.pools[fz.orig.Pool]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: pool %s", ErrUnavailable, fz.orig.Pool)
	}
	j := &journalEntry{Op: opFreeze, Orig: fz.orig, New: fz.Top, Layer: fz.Layer}
	if err := s.writeJournal(ctx, j); err != nil {
		return err
	}
	if err := s.undoFreeze(ctx, p, j); err != nil {
		return fmt.Errorf("%w (retried at the next start)", err)
	}
	s.dropJournal(ctx, j)
	return nil
}

// update rewrites an existing volume's record.
func (s *Service) update(ctx context.Context, v *Volume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.st.UpdateObject(ctx, kindVolume, v.Ref(), b); err != nil {
		return fmt.Errorf("volume %s: %w", v.Ref(), err)
	}
	s.mu.Lock()
	s.vols[v.Ref()] = v
	s.mu.Unlock()
	return nil
}

// putRecord writes v's record whether or not one exists (undo paths).
func (s *Service) putRecord(ctx context.Context, v *Volume) error {
	c := *v
	if err := s.update(ctx, &c); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s.record(ctx, &c)
		}
		s.log.Error("storage: could not restore a volume record", "volume", v.Ref(), "err", err)
		return err
	}
	return nil
}

// dropRecord removes v's record (undo paths); its file is the caller's.
func (s *Service) dropRecord(ctx context.Context, v *Volume) {
	if err := s.st.DeleteObject(ctx, kindVolume, v.Ref()); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("storage: could not remove a volume record", "volume", v.Ref(), "err", err)
	}
	s.mu.Lock()
	delete(s.vols, v.Ref())
	s.mu.Unlock()
}

// OpenTop opens ref's top file read-write after checking its whole chain
// as a start does (the new overlay of a live snapshot); the caller closes
// it.
func (s *Service) OpenTop(ctx context.Context, ref string) (Layer, error) {
	layers, err := s.OpenChain(ctx, ref, false)
	if err != nil {
		return Layer{}, err
	}
	top := layers[len(layers)-1]
	CloseLayers(layers[:len(layers)-1])
	return top, nil
}

// ChainDigests returns the SHA-256 of every layer of ref's chain, ref
// first. known holds digests already recorded for layers (frozen layers
// never change, and an earlier record is the stronger witness).
func (s *Service) ChainDigests(ctx context.Context, ref string, known map[string]string) ([]LayerDigest, error) {
	s.mu.Lock()
	chain, err := s.chainLocked(ref)
	var p *Pool
	if err == nil {
		p = s.pools[chain[0].Pool]
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: volume %s: pool not configured", ErrUnavailable, ref)
	}
	out := make([]LayerDigest, 0, len(chain))
	for _, v := range chain {
		d := known[v.Ref()]
		if d == "" {
			if d, err = s.digest(ctx, p, v); err != nil {
				return nil, err
			}
		}
		out = append(out, LayerDigest{Volume: v.Ref(), SHA256: d})
	}
	return out, nil
}

// digest hashes a volume's file, read through the held pool directory.
func (s *Service) digest(ctx context.Context, p *Pool, v *Volume) (string, error) {
	f, err := p.open(v.FileName(), os.O_RDONLY)
	if err != nil {
		return "", fmt.Errorf("%w: volume %s: %v", ErrUnavailable, v.Ref(), err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("volume %s: digest: %w", v.Ref(), err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifySnapshot recomputes the digest of every layer the snapshot
// recorded and compares.
func (s *Service) VerifySnapshot(ctx context.Context, snap *Snapshot) VerifyReport {
	rep := VerifyReport{Snapshot: snap.Ref(), OK: true}
	seen := map[string]bool{}
	for _, d := range snap.Disks {
		for _, l := range d.Layers {
			if seen[l.Volume] {
				continue
			}
			seen[l.Volume] = true
			rep.Layers = append(rep.Layers, l)
			got, err := s.layerDigest(ctx, l.Volume)
			switch {
			case err != nil:
				rep.Mismatches = append(rep.Mismatches, DigestMismatch{Volume: l.Volume, Recorded: l.SHA256, Problem: err.Error()})
			case got != l.SHA256:
				rep.Mismatches = append(rep.Mismatches, DigestMismatch{Volume: l.Volume, Recorded: l.SHA256, Actual: got})
			}
		}
	}
	rep.OK = len(rep.Mismatches) == 0
	return rep
}

func (s *Service) layerDigest(ctx context.Context, ref string) (string, error) {
	pool, name, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	p := s.pools[pool]
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	if p == nil {
		return "", fmt.Errorf("%w: pool %s", ErrUnavailable, pool)
	}
	return s.digest(ctx, p, v)
}

// RevertDisk discards the disk volume top's content: its file is replaced
// by a new empty qcow2 overlay on layer (a snapshot's frozen layer in the
// same pool). The VM must be stopped; the caller checks.
func (s *Service) RevertDisk(ctx context.Context, top, layer string) error {
	pool, name, err := ParseRef(top)
	if err != nil {
		return err
	}
	lpool, lname, err := ParseRef(layer)
	if err != nil {
		return err
	}
	if lpool != pool {
		return fmt.Errorf("%w: volume %s: revert to %s refused: not in the same pool", ErrInvalid, top, layer)
	}
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	var l *Volume
	var p *Pool
	if err == nil {
		l, err = s.getLocked(lpool, lname)
	}
	if err == nil {
		p, err = s.poolLocked(pool)
	}
	if err == nil {
		if c := s.clonesLocked(v); len(c) > 0 {
			err = fmt.Errorf("%w: volume %s: revert refused: it is the base of clone(s) %v, which would lose their base", ErrConflict, top, c)
		}
	}
	if err == nil {
		err = s.reserveLocked(top, "revert", true)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	defer s.release(top)
	if err := p.check(); err != nil {
		return err
	}
	if err := s.checkHeader(p, l); err != nil {
		return err
	}
	nv := Volume{Pool: pool, Name: name, Format: FormatQcow2, Size: l.Size, Base: l.Name, Created: time.Now().UTC()}
	// The new overlay is made, and the discarded top moved, under journal
	// names: a replay after a crash finishes the revert once the old top
	// was moved aside, and undoes it before.
	j := &journalEntry{Op: opRevert, Orig: *v, New: nv, Layer: *l, Tmp: jrnName(name), Old: jrnName(name)}
	if err := s.writeJournal(ctx, j); err != nil {
		return err
	}
	err = s.create(ctx, p, j.Tmp, FormatQcow2, l.Size, l.FileName(), l.Format)
	if err != nil {
		err = spaceErr(p, err)
	}
	if crashed(opRevert, 1) {
		return errCrashed
	}
	if err == nil {
		err = p.dir.Rename(v.FileName(), j.Old)
	}
	if crashed(opRevert, 2) {
		return errCrashed
	}
	if err == nil {
		err = p.commit(j.Tmp, nv.FileName())
	}
	if crashed(opRevert, 3) {
		return errCrashed
	}
	if err == nil {
		err = s.update(ctx, &nv)
	}
	if crashed(opRevert, 4) {
		return errCrashed
	}
	if err != nil {
		return s.undoJournal(ctx, p, j, fmt.Errorf("volume %s: revert: %w", top, err))
	}
	if err := p.remove(j.Old); err != nil {
		s.log.Warn("storage: discarded top not removed (removed at next start)", "volume", top, "err", err)
	}
	s.dropJournal(ctx, j)
	return nil
}

// DeleteSnapshotLayers carries out a delete plan (PlanSnapshotDelete):
// layers nothing depends on are deleted as volumes (refused if a VM
// definition names one); a layer under the VM's current top gets the
// top's changes (qemu-img commit) and takes the top's name.
func (s *Service) DeleteSnapshotLayers(ctx context.Context, plan []DeleteAction) error {
	for _, a := range plan {
		pool, name, err := ParseRef(a.Layer)
		if err != nil {
			return err
		}
		if a.Merge == "" {
			// Not found: an earlier delete of this snapshot, interrupted
			// before its record went, removed it (or merged it).
			if err := s.Delete(ctx, pool, name); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			continue
		}
		if err := s.mergeInto(ctx, a.Merge, a.Layer); err != nil {
			return err
		}
	}
	return nil
}

// mergeInto writes the changes of top (an overlay whose base is layer)
// into layer and gives layer top's name: the disk's content is unchanged,
// one layer shorter.
func (s *Service) mergeInto(ctx context.Context, top, layer string) error {
	pool, name, _ := ParseRef(top)
	_, lname, _ := ParseRef(layer)
	s.mu.Lock()
	t, err := s.getLocked(pool, name)
	var chain []*Volume
	var p *Pool
	if err == nil && t.Base != lname {
		err = fmt.Errorf("%w: volume %s: merge refused: its base is %q, not %s", ErrConflict, top, t.Base, layer)
	}
	if err == nil {
		chain, err = s.chainLocked(top)
	}
	if err == nil {
		p, err = s.poolLocked(pool)
	}
	if err == nil {
		if c := s.clonesLocked(t); len(c) > 0 {
			err = fmt.Errorf("%w: volume %s: merge refused: it has clones %v", ErrConflict, top, c)
		}
	}
	if err == nil {
		if err = s.reserveLocked(top, "snapshot delete", true); err == nil {
			if err = s.reserveLocked(layer, "snapshot delete", true); err != nil {
				delete(s.busy, top)
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	defer s.release(top)
	defer s.release(layer)
	for _, v := range chain {
		if err := s.checkHeader(p, v); err != nil {
			return err
		}
	}
	l := chain[1]
	nt := *l
	nt.Name, nt.Created = t.Name, t.Created
	nt.SHA256 = ""
	// Journalled: a replay finishes the merge once the top was moved
	// aside (qemu-img commit had finished), and leaves it before.
	j := &journalEntry{Op: opMerge, Orig: *t, New: nt, Layer: *l, Old: jrnName(t.Name)}
	if err := s.writeJournal(ctx, j); err != nil {
		return err
	}
	// -d: the top is dropped afterwards, no need to empty it. The chain is
	// given whole and explicitly: qemu-img resolves no name from a header.
	if _, err := s.qemuImg(ctx, p, "commit", "commit", "-q", "-d", chainJSON(chain)); err != nil {
		s.dropJournal(ctx, j)
		return fmt.Errorf("volume %s: merge into %s: %w", top, layer, spaceErr(p, err))
	}
	if crashed(opMerge, 1) {
		return errCrashed
	}
	if err := p.dir.Rename(t.FileName(), j.Old); err != nil {
		s.dropJournal(ctx, j)
		return fmt.Errorf("volume %s: merge: %w", top, err)
	}
	if crashed(opMerge, 2) {
		return errCrashed
	}
	// Past this point the merge is finished, now or at the next start.
	err = p.commit(l.FileName(), nt.FileName())
	if crashed(opMerge, 3) {
		return errCrashed
	}
	if err == nil {
		err = s.update(ctx, &nt)
	}
	if crashed(opMerge, 4) {
		return errCrashed
	}
	if err == nil {
		err = s.finishMerge(ctx, p, j)
	}
	if err != nil {
		s.log.Error("storage: a merge could not be finished; it is retried at the next start", "volume", top, "err", err)
		return fmt.Errorf("volume %s: merge: %w (finished at the next start)", top, err)
	}
	s.dropJournal(ctx, j)
	return nil
}

// chainJSON is a qemu-img json: filename naming every layer of chain (top
// first) explicitly, the bottom qcow2 layer with "backing": null.
func chainJSON(chain []*Volume) string {
	var node func(i int) map[string]any
	node = func(i int) map[string]any {
		v := chain[i]
		m := map[string]any{"driver": v.Format, "file": map[string]any{"driver": "file", "filename": qemuPath(v.FileName())}}
		if v.Format == FormatQcow2 {
			if i+1 < len(chain) {
				m["backing"] = node(i + 1)
			} else {
				m["backing"] = nil
			}
		}
		return m
	}
	b, _ := json.Marshal(node(0))
	return "json:" + string(b)
}

// Snapshot records.

// SaveSnapshot records a new snapshot.
func (s *Service) SaveSnapshot(ctx context.Context, snap *Snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	if err := s.st.CreateObject(ctx, kindSnapshot, snap.Ref(), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: snapshot %s already exists", ErrConflict, snap.Ref())
		}
		return fmt.Errorf("snapshot %s: %w", snap.Ref(), err)
	}
	return nil
}

// Snapshots returns a VM's snapshots, oldest first.
func (s *Service) Snapshots(ctx context.Context, vmName string) ([]Snapshot, error) {
	var out []Snapshot
	err := store.LoadObjects(ctx, s.st, kindSnapshot, func(sn Snapshot) {
		if sn.VM == vmName {
			out = append(out, sn)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// GetSnapshot returns one snapshot record.
func (s *Service) GetSnapshot(ctx context.Context, vmName, name string) (*Snapshot, error) {
	if err := ValidateSnapshotName(name); err != nil {
		return nil, err
	}
	all, err := s.Snapshots(ctx, vmName)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("snapshot %s/%s: %w", vmName, name, ErrNotFound)
}

// DropSnapshot removes a snapshot's record (its layers are the caller's).
func (s *Service) DropSnapshot(ctx context.Context, snap *Snapshot) error {
	if err := s.st.DeleteObject(ctx, kindSnapshot, snap.Ref()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("snapshot %s: %w", snap.Ref(), err)
	}
	return nil
}
