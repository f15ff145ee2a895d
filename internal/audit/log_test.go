package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openLog(t testing.TB, dir string, every int) *Log {
	t.Helper()
	key, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), dir, key, every)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testRecord(i int) Record {
	return Record{
		User: fmt.Sprintf("user%d", i%3), Action: "vm.start", Object: fmt.Sprintf("vm/%d", i%5),
		Result: ResultOK, Source: "192.0.2.7:4000",
	}
}

// fill appends n records in one transaction, as n Appends would.
func fill(t testing.TB, l *Log, n int) []Record {
	t.Helper()
	in := make([]Record, n)
	for i := range in {
		in[i] = testRecord(i)
	}
	out, err := l.append(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawDB opens a second connection to the log's file, as an attacker with
// write access to the state directory would.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, DBFile)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestAppendAndVerify(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "audit")
	l := openLog(t, dir, 10)
	before := time.Now()
	var recs []Record
	for i := range 25 {
		r, err := l.Append(ctx, testRecord(i))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if recs[0].Seq != 1 || recs[0].Prev != GenesisPrev || recs[24].Seq != 25 || recs[24].Prev != recs[23].Hash {
		t.Errorf("chain: first %+v, last %+v", recs[0], recs[24])
	}
	if recs[0].Time.Before(before.Add(-time.Second)) || recs[0].Time.Location() != time.UTC {
		t.Errorf("Time = %v, want now in UTC", recs[0].Time)
	}
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Records != 25 || rep.Checkpoints != 2 {
		t.Errorf("report %+v\n%s", rep, problemList(rep.Problems))
	}
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 2 || cps[0].Seq != 10 || cps[0].Hash != recs[9].Hash || !cps[1].ValidSig(l.PublicKey()) {
		t.Errorf("checkpoints %+v", cps)
	}
	for _, name := range []string{DBFile, KeyFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, m)
		}
	}
}

// TestTamper edits the database behind the log's back, through a second
// connection, and checks that Verify names what was done and where. Each
// case verifies both with the live log, which remembers its head, and with
// a freshly opened one, which has only the checkpoints.
func TestTamper(t *testing.T) {
	otherKey := testKey(9)
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
		}, []found{{7, KindGap}}, nil},
		{"two rows swapped", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `UPDATE records SET seq = -1 WHERE seq = 5`)
			exec(t, db, `UPDATE records SET seq = 5 WHERE seq = 6`)
			exec(t, db, `UPDATE records SET seq = 6 WHERE seq = -1`)
		}, []found{{5, KindEdited}, {5, KindPrevMismatch}, {6, KindEdited}, {6, KindPrevMismatch}, {7, KindPrevMismatch}}, nil},
		{"tail truncated after a checkpoint", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `DELETE FROM records WHERE seq > 15`)
		}, []found{{16, KindTruncated}, {16, KindTruncated}}, []found{{16, KindTruncated}}},
		{"tail truncated with its checkpoints", func(t *testing.T, db *sql.DB, _ []Record) {
			exec(t, db, `DELETE FROM records WHERE seq > 15`)
			exec(t, db, `DELETE FROM checkpoints WHERE seq > 15`)
		}, []found{{16, KindTruncated}}, []found{}}, // the documented limit: only the live head sees it
		{"checkpoint forged with another key", func(t *testing.T, db *sql.DB, recs []Record) {
			c := SignCheckpoint(otherKey, 12, recs[11].Hash, time.Now())
			exec(t, db, `INSERT INTO checkpoints (seq, hash, time_ns, sig) VALUES (?, ?, ?, ?)`,
				12, c.Hash, c.Time.UnixNano(), c.Sig)
		}, []found{{12, KindCheckpointSig}}, nil},
		{"checkpoint re-pointed", func(t *testing.T, db *sql.DB, recs []Record) {
			exec(t, db, `UPDATE checkpoints SET hash = ? WHERE seq = 10`, recs[3].Hash)
		}, []found{{10, KindCheckpointSig}}, nil},
		{"tail rewritten with recomputed hashes", func(t *testing.T, db *sql.DB, recs []Record) {
			recs = slices.Clone(recs)
			recs[11].User = "mallory"
			rechain(recs, 11)
			for _, r := range recs[11:] {
				exec(t, db, `UPDATE records SET user = ?, prev = ?, hash = ? WHERE seq = ?`, r.User, r.Prev, r.Hash, r.Seq)
			}
		}, []found{{20, KindCheckpointMismatch}, {25, KindCheckpointMismatch}, {25, KindCheckpointMismatch}},
			[]found{{20, KindCheckpointMismatch}, {25, KindCheckpointMismatch}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			l := openLog(t, dir, 10)
			// Checkpoints at 10 and 20, and at 25 as Close would write.
			recs := fill(t, l, 25)
			if _, err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			tt.tamper(t, rawDB(t, dir), recs)
			check := func(l *Log, want []found) {
				t.Helper()
				rep, err := l.Verify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := summarize(rep.Problems); !slices.Equal(got, want) {
					t.Errorf("problems:\n%swant %v", problemList(rep.Problems), want)
				}
			}
			check(l, tt.live)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			cold := tt.cold
			if cold == nil {
				cold = tt.live
			}
			check(openLog(t, dir, 10), cold)
		})
	}
}

