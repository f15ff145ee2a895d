package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/store"
)

// The snapshot operations (freeze, revert, merge) move a disk's files
// under new names and rewrite two or three volume records; a daemon that
// dies between those steps would leave records that do not match the
// files, and the disk would not open. Each of them therefore first writes
// a journal entry (store kind "journal", named after the disk's volume,
// which the operation holds busy) saying what it is about to do, and
// drops it when done. When the service starts, every entry left is
// replayed before anything else touches the pools: forward where the
// operation had passed the point after which its intent is what the disk
// must show, back otherwise (replay, journal_linux.go). Each replay step
// looks at which files exist, so a replay that is itself interrupted is
// run again at the next start.

// kindJournal is the store kind of journal entries, named "POOL/VOL".
const kindJournal = "journal"

// Journalled operations.
const (
	opFreeze = "freeze" // FreezeDisk, Unfreeze: always undone unless a snapshot records the layer
	opRevert = "revert" // RevertDisk: finished once the old top was moved aside
	opMerge  = "merge"  // mergeInto: finished once the merged top was moved aside
)

// jrnPrefix starts the names of files a journalled operation moves aside
// or makes; unlike tempPrefix files they are kept at pool open until the
// journal is replayed (a replay may need them), and removed after.
const jrnPrefix = ".jrn-"

// journalEntry is one snapshot operation in progress on a disk's volume.
type journalEntry struct {
	Op string `json:"op"`
	// Orig is the disk's volume record before the operation, New the one
	// it ends with (same pool and name).
	Orig Volume `json:"orig"`
	New  Volume `json:"new"`
	// Layer is the other volume involved: freeze: the layer being made;
	// revert: the snapshot's layer; merge: the layer merged into.
	Layer Volume `json:"layer"`
	// Tmp is the new top being made (revert), Old where the replaced top
	// is moved (revert, merge); both jrnPrefix names.
	Tmp string `json:"tmp,omitempty"`
	Old string `json:"old,omitempty"`
}

func (j *journalEntry) name() string { return j.Orig.Ref() }

// writeJournal records j before its first step.
func (s *Service) writeJournal(ctx context.Context, j *journalEntry) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := s.st.CreateObject(ctx, kindJournal, j.name(), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: volume %s: an interrupted %s is still recorded in the journal; restart the daemon to finish it", ErrConflict, j.name(), j.Op)
		}
		return fmt.Errorf("volume %s: journal: %w", j.name(), err)
	}
	return nil
}

// dropJournal removes j once its operation is done or undone. A failure
// is logged: the next start replays j, which finds it done.
func (s *Service) dropJournal(ctx context.Context, j *journalEntry) {
	if err := s.st.DeleteObject(ctx, kindJournal, j.name()); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("storage: could not remove a journal entry (replayed at the next start)", "volume", j.name(), "op", j.Op, "err", err)
	}
}

// sameRecord says whether a volume record is b (as a journal holds it).
func sameRecord(a *Volume, b Volume) bool {
	return a != nil && a.Format == b.Format && a.Base == b.Base && a.Size == b.Size && a.Created.Equal(b.Created)
}

// crashAfter, set by tests only, stops an operation right after a step,
// leaving files, records and journal as a daemon killed there would.
var crashAfter func(op string, step int) bool

// errCrashed is what an operation stopped by crashAfter returns.
var errCrashed = errors.New("storage: stopped by a test as if the daemon died")

func crashed(op string, step int) bool { return crashAfter != nil && crashAfter(op, step) }
