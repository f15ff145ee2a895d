package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// openAnchored opens the log in dir with an anchor file at anchors, as the
// daemon does (without chattr, so that the test can clean up).
func openAnchored(t testing.TB, dir, anchors string, every int, opts ...Option) *Log {
	t.Helper()
	key, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	af, err := OpenAnchorFile(anchors, false)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), dir, key, every, append(opts, WithAnchorFile(af))...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func checkpointSeqs(t *testing.T, dir string) []uint64 {
	t.Helper()
	rows, err := rawDB(t, dir).Query(`SELECT seq FROM checkpoints ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s uint64
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// TestTamperAnchored is the attacker's list from issue 11: each change to
// the database, made behind the log's back, is named by Verify, both by
// the live log and by one opened afterwards; the reopened log reports it
// as damage and refuses to sign a checkpoint over it.
func TestTamperAnchored(t *testing.T) {
	tests := []struct {
		name       string
		tamper     func(t *testing.T, db *sql.DB, recs []Record)
		live, cold []found // nil cold means the same as live
	}{
		{"field edited", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `UPDATE records SET user = 'mallory' WHERE seq = 7`)
		}, []found{{7, KindEdited}}, nil},
		{"middle row deleted", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `DELETE FROM records WHERE seq = 7`)
		}, []found{{7, KindGap}, {7, KindAnchorMismatch}}, nil},
		{"two rows swapped", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `UPDATE records SET seq = -1 WHERE seq = 5`)
			exec(t, db, `UPDATE records SET seq = 5 WHERE seq = 6`)
			exec(t, db, `UPDATE records SET seq = 6 WHERE seq = -1`)
		}, []found{{5, KindEdited}, {5, KindPrevMismatch}, {5, KindAnchorMismatch}, {6, KindEdited}, {6, KindPrevMismatch}, {7, KindPrevMismatch}}, nil},
		{"tail cut", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `DELETE FROM records WHERE seq > 15`)
		}, []found{{16, KindTruncated}, {16, KindTruncated}, {16, KindCutTail}}, []found{{16, KindTruncated}, {16, KindCutTail}}},
		{"tail cut with its checkpoint rows", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `DELETE FROM records WHERE seq > 15`)
			exec(t, db, `DELETE FROM checkpoints WHERE seq > 15`)
		}, []found{{16, KindTruncated}, {16, KindCutTail}}, []found{{16, KindCutTail}}},
		{"everything deleted", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `DELETE FROM records`)
			exec(t, db, `DELETE FROM checkpoints`)
		}, []found{{1, KindTruncated}, {1, KindWiped}}, []found{{1, KindWiped}}},
		{"rewritten from seq 12 with recomputed hashes", func(t *testing.T, db *sql.DB, recs []Record) {
			rewrite(t, db, recs, 11)
		}, []found{{12, KindAnchorMismatch}, {20, KindCheckpointMismatch}, {25, KindCheckpointMismatch}, {25, KindCheckpointMismatch}},
			[]found{{12, KindAnchorMismatch}, {20, KindCheckpointMismatch}, {25, KindCheckpointMismatch}}},
		{"rewritten, and the checkpoints that disagree deleted", func(t *testing.T, db *sql.DB, recs []Record) {
			rewrite(t, db, recs, 11)
			exec(t, db, `DELETE FROM checkpoints WHERE seq > 11`)
		}, []found{{12, KindAnchorMismatch}, {25, KindCheckpointMismatch}}, []found{{12, KindAnchorMismatch}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
			l := openAnchored(t, dir, anchors, 10)
			recs := fill(t, l, 25)
			if _, err := l.Checkpoint(ctx); err != nil { // at 10, 20 and 25
				t.Fatal(err)
			}
			tt.tamper(t, rawDB(t, dir), recs)
			check := func(l *Log, want []found) Report {
				t.Helper()
				rep, err := l.Verify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := summarize(rep.Problems); !slices.Equal(got, want) {
					t.Errorf("problems:\n%swant %v", problemList(rep.Problems), want)
				}
				return rep
			}
			check(l, tt.live)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			cold := tt.cold
			if cold == nil {
				cold = tt.live
			}
			before := checkpointSeqs(t, dir)
			l = openAnchored(t, dir, anchors, 10)
			if got := summarize(l.Damage()); !slices.Equal(got, cold) {
				t.Errorf("Damage at Open:\n%swant %v", problemList(l.Damage()), cold)
			}
			check(l, cold)
			// It goes on recording, but signs nothing: neither every 10
			// records nor at Close.
			fill(t, l, 12)
			if _, err := l.Checkpoint(ctx); !errors.Is(err, ErrDamaged) {
				t.Errorf("Checkpoint of a damaged log: %v, want ErrDamaged", err)
			}
			if err := l.Close(); !errors.Is(err, ErrDamaged) {
				t.Errorf("Close of a damaged log: %v, want ErrDamaged", err)
			}
			if after := checkpointSeqs(t, dir); !slices.Equal(after, before) {
				t.Errorf("checkpoints %v after the damaged log ran, %v before", after, before)
			}
		})
	}
}

// rewrite changes record i's user and recomputes every hash from there,
// as an attacker without the signing key would.
func rewrite(t *testing.T, db *sql.DB, recs []Record, i int) {
	recs = slices.Clone(recs)
	recs[i].User = "mallory"
	rechain(recs, i)
	for _, r := range recs[i:] {
		exec(t, db, `UPDATE records SET user = ?, prev = ?, hash = ? WHERE seq = ?`, r.User, r.Prev, r.Hash, r.Seq)
	}
}

// The attack that used to succeed: while the daemon is down the chain is
// rewritten and the contradicting checkpoints deleted; the next start
// verified nothing and the clean shutdown signed the forgery. Now Open
// finds it and Close signs nothing.
func TestRewriteIsNotSignedAtClose(t *testing.T) {
	dir := t.TempDir()
	anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
	l := openAnchored(t, dir, anchors, 10)
	recs := fill(t, l, 25) // checkpoints at 10 and 20
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, dir)
	rewrite(t, db, recs, 11)
	exec(t, db, `DELETE FROM checkpoints WHERE seq > 11`)
	l = openAnchored(t, dir, anchors, 10)
	if len(l.Damage()) == 0 {
		t.Fatal("Open found no damage")
	}
	if err := l.Close(); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "seq 25 stays unsigned") {
		t.Errorf("Close: %v", err)
	}
	if cps := checkpointSeqs(t, dir); !slices.Equal(cps, []uint64{10}) {
		t.Errorf("checkpoints %v, want only the one at 10", cps)
	}
	// Without the anchor file, only the chain and checkpoints: the forgery
	// verifies, which is what the anchors are for.
	plain := openLog(t, dir, 10)
	if len(plain.Damage()) != 0 {
		t.Errorf("without anchors: %s", problemList(plain.Damage()))
	}
}

// A log that was written without anchors gets its head anchored (and its
// newest checkpoint) when an anchor file is first attached; a head that a
// crash left unanchored is anchored at the next Open.
func TestOpenAnchorsHead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	anchors := filepath.Join(t.TempDir(), "a", "anchors.jsonl")
	l := openLog(t, dir, 10)
	recs := fill(t, l, 15) // Close signs 15
	l.Close()
	l = openAnchored(t, dir, anchors, 10)
	if rep := l.OpenReport(); !rep.OK() || rep.Anchors != 0 || rep.Unanchored != 15 {
		t.Errorf("open report %+v", rep)
	}
	set, err := ReadAnchorFile(anchors)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Anchors) != 2 || set.Anchors[0].Type != AnchorCheckpoint || set.Anchors[0].Seq != 15 ||
		!sameAnchor(set.Anchors[1].Anchor, HeadAnchor(recs[14])) {
		t.Errorf("anchors %+v", set.Anchors)
	}
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Unanchored != 0 || rep.Anchors != 2 {
		t.Errorf("report %+v, %v", rep, err)
	}
	for _, name := range []string{anchors, filepath.Dir(anchors)} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s mode %v", name, m)
		}
	}
}

func TestAnchorFileLines(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
	l := openAnchored(t, dir, anchors, 4)
	var recs []Record
	for i := range 9 {
		r, err := l.Append(ctx, testRecord(i))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := l.Close(); err != nil { // signs 9
		t.Fatal(err)
	}
	set, err := ReadAnchorFile(anchors)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range set.Anchors {
		got = append(got, string(a.Type[0])+strconv.FormatUint(a.Seq, 10))
	}
	want := []string{"h1", "h2", "h3", "h4", "c4", "h5", "h6", "h7", "h8", "c8", "h9", "c9"}
	if !slices.Equal(got, want) {
		t.Errorf("anchor lines %v, want %v", got, want)
	}
	if !sameAnchor(set.Anchors[5].Anchor, HeadAnchor(recs[4])) {
		t.Errorf("line 6 %+v, want %+v", set.Anchors[5], HeadAnchor(recs[4]))
	}
}

// A torn last line (power loss mid-write) is ended and marked when the
// file is reopened: it is not a problem, and the next line starts clean.
func TestAnchorFileTornLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
	l := openAnchored(t, dir, anchors, 10)
	fill(t, l, 5)
	l.Close()
	f, err := os.OpenFile(anchors, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"t":"head","seq":6,"ha`)
	f.Close()
	l = openAnchored(t, dir, anchors, 10)
	fill(t, l, 2)
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Records != 7 {
		t.Fatalf("report %+v, %v\n%s", rep, err, problemList(rep.Problems))
	}
	set, _ := ReadAnchorFile(anchors)
	if set.Torn != 1 || len(set.Bad) != 0 {
		t.Errorf("torn %d, bad %+v", set.Torn, set.Bad)
	}
}

