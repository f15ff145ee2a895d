package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-project/bulwark/internal/store"
)

// jrnName returns a fresh jrnPrefix name for a file of volume name.
func jrnName(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return jrnPrefix + name + "-" + hex.EncodeToString(b[:])
}

// exists says whether the pool holds a file of that name.
func (p *Pool) exists(name string) bool {
	_, err := p.dir.Stat(name)
	return err == nil
}

// recoverJournals replays every journal entry an interrupted operation
// left (see journal.go), then removes jrnPrefix files no remaining entry
// names. An entry that cannot be replayed (its pool is missing, a rename
// fails) is logged and kept for the next start; the disk it names then
// fails to open, naming its file, as it would have without a journal.
func (s *Service) recoverJournals(ctx context.Context) error {
	var entries []journalEntry
	if err := store.LoadObjects(ctx, s.st, kindJournal, func(j journalEntry) { entries = append(entries, j) }); err != nil {
		return err
	}
	keep := map[string]bool{}
	for i := range entries {
		j := &entries[i]
		p := s.pools[j.Orig.Pool]
		var err error
		if p == nil {
			err = fmt.Errorf("%w: pool %s is not configured", ErrUnavailable, j.Orig.Pool)
		} else if err = p.check(); err == nil {
			var how string
			if how, err = s.replay(ctx, p, j); err == nil {
				s.dropJournal(ctx, j)
				s.log.Warn("storage: an interrupted snapshot operation was "+how, "volume", j.name(), "op", j.Op)
				continue
			}
		}
		s.log.Error("storage: an interrupted snapshot operation could not be finished or undone; kept for the next start", "volume", j.name(), "op", j.Op, "err", err)
		keep[j.Tmp], keep[j.Old] = true, true
	}
	for _, p := range s.pools {
		p.removeJournalFiles(keep)
	}
	return nil
}

// replay finishes or undoes j and says which.
func (s *Service) replay(ctx context.Context, p *Pool, j *journalEntry) (string, error) {
	switch j.Op {
	case opFreeze:
		if s.layerRecorded(ctx, j.Layer.Ref()) {
			// A snapshot names the layer: the freeze had finished.
			if err := s.putRecord(ctx, &j.Layer); err != nil {
				return "", err
			}
			return "finished", s.putRecord(ctx, &j.New)
		}
		return "undone", s.undoFreeze(ctx, p, j)
	case opRevert:
		if p.exists(j.Old) || sameRecord(s.vols[j.Orig.Ref()], j.New) {
			return "finished", s.finishRevert(ctx, p, j)
		}
		return "undone", s.undoRevert(ctx, p, j)
	case opMerge:
		if p.exists(j.Old) || sameRecord(s.vols[j.Orig.Ref()], j.New) {
			return "finished", s.finishMerge(ctx, p, j)
		}
		// Nothing was renamed. qemu-img commit may have run, in part or
		// whole: the disk reads the same (its top is still on the layer),
		// but the layer no longer has its recorded digest.
		s.log.Warn("storage: a snapshot delete was interrupted while merging; the disk is unchanged, but the layer may hold part of the merge (its snapshot then fails verification): delete the snapshot again", "volume", j.name(), "layer", j.Layer.Ref())
		return "undone", nil
	}
	return "", fmt.Errorf("unknown journalled operation %q", j.Op)
}

// layerRecorded says whether a snapshot record names ref as a layer.
func (s *Service) layerRecorded(ctx context.Context, ref string) bool {
	found := false
	err := store.LoadObjects(ctx, s.st, kindSnapshot, func(sn Snapshot) {
		for _, d := range sn.Disks {
			if d.Frozen() == ref {
				found = true
			}
		}
	})
	if err != nil {
		s.log.Error("storage: journal: reading snapshot records", "err", err)
	}
	return found
}

// undoFreeze puts the disk back as it was before FreezeDisk. The layer's
// file exists only if the first step (the old top renamed to it) ran, and
// FreezeDisk makes sure no such file exists before: then any file under
// the disk's qcow2 name is the new overlay.
func (s *Service) undoFreeze(ctx context.Context, p *Pool, j *journalEntry) error {
	if p.exists(j.Layer.FileName()) {
		if err := p.remove(j.New.FileName()); err != nil {
			return fmt.Errorf("volume %s: undo snapshot: %w", j.name(), err)
		}
		if err := p.dir.Rename(j.Layer.FileName(), j.Orig.FileName()); err != nil {
			return fmt.Errorf("volume %s: undo snapshot: %w", j.name(), err)
		}
	}
	s.dropRecord(ctx, &j.Layer)
	return s.putRecord(ctx, &j.Orig)
}

// finishRevert completes RevertDisk once the old top was moved to Old.
func (s *Service) finishRevert(ctx context.Context, p *Pool, j *journalEntry) error {
	if p.exists(j.Tmp) {
		if err := p.commit(j.Tmp, j.New.FileName()); err != nil {
			return fmt.Errorf("volume %s: finish revert: %w", j.name(), err)
		}
	} else if !p.exists(j.New.FileName()) {
		return fmt.Errorf("volume %s: finish revert: neither the new overlay %s nor %s exists", j.name(), j.Tmp, j.New.FileName())
	}
	if err := s.putRecord(ctx, &j.New); err != nil {
		return err
	}
	return p.remove(j.Old)
}

// undoRevert puts the old top back (the revert did not get far, or failed).
func (s *Service) undoRevert(ctx context.Context, p *Pool, j *journalEntry) error {
	if p.exists(j.Old) {
		// The old top was moved aside: a file under the disk's qcow2
		// name is the new overlay.
		if err := p.remove(j.New.FileName()); err != nil {
			return fmt.Errorf("volume %s: undo revert: %w", j.name(), err)
		}
		if err := p.dir.Rename(j.Old, j.Orig.FileName()); err != nil {
			return fmt.Errorf("volume %s: undo revert: %w", j.name(), err)
		}
	}
	if err := p.remove(j.Tmp); err != nil {
		return fmt.Errorf("volume %s: undo revert: %w", j.name(), err)
	}
	return s.putRecord(ctx, &j.Orig)
}

// finishMerge completes mergeInto once the merged top was moved to Old
// (so qemu-img commit had finished): the layer takes the top's name.
func (s *Service) finishMerge(ctx context.Context, p *Pool, j *journalEntry) error {
	if p.exists(j.Layer.FileName()) {
		if err := p.commit(j.Layer.FileName(), j.New.FileName()); err != nil {
			return fmt.Errorf("volume %s: finish merge: %w", j.name(), err)
		}
	} else if !p.exists(j.New.FileName()) {
		return fmt.Errorf("volume %s: finish merge: neither the layer %s nor %s exists", j.name(), j.Layer.FileName(), j.New.FileName())
	}
	if err := s.putRecord(ctx, &j.New); err != nil {
		return err
	}
	s.dropRecord(ctx, &j.Layer)
	return p.remove(j.Old)
}

// removeJournalFiles deletes jrnPrefix files except those in keep (named
// by journal entries that could not be replayed).
func (p *Pool) removeJournalFiles(keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.fdir.Seek(0, io.SeekStart); err != nil {
		return
	}
	ents, err := p.fdir.ReadDir(10000)
	if err != nil && err != io.EOF {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), jrnPrefix) && !keep[e.Name()] {
			p.remove(e.Name())
		}
	}
}
