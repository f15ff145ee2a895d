// Package store is Bulwark's embedded database: SQLite through the pure-Go
// modernc.org/sqlite driver, in WAL mode with synchronous=FULL, so that a
// committed VM definition survives kill -9 of the daemon at any moment.
//
// The schema evolves through numbered migrations (migrations.go), each applied
// once in its own transaction and recorded in schema_migrations.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when a named object does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating an object whose name is taken.
var ErrExists = errors.New("already exists")

// Store is the daemon's database handle. It is safe for concurrent use.
type Store struct {
	db *sql.DB

	// The VM list is kept decoded between changes: listing 10,000 VMs from
	// SQLite and decoding their specs costs tens of milliseconds, and the
	// list is read far more often than VMs change. Every write bumps gen
	// after it commits; a listing caches what it read only if no write
	// happened meanwhile, so the cache never holds a state older than a
	// committed write.
	mu      sync.Mutex
	gen     uint64
	cache   []*vm.VM
	cacheOK bool
}

// changed drops the cached VM list; writes call it after their statement.
func (s *Store) changed() {
	s.mu.Lock()
	s.gen++
	s.cacheOK, s.cache = false, nil
	s.mu.Unlock()
}

// cloneVMs copies VMs deeply enough that callers may change what they get.
func cloneVMs(in []*vm.VM) []*vm.VM {
	out := make([]*vm.VM, len(in))
	for i, v := range in {
		c := *v
		c.Spec.Disks = slices.Clone(v.Spec.Disks)
		c.Spec.NICs = slices.Clone(v.Spec.NICs)
		for j := range c.Spec.NICs {
			c.Spec.NICs[j].Groups = slices.Clone(c.Spec.NICs[j].Groups)
		}
		if v.Spec.Console != nil {
			cp := *v.Spec.Console
			c.Spec.Console = &cp
		}
		out[i] = &c
	}
	return out
}

// Open opens (creating if needed) the database in dir and applies migrations.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: state dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "bulwark.db")
	// Create the file 0600 before SQLite does: SQLite gives its -wal and
	// -shm files, which hold the same data, the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	err = f.Chmod(0o600) // an older binary may have left it 0644
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("store: chmod %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// One writer connection: SQLite serialises writers anyway, and a single
	// connection avoids SQLITE_BUSY between our own goroutines.
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: chmod %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

const vmColumns = `id, name, spec, state, reason, pid, start_time, accel, accel_reason, run_dir, uid, created_at, updated_at`

// CreateVM inserts a new VM in state defined and returns it with its id.
func (s *Store) CreateVM(ctx context.Context, spec vm.Spec) (*vm.VM, error) {
	defer s.changed()
	blob, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO vms (name, spec, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT(name) DO NOTHING`,
		spec.Name, string(blob), string(vm.Defined), now.UnixNano(), now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("store: create vm %q: %w", spec.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("vm %q: %w", spec.Name, ErrExists)
	}
	return s.GetVM(ctx, spec.Name)
}

// GetVM returns one VM by name.
func (s *Store) GetVM(ctx context.Context, name string) (*vm.VM, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE name = ?`, name)
	v, err := scanVM(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	return v, err
}

// ListVMs returns every VM ordered by name.
func (s *Store) ListVMs(ctx context.Context) ([]*vm.VM, error) {
	s.mu.Lock()
	if s.cacheOK {
		out := cloneVMs(s.cache)
		s.mu.Unlock()
		return out, nil
	}
	gen := s.gen
	s.mu.Unlock()
	out, err := s.listVMs(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.gen == gen {
		s.cache, s.cacheOK = cloneVMs(out), true
	}
	s.mu.Unlock()
	return out, nil
}

func (s *Store) listVMs(ctx context.Context) ([]*vm.VM, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+vmColumns+` FROM vms ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*vm.VM
	for rows.Next() {
		v, err := scanVM(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetState records a state change with its reason and runtime record.
func (s *Store) SetState(ctx context.Context, name string, st vm.State, reason string, rt vm.Runtime) error {
	defer s.changed()
	res, err := s.db.ExecContext(ctx,
		`UPDATE vms SET state = ?, reason = ?, pid = ?, start_time = ?, accel = ?, accel_reason = ?,
		 run_dir = ?, uid = ?, updated_at = ? WHERE name = ?`,
		string(st), reason, rt.PID, int64(rt.StartTime), rt.Accel, rt.AccelWhy, rt.RunDir, rt.UID,
		time.Now().UTC().UnixNano(), name)
	if err != nil {
		return fmt.Errorf("store: set state of vm %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	return nil
}

// SetSpec replaces a VM's stored spec (the caller validated it).
func (s *Store) SetSpec(ctx context.Context, name string, spec vm.Spec) error {
	defer s.changed()
	blob, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE vms SET spec = ?, updated_at = ? WHERE name = ?`,
		string(blob), time.Now().UTC().UnixNano(), name)
	if err != nil {
		return fmt.Errorf("store: set spec of vm %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	return nil
}

// DeleteVM removes a VM record.
func (s *Store) DeleteVM(ctx context.Context, name string) error {
	defer s.changed()
	res, err := s.db.ExecContext(ctx, `DELETE FROM vms WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("store: delete vm %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanVM(r scanner) (*vm.VM, error) {
	var (
		v                 vm.VM
		name, blob, state string
		startTime         int64
		created, updated  int64
	)
	err := r.Scan(&v.Runtime.ID, &name, &blob, &state, &v.Reason, &v.Runtime.PID, &startTime,
		&v.Runtime.Accel, &v.Runtime.AccelWhy, &v.Runtime.RunDir, &v.Runtime.UID, &created, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(blob), &v.Spec); err != nil {
		return nil, fmt.Errorf("store: vm %q: corrupt spec: %w", name, err)
	}
	v.State = vm.State(state)
	if !v.State.Valid() {
		return nil, fmt.Errorf("store: vm %q: unknown state %q", name, state)
	}
	v.Runtime.StartTime = uint64(startTime)
	v.Created = time.Unix(0, created).UTC()
	v.Updated = time.Unix(0, updated).UTC()
	return &v, nil
}
