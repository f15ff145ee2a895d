package audit

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Limits on List. ExportJSONL streams and has no cap.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Filter selects records. Zero fields select everything; the fields that are
// set must all match.
type Filter struct {
	User   string    // exact match
	Object string    // exact match
	Since  time.Time // Time >= Since
	Until  time.Time // Time < Until
	After  uint64    // Seq > After: the cursor for paging oldest first
	Before uint64    // Seq < Before: the cursor for paging newest first
	// Desc makes List return the newest records first. Exports ignore it:
	// they are in ascending order, as a verifier reads them.
	Desc bool
	// Limit is the most records returned. For List, zero means
	// DefaultListLimit and more than MaxListLimit means MaxListLimit; for
	// ExportJSONL zero means no limit.
	Limit int
}

const recordColumns = `seq, time_ns, user, action, object, result, source, detail, prev, hash`

// query returns the SELECT for f, in ascending Seq order (descending with
// Desc), with at most limit rows (none when limit is zero or less).
func (f Filter) query(limit int) (string, []any) {
	var where []string
	var args []any
	if f.User != "" {
		where, args = append(where, "user = ?"), append(args, f.User)
	}
	if f.Object != "" {
		where, args = append(where, "object = ?"), append(args, f.Object)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time_ns >= ?"), append(args, clampNanos(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time_ns < ?"), append(args, clampNanos(f.Until))
	}
	if f.After > 0 {
		where, args = append(where, "seq > ?"), append(args, int64(min(f.After, 1<<63-1)))
	}
	if f.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, int64(min(f.Before, 1<<63-1)))
	}
	q := `SELECT ` + recordColumns + ` FROM records`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY seq`
	if f.Desc {
		q += ` DESC`
	}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	return q, args
}

// clampNanos is t in Unix nanoseconds, clamped to what int64 holds, so a
// bound far in the past or future still means "no bound" rather than
// wrapping around.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return -1 << 63
	case t.After(maxTime):
		return 1<<63 - 1
	}
	return t.UnixNano()
}

// List returns the records f selects, in ascending Seq order, or newest
// first with f.Desc.
func (l *Log) List(ctx context.Context, f Filter) ([]Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var out []Record
	err := l.scan(ctx, f, limit, func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// ExportJSONL writes the records f selects to w, one JSON object per line
// in ascending Seq order, with the fields of Record. An unfiltered export
// can be checked anywhere with VerifyRecords and the log's checkpoints and
// public key. The export reads one snapshot of the log while appends go on.
func (l *Log) ExportJSONL(ctx context.Context, w io.Writer, f Filter) error {
	f.Desc = false
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // fields are already escaped; keep them readable
	return l.scan(ctx, f, f.Limit, func(r Record) error {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("audit: export seq %d: %w", r.Seq, err)
		}
		return nil
	})
}

func (l *Log) scan(ctx context.Context, f Filter, limit int, fn func(Record) error) error {
	q, args := f.query(limit)
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit: query records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: query records: %w", err)
	}
	return nil
}

func scanRecord(rows *sql.Rows) (Record, error) {
	var r Record
	var ns int64
	err := rows.Scan(&r.Seq, &ns, &r.User, &r.Action, &r.Object, &r.Result, &r.Source, &r.Detail, &r.Prev, &r.Hash)
	if err != nil {
		return Record{}, fmt.Errorf("audit: read record: %w", err)
	}
	r.Time = time.Unix(0, ns).UTC()
	return r, nil
}

// Checkpoints returns every stored checkpoint in ascending Seq order.
func (l *Log) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	return readCheckpoints(ctx, l.db)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readCheckpoints(ctx context.Context, q querier) ([]Checkpoint, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, hash, time_ns, sig FROM checkpoints ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("audit: query checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		var ns int64
		if err := rows.Scan(&c.Seq, &c.Hash, &ns, &c.Sig); err != nil {
			return nil, fmt.Errorf("audit: read checkpoint: %w", err)
		}
		c.Time = time.Unix(0, ns).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: query checkpoints: %w", err)
	}
	return out, nil
}

// Report is the outcome of Log.Verify.
type Report struct {
	Records     int       // records read
	Checkpoints int       // checkpoints read, valid or not
	AnchorFiles []string  // the anchor files compared
	Anchors     int       // anchors compared (see AnchorReport)
	Unanchored  uint64    // records after the newest anchor: chain-protected only
	Problems    []Problem // ordered by Seq; empty when the log is intact
}

// OK reports whether the log verified without problems.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks the whole log, in one snapshot, against its hashes, its
// chain, its checkpoints (with this log's public key), its anchor files and
// the head this process last appended. An error means the log could not be
// read; what is wrong with the log is in the Report, and so is an anchor
// file that cannot be read. Memory use is proportional to the number of
// checkpoints and anchors, not records.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	l.mu.Lock()
	head, closed := l.chain, l.closed
	l.mu.Unlock()
	if closed {
		return Report{}, ErrClosed
	}
	return l.verify(ctx, head)
}

// verify checks the log against head, a head this process appended (zero
// for none). The anchor files are read before the database snapshot
// starts: anchors are written after their commit, so every anchor read is
// of a record the snapshot holds, and appends going on meanwhile cannot
// look like a cut tail.
func (l *Log) verify(ctx context.Context, head Chain) (Report, error) {
	rep := Report{}
	sets := make([]AnchorSet, 0, len(l.files))
	var unreadable []Problem
	for _, f := range l.files {
		rep.AnchorFiles = append(rep.AnchorFiles, f.Path())
		set, err := ReadAnchorFile(f.Path())
		if err != nil {
			unreadable = append(unreadable, Problem{Index: -1, Kind: KindAnchorUnreadable, Detail: err.Error()})
			continue
		}
		sets = append(sets, set)
	}
	// The head is read before the snapshot starts and commits happen before
	// the head moves, so the snapshot holds at least the head.
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer tx.Rollback()
	cps, err := readCheckpoints(ctx, tx)
	if err != nil {
		return Report{}, err
	}
	v := NewVerifier(l.PublicKey(), cps)
	v.expectHead(head.Seq, head.Hash)
	ac := NewAnchorCheck(l.PublicKey(), sets, l.every)
	ac.Settled(head.Seq)
	rows, err := tx.QueryContext(ctx, `SELECT `+recordColumns+` FROM records ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return Report{}, err
		}
		v.Add(r)
		ac.Add(r)
		n++
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	ar := ac.Report()
	rep.Records, rep.Checkpoints, rep.Anchors, rep.Unanchored = n, len(cps), ar.Anchors, ar.Unanchored
	rep.Problems = append(append(unreadable, v.Problems()...), ar.Problems...)
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int { return cmp.Compare(a.Seq, b.Seq) })
	return rep, nil
}
