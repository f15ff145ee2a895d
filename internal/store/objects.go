package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Object is one stored JSON document: a switch object (network, security
// group, IP set) or an access-control object (user, role, permission, token).
type Object struct {
	Kind, Name string
	Spec       []byte // JSON
	Created    time.Time
	Updated    time.Time
}

// CreateObject inserts a new object; ErrExists if the name is taken.
func (s *Store) CreateObject(ctx context.Context, kind, name string, spec []byte) error {
	now := time.Now().UTC().UnixNano()
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO objects (kind, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT(kind, name) DO NOTHING`, kind, name, string(spec), now, now)
	if err != nil {
		return fmt.Errorf("store: create %s %q: %w", kind, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", kind, name, ErrExists)
	}
	return nil
}

// UpdateObject replaces an existing object's spec; ErrNotFound if absent.
func (s *Store) UpdateObject(ctx context.Context, kind, name string, spec []byte) error {
	res, err := s.db.ExecContext(ctx, `UPDATE objects SET spec = ?, updated_at = ? WHERE kind = ? AND name = ?`,
		string(spec), time.Now().UTC().UnixNano(), kind, name)
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	return nil
}

// GetObject returns one object.
func (s *Store) GetObject(ctx context.Context, kind, name string) (*Object, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT kind, name, spec, created_at, updated_at FROM objects WHERE kind = ? AND name = ?`, kind, name)
	o, err := scanObject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	return o, err
}

// ListObjects returns every object of a kind ordered by name.
func (s *Store) ListObjects(ctx context.Context, kind string) ([]*Object, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT kind, name, spec, created_at, updated_at FROM objects WHERE kind = ? ORDER BY name`, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Object
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteObject removes an object; ErrNotFound if absent.
func (s *Store) DeleteObject(ctx context.Context, kind, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM objects WHERE kind = ? AND name = ?`, kind, name)
	if err != nil {
		return fmt.Errorf("store: delete %s %q: %w", kind, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	return nil
}

func scanObject(r scanner) (*Object, error) {
	var (
		o                Object
		spec             string
		created, updated int64
	)
	if err := r.Scan(&o.Kind, &o.Name, &spec, &created, &updated); err != nil {
		return nil, err
	}
	o.Spec = []byte(spec)
	o.Created = time.Unix(0, created).UTC()
	o.Updated = time.Unix(0, updated).UTC()
	return &o, nil
}

// ObjectLister is what LoadObjects reads from.
type ObjectLister interface {
	ListObjects(ctx context.Context, kind string) ([]*Object, error)
}

// LoadObjects decodes every stored object of a kind into T and hands each to
// add; a corrupt document is an error naming it.
func LoadObjects[T any](ctx context.Context, st ObjectLister, kind string, add func(T)) error {
	objs, err := st.ListObjects(ctx, kind)
	if err != nil {
		return err
	}
	for _, o := range objs {
		var v T
		if err := json.Unmarshal(o.Spec, &v); err != nil {
			return fmt.Errorf("stored %s %q is corrupt: %w", kind, o.Name, err)
		}
		add(v)
	}
	return nil
}
