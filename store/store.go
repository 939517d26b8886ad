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

	"modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

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
	wmu  chan struct{}
	lock *dbLock
}

// Open opens the database at path, creating the file (mode 0600) and its
// parent directory (mode 0700) if needed, and applies any migrations the
// database lacks. The Store holds an exclusive lock on <path>.lock until
// Close (or the process's exit), and Open fails at once with an error wrapping
// ErrLocked while another process holds it. It refuses, without changing it, a
// file that is not a SQLite database or is damaged, and a database whose
// schema is newer than this binary knows. Its errors name the file, what is
// wrong and what to do.
func Open(ctx context.Context, path string) (_ *Store, err error) {
	if path == "" {
		return nil, errors.New("open store: empty database path; set db.path (CEDANA_DB_PATH)")
	}
	if strings.Contains(path, "?") {
		// The driver splits its DSN at the first '?'.
		return nil, fmt.Errorf("open store %s: database path must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the directory of state database %s: %w; set db.path (CEDANA_DB_PATH) to a writable location", path, err)
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	lock, err := lockDB(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	// Create the file ourselves so that it is private: SQLite would create it
	// 0644 (less umask), and gives its -wal and -shm files the same mode as the
	// database. No O_TRUNC: an existing database is never emptied.
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
	s := &Store{db: db, path: path, wmu: make(chan struct{}, 1), lock: lock}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	return s, nil
}

// checkFile refuses a database path that exists and is not a regular file.
func checkFile(path string) error {
	info, err := os.Stat(path)
	switch {
	case err != nil || info.Mode().IsRegular():
		return nil //nolint:nilerr // missing (created next), or unreadable (reported when opened)
	case info.IsDir():
		return fmt.Errorf("state database %s is a directory, not a file: remove it, or set db.path (CEDANA_DB_PATH) to a file", path)
	}
	return fmt.Errorf("state database %s is not a regular file (%s): remove it, or set db.path (CEDANA_DB_PATH) to a file", path, info.Mode().Type())
}

// errDamaged marks a failed integrity check.
var errDamaged = errors.New("integrity check failed")

// openError explains a database that could not be opened or brought up to date.
func openError(path string, err error) error {
	var se *sqlite.Error
	if errors.Is(err, errDamaged) || errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_NOTADB || se.Code()&0xff == sqlite3.SQLITE_CORRUPT) {
		return fmt.Errorf("state database %s is not a SQLite database or is damaged (%w); it was left as it is: move it aside to start with an empty one, or restore it from a backup", path, err)
	}
	return fmt.Errorf("open store %s: %w", path, err)
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

// init checks the database's integrity and that the connection settings took
// effect, and migrates.
func (s *Store) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	// A damaged page would otherwise surface in the first request that reads it.
	var check string
	if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check); err != nil {
		return err
	}
	if check != "ok" {
		check = strings.TrimPrefix(check, "*** in database main ***\n")
		return fmt.Errorf("%w: %s", errDamaged, strings.ReplaceAll(check, "\n", "; "))
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

// Close closes the database and releases its lock. The Store must not be used
// afterwards.
func (s *Store) Close() error {
	err := s.db.Close()
	s.lock.release()
	if err != nil {
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
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.commit(ctx, s.db.BeginTx, fn)
}

// lockWrites waits for the process's turn to write (or for ctx to end) and returns its release.
func (s *Store) lockWrites(ctx context.Context) (func(), error) {
	select {
	case s.wmu <- struct{}{}:
		return func() { <-s.wmu }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// commit runs fn in a transaction that begin starts, and commits it if fn returns nil.
func (s *Store) commit(ctx context.Context, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), fn func(*sql.Tx) error) error {
	tx, err := begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("store %s: begin: %w", s.path, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that made us roll back is the one to report
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