// A missing anchor file at Verify time (deleted while the daemon runs) is
// a problem, not an error.
func TestVerifyAnchorFileGone(t *testing.T) {
	dir := t.TempDir()
	anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
	l := openAnchored(t, dir, anchors, 10)
	fill(t, l, 3)
	os.Remove(anchors)
	rep, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := summarize(rep.Problems); !slices.Equal(got, []found{{0, KindAnchorUnreadable}}) {
		t.Errorf("problems:\n%s", problemList(rep.Problems))
	}
}

// failingSink fails every anchor, as a full disk would.
type failingSink struct{ n int }

func (s *failingSink) Anchor(context.Context, Anchor) error {
	s.n++
	return errors.New("no space left on device")
}
func (s *failingSink) Close() error { return nil }

// A sink that fails does not fail the append (the record is committed) and
// is logged loudly.
func TestFailingSinkIsLogged(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	key := testKey(3)
	s := &failingSink{}
	l, err := Open(context.Background(), t.TempDir(), key, 2, WithSink(s), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(context.Background(), testRecord(1)); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1) // a head and a checkpoint
	if s.n != 3 || !strings.Contains(buf.String(), "AUDIT ANCHOR FAILED") || !strings.Contains(buf.String(), "no space left") {
		t.Errorf("%d anchors; log:\n%s", s.n, buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// Verify while appends go on: anchors are written after their commit and
// read before the snapshot, so a verification never mistakes an append in
// flight for a cut tail.
func TestVerifyAnchoredDuringAppends(t *testing.T) {
	ctx := context.Background()
	l := openAnchored(t, t.TempDir(), filepath.Join(t.TempDir(), "anchors.jsonl"), 7)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if _, err := l.Append(ctx, testRecord(g*25+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 20 {
		if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
			t.Errorf("Verify during appends: %v\n%s", err, problemList(rep.Problems))
		}
	}
	wg.Wait()
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Records != 100 || rep.Unanchored != 0 || rep.Anchors != 100+14 {
		t.Errorf("report %+v, err %v", rep, err)
	}
}
