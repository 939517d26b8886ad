package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"path"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the schema's SQL scripts in order: migrations[i] takes the
// database from version i to version i+1. They come from migrations/NNNN_*.sql.
// Append new ones; never edit a released one.
var migrations = loadMigrations()

// loadMigrations reads the embedded scripts, which must be numbered 1, 2, ...
// without gaps. A mistake there is a programming error, hence the panic (the
// tests catch it).
func loadMigrations() []string {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		panic(fmt.Sprintf("store: read embedded migrations: %v", err))
	}
	var out []string
	for i, e := range entries { // ReadDir sorts by name
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != i+1 {
			panic(fmt.Sprintf("store: migration %s: want number %04d", e.Name(), i+1))
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic(fmt.Sprintf("store: read migration %s: %v", e.Name(), err))
		}
		out = append(out, string(b))
	}
	return out
}

// migrate applies the migrations the database lacks, each in its own
// transaction, and refuses a database newer than this binary.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	v, err := schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if err := checkVersion(v); err != nil {
		return err
	}
	for next := v + 1; next <= len(migrations); next++ {
		if err := s.apply(ctx, next); err != nil {
			return err
		}
	}
	return nil
}

// apply runs migration version in a transaction, unless another process got
// there first.
func (s *Store) apply(ctx context.Context, version int) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		// Re-read under the write lock: another process may have migrated
		// since we looked.
		cur, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if cur >= version {
			return checkVersion(cur)
		}
		if cur != version-1 {
			return fmt.Errorf("database schema version is %d, cannot apply migration %d", cur, version)
		}
		if _, err := tx.ExecContext(ctx, migrations[version-1]); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
			version, formatTime(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("apply migration %d: %w", version, err)
	}
	return nil
}

// checkVersion refuses a schema version newer than this binary knows.
func checkVersion(v int) error {
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this cedana supports (%d): upgrade cedana",
			v, len(migrations))
	}
	return nil
}

// querier is what schemaVersion needs of *sql.DB and *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion is the highest applied migration, 0 for a new database.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// SchemaVersion returns the database's schema version: the number of
// migrations applied to it.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	v, err := schemaVersion(ctx, s.db)
	if err != nil {
		return 0, s.dbErr("schema version", err)
	}
	return v, nil
}