func TestReopenContinuesChain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, 4)
	first := fill(t, l, 5) // checkpoint at 4, and at 5 on Close
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testRecord(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	l = openLog(t, dir, 4)
	r, err := l.Append(ctx, testRecord(5))
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 6 || r.Prev != first[4].Hash {
		t.Errorf("after reopen: seq %d prev %.16s, want 6 and %.16s", r.Seq, r.Prev, first[4].Hash)
	}
	fill(t, l, 4) // 7..10; the next checkpoint is 4 after the one at 5
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cps, _ := l.Checkpoints(ctx)
	var seqs []uint64
	for _, c := range cps {
		seqs = append(seqs, c.Seq)
	}
	if !rep.OK() || rep.Records != 10 || !slices.Equal(seqs, []uint64{4, 5, 9}) {
		t.Errorf("report %+v, checkpoints at %v\n%s", rep, seqs, problemList(rep.Problems))
	}
}

func TestOpenRefusesOtherKey(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 10)
	fill(t, l, 3)
	l.Close()
	_, err := Open(context.Background(), dir, testKey(7), 10)
	if !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open with another key: %v, want ErrKeyMismatch", err)
	}
	if _, err := Open(context.Background(), dir, testKey(7)[:10], 10); err == nil {
		t.Error("Open with a short key succeeded")
	}
}

func TestAppendNormalizesAndRefuses(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 10)
	if _, err := l.Append(ctx, Record{User: "x"}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("empty action: %v", err)
	}
	r, err := l.Append(ctx, Record{User: "ev\x1b[2Kil", Action: ActionLogin, Result: ResultFailed,
		Source: SourceUnix, Detail: strings.Repeat("d", 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 1 { // the refused record consumed no sequence number
		t.Errorf("Seq = %d, want 1", r.Seq)
	}
	got, err := l.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != r || got[0].User != `ev\x1b[2Kil` || len(got[0].Detail) != MaxDetailLen {
		t.Errorf("stored %+v", got)
	}
}

// A client that hangs up must not erase the record of what it did.
func TestAppendIgnoresCancellation(t *testing.T) {
	l := openLog(t, t.TempDir(), 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, testRecord(0)); err != nil {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
}

func TestConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 7)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := l.Append(ctx, testRecord(g*10+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A verification running alongside sees a consistent snapshot.
	for range 5 {
		if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
			t.Errorf("Verify during appends: %v\n%s", err, problemList(rep.Problems))
		}
	}
	wg.Wait()
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Records != 80 || rep.Checkpoints != 11 {
		t.Errorf("report %+v, err %v", rep, err)
	}
}
