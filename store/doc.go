// Package store keeps the daemon's persistent state — managed jobs and the
// checkpoints recorded against them — in an embedded SQLite database.
//
// The database is reached through database/sql and the pure-Go driver
// modernc.org/sqlite, so cedana still builds as one static binary with
// CGO_ENABLED=0. Open creates the database file when needed, puts it in WAL
// mode with foreign keys enforced and a busy timeout, and brings its schema up
// to date with the versioned migrations embedded in this package. Everything
// the daemon must remember lives here, so it survives daemon restarts.
//
// A *Store is safe for concurrent use. Writes are serialized inside the
// process and every write transaction takes SQLite's write lock up front
// (BEGIN IMMEDIATE), so the read-modify-write of UpdateJob cannot deadlock
// against another writer.
//
// One process at a time has a database open: Open takes an exclusive lock on
// <db>.lock, held until Close or the process's exit, so that two daemons
// configured with the same db.path cannot both run on it. Open never
// recreates, empties or repairs an existing file: a file that is not a SQLite
// database, is damaged or has a newer schema is refused as it is.
//
// A job or checkpoint that does not exist is an error wrapping errdefs.ErrNotFound, an ID that
// is taken one wrapping errdefs.ErrAlreadyExists (github.com/containerd/errdefs, the daemon's
// vocabulary of failures: see package errs).
package store
