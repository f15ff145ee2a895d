package store

import (
	"context"
	"fmt"
)

// migrations are applied in order; a migration is never edited once released,
// a change is a new entry. Index i holds version i+1.
var migrations = []string{
	// 1: VMs. spec is the JSON of vm.Spec; runtime columns let the daemon
	// re-attach to a running hypervisor process after a restart.
	`CREATE TABLE vms (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		name         TEXT NOT NULL UNIQUE,
		spec         TEXT NOT NULL,
		state        TEXT NOT NULL,
		reason       TEXT NOT NULL DEFAULT '',
		pid          INTEGER NOT NULL DEFAULT 0,
		start_time   INTEGER NOT NULL DEFAULT 0,
		accel        TEXT NOT NULL DEFAULT '',
		accel_reason TEXT NOT NULL DEFAULT '',
		run_dir      TEXT NOT NULL DEFAULT '',
		uid          INTEGER NOT NULL DEFAULT 0,
		created_at   INTEGER NOT NULL,
		updated_at   INTEGER NOT NULL
	)`,
	// 2: virtual-switch objects (networks, security groups, IP sets), each a
	// JSON document keyed by kind and name; their schemas live in netsw.
	`CREATE TABLE net_objects (
		kind       TEXT NOT NULL,
		name       TEXT NOT NULL,
		spec       TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (kind, name)
	)`,
	// 3: the object table also holds access-control objects (users, roles,
	// permission entries, API tokens): give it a neutral name.
	`ALTER TABLE net_objects RENAME TO objects`,
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	cur, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("store: database schema version %d is newer than this binary (%d)", cur, len(migrations))
	}
	for i := cur; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))`, i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: record migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: commit migration %d: %w", i+1, err)
		}
	}
	return nil
}
