package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DBFile is the name of the log's database in its directory.
const DBFile = "audit.db"

// DefaultCheckpointEvery is how many records pass between checkpoints when
// Open is given zero or less. A checkpoint costs one signature and one row
// in the append's own transaction.
const DefaultCheckpointEvery = 100

// schemaVersion is the PRAGMA user_version this code writes and reads.
const schemaVersion = 1

const schema = `
CREATE TABLE records (
	seq     INTEGER PRIMARY KEY, -- from 1, no gaps; the rowid
	time_ns INTEGER NOT NULL,    -- Unix nanoseconds, UTC
	user    TEXT NOT NULL,
	action  TEXT NOT NULL,
	object  TEXT NOT NULL,
	result  TEXT NOT NULL,
	source  TEXT NOT NULL,
	detail  TEXT NOT NULL,
	prev    TEXT NOT NULL,
	hash    TEXT NOT NULL
);
CREATE INDEX records_user ON records(user, seq);
CREATE INDEX records_object ON records(object, seq);
CREATE INDEX records_time ON records(time_ns);
CREATE TABLE checkpoints (
	seq     INTEGER PRIMARY KEY, -- the record it covers
	hash    TEXT NOT NULL,
	time_ns INTEGER NOT NULL,
	sig     BLOB NOT NULL
);
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
PRAGMA user_version = 1;
`

// ErrClosed is returned by a Log after Close.
var ErrClosed = errors.New("audit: log closed")

// ErrKeyMismatch is returned by Open when the key is not the one the log's
// checkpoints were signed with: a lost and regenerated audit.key, or the
// wrong directory. Refusing keeps the log from mixing keys silently.
var ErrKeyMismatch = errors.New("audit: signing key does not match the log")

// ErrDamaged is returned by Checkpoint and Close of a log that failed
// verification when it was opened: signing a checkpoint over a rewritten
// chain would make the forgery verify, so such a log appends records but
// signs nothing. Damage names what was found.
var ErrDamaged = errors.New("audit: log failed verification when opened; refusing to sign checkpoints")

// Log is an audit log in an SQLite database. Appends are serialised; reads
// (List, ExportJSONL, Verify) run on their own connections and never hold up
// an Append. It is safe for concurrent use.
type Log struct {
	db    *sql.DB
	key   ed25519.PrivateKey
	every uint64
	now   func() time.Time
	log   *slog.Logger
	files []*AnchorFile // also in sinks; read back by Verify
	sinks []Sink        // files first, then remote sinks
	// opened is the verification made by Open; damage its problems, which
	// stop the log from signing for as long as it is open.
	opened Report
	damage []Problem

	mu     sync.Mutex // serialises Append, Checkpoint and Close
	chain  Chain      // head of the log as committed
	lastCP Checkpoint // the newest checkpoint; Seq 0 for none
	closed bool
}

// Option configures a Log at Open.
type Option func(*Log)

// WithAnchorFile makes the log append every record head and checkpoint to
// f, check itself against f at Open and in Verify, and close f on Close.
// f fsyncs at least every checkpointEvery lines.
func WithAnchorFile(f *AnchorFile) Option {
	return func(l *Log) {
		l.files = append(l.files, f)
		l.sinks = append(l.sinks, f)
	}
}

// WithSink makes the log hand every anchor to s, after the file sinks,
// and close s on Close.
func WithSink(s Sink) Option { return func(l *Log) { l.sinks = append(l.sinks, s) } }

// WithLogger names where the log reports anchors it failed to write
// (slog.Default otherwise).
func WithLogger(log *slog.Logger) Option { return func(l *Log) { l.log = log } }

// Open opens (creating if needed) the log in dir/audit.db, signing
// checkpoints with key every checkpointEvery records (DefaultCheckpointEvery
// when zero or less). The key is usually LoadOrCreateKey(dir).
//
// Open verifies the whole log, its chain, checkpoints and anchor files
// (OpenReport has the result). A log with problems is opened all the same,
// so that it can go on recording, but it signs no checkpoint while it is
// open (ErrDamaged): Damage lists what was found and the caller decides
// whether to run on it. An intact log whose head is not anchored yet (a
// new anchor file, or a crash between a commit and its anchor) has its
// head anchored at once. The sinks given in opts belong to the Log from
// here on, even when Open fails.
func Open(ctx context.Context, dir string, key ed25519.PrivateKey, checkpointEvery int, opts ...Option) (*Log, error) {
	l := &Log{key: key, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(l)
	}
	if err := l.open(ctx, dir, checkpointEvery); err != nil {
		l.closeSinks()
		return nil, err
	}
	return l, nil
}

