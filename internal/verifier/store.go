package verifier

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-project/bulwark/internal/attest"
)

// keepVerdicts is how many verdicts the store keeps per host: the history
// of changes a user can read back with `verifier status --history`.
const keepVerdicts = 200

// ErrNotFound is returned for a host or policy that does not exist.
var ErrNotFound = errors.New("not found")

// Host is a registered host.
type Host struct {
	Name string `json:"name"`
	// URL is where its daemon's API is: "unix:/run/bulwark/bulwark.sock"
	// or "https://HOST:PORT".
	URL string `json:"url"`
	// CA is the PEM CA certificate that signs the daemon's HTTPS
	// certificate (empty: system roots, or a unix socket).
	CA string `json:"ca,omitempty"`
	// Token is the API token the verifier uses (Attestation.Read and
	// Attestation.Config on /attestation). Never printed.
	Token string `json:"-"`
	// Keys are the TPM keys bound at registration: the AK was proven to
	// live in the TPM of this EK (MakeCredential/ActivateCredential).
	Keys         attest.Keys `json:"keys"`
	RegisteredAt time.Time   `json:"registered_at"`
}

// store is the verifier's own SQLite database.
type store struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS hosts (
	name TEXT PRIMARY KEY,
	url TEXT NOT NULL,
	ca TEXT NOT NULL,
	token TEXT NOT NULL,
	keys TEXT NOT NULL,
	registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
	version INTEGER PRIMARY KEY,
	doc BLOB NOT NULL,
	created_at TEXT NOT NULL,
	actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	host TEXT NOT NULL,
	time TEXT NOT NULL,
	status TEXT NOT NULL,
	doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_host ON verdicts(host, id);
`

func openStore(ctx context.Context, dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "verifier.db")
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("verifier store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) Close() error { return s.db.Close() }

func (s *store) putHost(ctx context.Context, h Host) error {
	keys, err := json.Marshal(h.Keys)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO hosts(name, url, ca, token, keys, registered_at) VALUES(?,?,?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET url=excluded.url, ca=excluded.ca, token=excluded.token, keys=excluded.keys, registered_at=excluded.registered_at`,
		h.Name, h.URL, h.CA, h.Token, string(keys), h.RegisteredAt.UTC().Format(time.RFC3339Nano))
	return err
}

func (s *store) hosts(ctx context.Context) ([]Host, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, url, ca, token, keys, registered_at FROM hosts ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		var h Host
		var keys, at string
		if err := rows.Scan(&h.Name, &h.URL, &h.CA, &h.Token, &keys, &at); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(keys), &h.Keys); err != nil {
			return nil, fmt.Errorf("host %s: stored keys: %w", h.Name, err)
		}
		h.RegisteredAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *store) deleteHost(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM hosts WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("host %q: %w", name, ErrNotFound)
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM verdicts WHERE host = ?`, name)
	return err
}

// addPolicy stores a policy document under its version, which must be
// greater than every stored version.
func (s *store) addPolicy(ctx context.Context, version int, doc []byte, actor string) error {
	var cur sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM policies`).Scan(&cur); err != nil {
		return err
	}
	if cur.Valid && int64(version) <= cur.Int64 {
		return fmt.Errorf("%w: policy version %d is not greater than the current version %d", ErrStaleVersion, version, cur.Int64)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO policies(version, doc, created_at, actor) VALUES(?,?,?,?)`,
		version, doc, time.Now().UTC().Format(time.RFC3339Nano), actor)
	return err
}

// ErrStaleVersion is returned for a policy whose version does not increase.
var ErrStaleVersion = errors.New("stale policy version")

// latestPolicy returns the newest policy document, or ErrNotFound.
func (s *store) latestPolicy(ctx context.Context) (int, []byte, error) {
	var v int
	var doc []byte
	err := s.db.QueryRowContext(ctx, `SELECT version, doc FROM policies ORDER BY version DESC LIMIT 1`).Scan(&v, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("no policy: %w", ErrNotFound)
	}
	return v, doc, err
}

func (s *store) addVerdict(ctx context.Context, v attest.Verdict) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO verdicts(host, time, status, doc) VALUES(?,?,?,?)`,
		v.Host, v.Time.UTC().Format(time.RFC3339Nano), string(v.Status), string(doc)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM verdicts WHERE host = ? AND id NOT IN
		(SELECT id FROM verdicts WHERE host = ? ORDER BY id DESC LIMIT ?)`, v.Host, v.Host, keepVerdicts); err != nil {
		return err
	}
	return tx.Commit()
}

// verdicts returns up to n of the host's stored verdicts, newest first.
func (s *store) verdicts(ctx context.Context, host string, n int) ([]attest.Verdict, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM verdicts WHERE host = ? ORDER BY id DESC LIMIT ?`, host, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []attest.Verdict
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var v attest.Verdict
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
