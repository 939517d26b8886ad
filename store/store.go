package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// ErrNotFound is returned, wrapped, when a job or checkpoint does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned, wrapped, when a job or checkpoint with the same
// identifier already exists.
var ErrExists = errors.New("already exists")

// busyTimeout is how long a statement waits for a lock held by another
// connection (or another process) before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// timeFormat is RFC 3339 in UTC with a fixed nine-digit fraction. Unlike
// time.RFC3339Nano it does not trim trailing zeros, so the stored text sorts
// in time order; time.RFC3339Nano still parses it.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Store is the daemon's persistent state, an open SQLite database. It is safe
// for concurrent use; create it with Open and release it with Close.
type Store struct {
	db   *sql.DB
	path string
	// wmu serializes the process's write transactions, so in-process writers
	// queue here instead of polling SQLite's lock under busy_timeout. It is a
	// channel so that waiting for it honours the caller's context.
	wmu chan struct{}
}

// Open opens the database at path, creating the file (mode 0600) and its
// parent directory (mode 0700) if needed, and applies any migrations the
// database lacks. It refuses a database whose schema is newer than this
// binary knows.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open store: empty database path")
	}
	if strings.Contains(path, "?") {
		// The driver splits its DSN at the first '?'.
		return nil, fmt.Errorf("open store %s: database path must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: create directory: %w", path, err)
	}
	// Create the file ourselves so that it is private: SQLite would create it
	// 0644 (less umask), and gives its -wal and -shm files the same mode as the
	// database.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, wmu: make(chan struct{}, 1)}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// dsn is the driver's data source name for path. The query parameters are
// applied by modernc.org/sqlite to every connection it opens for the pool.
func dsn(path string) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_journal_mode", "WAL")
	// BEGIN IMMEDIATE for every read-write transaction: take the write lock at
	// the start rather than upgrading a read lock mid-transaction, which can
	// fail with SQLITE_BUSY regardless of busy_timeout.
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// init checks that the connection settings took effect and migrates.
func (s *Store) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	var fk int
	if err := s.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are not enforced")
	}
	return s.migrate(ctx)
}

// Close closes the database. The Store must not be used afterwards.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path of the database file.
func (s *Store) Path() string { return s.path }

// write runs fn in a read-write transaction (BEGIN IMMEDIATE) and commits it
// if fn returns nil. fn's error is returned unchanged; failures of the
// transaction itself are wrapped with the database path.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	select {
	case s.wmu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wmu }()

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store %s: begin: %w", s.path, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store %s: commit: %w", s.path, err)
	}
	return nil
}

// dbErr wraps an unexpected database error with what was being done and the
// database path.
func (s *Store) dbErr(what string, err error) error {
	return fmt.Errorf("%s: store %s: %w", what, s.path, err)
}

// formatTime renders t for storage.
func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// parseTime parses a stored time.
func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored time %q: %w", v, err)
	}
	return t.UTC(), nil
}

// nullText stores an empty byte slice as NULL.
func nullText(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// textBytes is the inverse of nullText.
func textBytes(v sql.NullString) []byte {
	if !v.Valid {
		return nil
	}
	return []byte(v.String)
}

// now is the clock, replaceable in tests.
var now = time.Now