func (l *Log) open(ctx context.Context, dir string, checkpointEvery int) error {
	if len(l.key) != ed25519.PrivateKeySize {
		return fmt.Errorf("audit: signing key is %d bytes, want %d", len(l.key), ed25519.PrivateKeySize)
	}
	if checkpointEvery <= 0 {
		checkpointEvery = DefaultCheckpointEvery
	}
	l.every = uint64(checkpointEvery)
	for _, f := range l.files {
		f.syncEvery = checkpointEvery
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("audit: dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, DBFile)
	// Create the file 0600 before SQLite does: SQLite gives its -wal and
	// -shm files, which hold the same data, the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: create %s: %w", path, err)
	}
	err = f.Chmod(0o600)
	f.Close()
	if err != nil {
		return fmt.Errorf("audit: chmod %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", path, err)
	}
	// Writes are serialised by Log.mu, so several connections never contend
	// as writers; the extra ones let a long export or verification read a
	// WAL snapshot while appends go on.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	l.db = db
	if err := l.init(ctx, path); err != nil {
		db.Close()
		return err
	}
	if err := l.openCheck(ctx); err != nil {
		db.Close()
		return err
	}
	return nil
}

// openCheck verifies the log as Open found it and anchors an unanchored
// head of an intact log. No head is trusted yet: this process has appended
// nothing.
func (l *Log) openCheck(ctx context.Context) error {
	rep, err := l.verify(ctx, Chain{})
	if err != nil {
		return err
	}
	l.opened, l.damage = rep, rep.Problems
	if len(l.damage) > 0 || rep.Unanchored == 0 || len(l.files) == 0 {
		return nil
	}
	for _, f := range l.files {
		if rep.Anchors == 0 && l.lastCP.Seq > 0 {
			// A new anchor file starts with the newest signed statement.
			if err := f.Anchor(ctx, CheckpointAnchor(l.lastCP)); err != nil {
				return err
			}
		}
		if err := f.Anchor(ctx, Anchor{Type: AnchorHead, Seq: l.chain.Seq, Hash: l.chain.Hash}); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// OpenReport is the verification Open made of the log as it found it.
func (l *Log) OpenReport() Report { return l.opened }

// Damage is what Open's verification found wrong; while it is non-empty
// the log signs no checkpoints (ErrDamaged).
func (l *Log) Damage() []Problem { return l.damage }

// damagedErr is ErrDamaged with what was found and what was not signed.
func (l *Log) damagedErr() error {
	return fmt.Errorf("%w: %d problem(s), first %s; seq %d stays unsigned", ErrDamaged, len(l.damage), l.damage[0], l.chain.Seq)
}

// init creates or checks the schema and the key, and loads the head.
func (l *Log) init(ctx context.Context, path string) error {
	var v int
	if err := l.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("audit: %s: schema version: %w", path, err)
	}
	pub := l.key.Public().(ed25519.PublicKey)
	switch v {
	case 0:
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("audit: %s: %w", path, err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("audit: %s: create schema: %w", path, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES ('public_key', ?)`, []byte(pub)); err != nil {
			return fmt.Errorf("audit: %s: store public key: %w", path, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("audit: %s: create schema: %w", path, err)
		}
	case schemaVersion:
		var stored []byte
		err := l.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'public_key'`).Scan(&stored)
		if err != nil {
			return fmt.Errorf("audit: %s: public key: %w", path, err)
		}
		if !bytes.Equal(stored, pub) {
			return fmt.Errorf("%w: %s was signed by %x, the key given is %x", ErrKeyMismatch, path, stored, []byte(pub))
		}
	default:
		return fmt.Errorf("audit: %s: schema version %d is newer than this binary's %d", path, v, schemaVersion)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("audit: chmod %s: %w", path, err)
	}
	err := l.db.QueryRowContext(ctx, `SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1`).
		Scan(&l.chain.Seq, &l.chain.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("audit: %s: read head: %w", path, err)
	}
	var ns int64
	c := &l.lastCP
	err = l.db.QueryRowContext(ctx, `SELECT seq, hash, time_ns, sig FROM checkpoints ORDER BY seq DESC LIMIT 1`).
		Scan(&c.Seq, &c.Hash, &ns, &c.Sig)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		l.lastCP = Checkpoint{}
	case err != nil:
		return fmt.Errorf("audit: %s: read checkpoints: %w", path, err)
	default:
		c.Time = time.Unix(0, ns).UTC()
	}
	return nil
}

// PublicKey returns the key that verifies this log's checkpoints; publish it
// to whoever verifies exports.
func (l *Log) PublicKey() ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }

// Append stores r as the next record and returns it with Seq, Time, Prev
// and Hash set. r is first passed through Normalize; a zero Time becomes
// the current time. When Append returns nil the record is committed and
// fsynced; when it returns an error nothing was stored and the caller must
// refuse the action it was recording.
//
// Append ignores ctx's cancellation (it keeps ctx's values): an action's
// record must not depend on whether its client stayed connected. SQLite's
// busy timeout bounds how long it can wait.
func (l *Log) Append(ctx context.Context, r Record) (Record, error) {
	out, err := l.append(ctx, []Record{r})
	if err != nil {
		return Record{}, err
	}
	return out[0], nil
}

// append stores recs in one transaction, all or none. Append is the only
// caller outside tests, which use it to build large logs quickly.
func (l *Log) append(ctx context.Context, recs []Record) ([]Record, error) {
	out := make([]Record, len(recs))
	for i, r := range recs {
		var err error
		if out[i], err = Normalize(r); err != nil {
			return nil, err
		}
	}
	ctx = context.WithoutCancel(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	next, lastCP := l.chain, l.lastCP // adopted only after the commit
	var cps []Checkpoint              // signed in this transaction
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("audit: append seq %d: %w", next.Seq+1, err)
	}
	defer tx.Rollback()
	for i := range out {
		r := &out[i]
		if r.Time.IsZero() {
			r.Time = l.now() // under the lock, so that Seq order is time order
		}
		*r = next.Next(*r)
		_, err = tx.ExecContext(ctx,
			`INSERT INTO records (seq, time_ns, user, action, object, result, source, detail, prev, hash)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(r.Seq), r.Time.UnixNano(), r.User, r.Action, r.Object, r.Result, r.Source, r.Detail, r.Prev, r.Hash)
		if err != nil {
			return nil, fmt.Errorf("audit: append seq %d: %w", r.Seq, err)
		}
		// Written as a sum so that a log whose newest checkpoint lies beyond
		// its head (a truncated log) does not wrap around. A damaged log
		// signs nothing.
		if r.Seq >= lastCP.Seq+l.every && len(l.damage) == 0 {
			if lastCP, err = l.insertCheckpointLocked(ctx, tx, r.Seq, r.Hash); err != nil {
				return nil, err
			}
			cps = append(cps, lastCP)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("audit: append seq %d: commit: %w", next.Seq, err)
	}
	l.chain, l.lastCP = next, lastCP
	if len(l.sinks) > 0 {
		for _, r := range out {
			l.anchorLocked(ctx, HeadAnchor(r))
			for len(cps) > 0 && cps[0].Seq == r.Seq {
				l.anchorLocked(ctx, CheckpointAnchor(cps[0]))
				cps = cps[1:]
			}
		}
	}
	return out, nil
}

// anchorLocked hands a to every sink. A sink that fails is logged: the
// record is committed, and the failure shows up as an unanchored tail or a
// missing checkpoint when the log is next verified.
func (l *Log) anchorLocked(ctx context.Context, a Anchor) {
	for _, s := range l.sinks {
		if err := s.Anchor(ctx, a); err != nil {
			l.log.Error("AUDIT ANCHOR FAILED: record stored but not anchored", "seq", a.Seq, "type", string(a.Type), "err", err)
		}
	}
}

// Checkpoint signs and stores a checkpoint for the newest record, unless
// one already covers it, and returns the newest checkpoint. It returns a
// zero Checkpoint for an empty log. Call it before shipping a copy of the
// log elsewhere; Close calls it too. A log found damaged at Open returns
// ErrDamaged: it cannot vouch for its head.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Checkpoint{}, ErrClosed
	}
	if len(l.damage) > 0 {
		return l.lastCP, l.damagedErr()
	}
	err := l.checkpointLocked(ctx)
	return l.lastCP, err
}

func (l *Log) checkpointLocked(ctx context.Context) error {
	if l.chain.Seq == 0 || l.lastCP.Seq >= l.chain.Seq {
		return nil
	}
	if len(l.damage) > 0 {
		return l.damagedErr()
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: checkpoint seq %d: %w", l.chain.Seq, err)
	}
	defer tx.Rollback()
	c, err := l.insertCheckpointLocked(ctx, tx, l.chain.Seq, l.chain.Hash)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: checkpoint seq %d: commit: %w", c.Seq, err)
	}
	l.lastCP = c
	l.anchorLocked(ctx, CheckpointAnchor(c))
	return nil
}

func (l *Log) insertCheckpointLocked(ctx context.Context, tx *sql.Tx, seq uint64, hash string) (Checkpoint, error) {
	c := SignCheckpoint(l.key, seq, hash, l.now())
	_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (seq, hash, time_ns, sig) VALUES (?, ?, ?, ?)`,
		int64(c.Seq), c.Hash, c.Time.UnixNano(), c.Sig)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint seq %d: %w", seq, err)
	}
	return c, nil
}

// Close writes a checkpoint for the newest record, if it has none, and
// closes the database and the sinks. The log is closed even when the
// checkpoint fails; a damaged log returns ErrDamaged rather than sign.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.checkpointLocked(context.Background())
	return errors.Join(err, l.closeSinks(), l.db.Close())
}

func (l *Log) closeSinks() error {
	var errs []error
	for _, s := range l.sinks {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
