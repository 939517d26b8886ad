package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/containerd/errdefs"
)

// DumpState is how far a pending dump had come.
type DumpState string

const (
	// DumpDumping means CRIU may be writing the images: the dump is not done, and CRIU resumes
	// the workload if nobody answers its post-dump notification.
	DumpDumping DumpState = "dumping"
	// DumpDumped means CRIU's post-dump notification was answered: the images are complete.
	DumpDumped DumpState = "dumped"
)

// PendingDump is a dump under way, recorded so that a daemon killed during it can settle it when
// it starts again.
type PendingDump struct {
	// ID is the ID the checkpoint gets in the catalog.
	ID string
	// JID is the job dumped, "" for a bare PID.
	JID string
	// State is how far the dump had come.
	State DumpState
	// WorkDir is where CRIU writes the images.
	WorkDir string
	// Path is the checkpoint's final path: WorkDir itself, an archive beside it, or an s3:// URL.
	Path string
	// PID and PIDStart are the dumped tree's root and its start time (sysinfo.ProcStat.StartTime),
	// 0 until CRIU starts.
	PID      int
	PIDStart uint64
	// CRIUPID and CRIUStart are the criu process and its start time, 0 until it starts.
	CRIUPID   int
	CRIUStart uint64
	// Metadata is the checkpoint.json known before the dump, nil until CRIU starts.
	Metadata []byte
	// CreatedAt is when the dump began; UpdatedAt when it last changed state.
	CreatedAt, UpdatedAt time.Time
}

// BeginDump records a pending dump in state DumpDumping. It fails with errdefs.ErrNotFound when JID is not
// "" and names no job, and with errdefs.ErrAlreadyExists when the ID is taken.
//
// Like DumpStarted and DumpDone, it does not wait for the disk (see writeUnsynced): a pending
// dump's record serves a daemon that dies during the dump, and the kernel keeps it for the next
// start. A power failure ends CRIU and the workload too; the record would then only have let the
// next start remove the partial images, which stay as what they are, an incomplete checkpoint (no
// checkpoint.json, nothing in the catalog). The WAL keeps commits in order, so a later synced
// commit (CommitDump) makes these durable with it. Each sync here cost about 20 ms per dump.
func (s *Store) BeginDump(ctx context.Context, d PendingDump) error {
	if d.ID == "" || d.WorkDir == "" || d.Path == "" {
		return fmt.Errorf("begin dump %q: the ID, work directory and path must be set", d.ID)
	}
	what := fmt.Sprintf("begin dump %q", d.ID)
	t := formatTime(now())
	return s.writeUnsynced(ctx, func(tx *sql.Tx) error {
		return s.insertForJob(ctx, tx, what, d.JID, fmt.Errorf("pending dump %q: %w", d.ID, errdefs.ErrAlreadyExists),
			`INSERT INTO pending_dumps
			(id, jid, state, work_dir, path, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`,
			d.ID, nullString(d.JID), string(DumpDumping), d.WorkDir, d.Path, t, t)
	})
}

// DumpStarted records the criu process of pending dump id, the tree it dumps and the checkpoint's
// metadata, without waiting for the disk (see BeginDump).
func (s *Store) DumpStarted(ctx context.Context, id string, pid int, pidStart uint64, criuPID int, criuStart uint64, metadata []byte) error {
	if pidStart > math.MaxInt64 || criuStart > math.MaxInt64 {
		return fmt.Errorf("dump %q started: start time out of range", id)
	}
	return s.updatePending(ctx, s.writeUnsynced, id, "record the start of", `pid = ?, pid_start = ?, criu_pid = ?, criu_start = ?, metadata = ?`,
		pid, int64(pidStart), criuPID, int64(criuStart), nullText(metadata))
}

// DumpDone marks pending dump id DumpDumped: its images are complete.
//
// It runs in CRIU's post-dump notification, with the workload frozen, so it does not wait for the
// disk: its commit survives the daemon's death (the kernel has it, as it has the images CRIU has
// just written without syncing them), not a power failure (which the images would not survive
// either). Syncing there, behind the images' dirty pages, once took 170 ms instead of 2.
func (s *Store) DumpDone(ctx context.Context, id string) error {
	return s.updatePending(ctx, s.writeUnsynced, id, "mark as dumped", "state = ?", string(DumpDumped))
}

// writeUnsynced is write on a connection that neither syncs the disk when it commits
// (synchronous=NORMAL in WAL mode) nor checkpoints the WAL (which would sync), set back when done.
func (s *Store) writeUnsynced(ctx context.Context, fn func(*sql.Tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0"); err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 1000"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // not back into the pool as it is
		}
	}()
	return s.commit(ctx, conn.BeginTx, fn)
}

// updatePending sets columns of pending dump id, and its updated_at, in a transaction of write,
// or returns errdefs.ErrNotFound.
func (s *Store) updatePending(ctx context.Context, write func(context.Context, func(*sql.Tx) error) error, id, verb, set string, args ...any) error {
	what := fmt.Sprintf("%s dump %q", verb, id)
	return write(ctx, func(tx *sql.Tx) error {
		return s.execOne(ctx, tx, what, fmt.Errorf("pending dump %q: %w", id, errdefs.ErrNotFound),
			"UPDATE pending_dumps SET "+set+", updated_at = ? WHERE id = ?", append(args, formatTime(now()), id)...)
	})
}

// ListPendingDumps returns the pending dumps, oldest first.
func (s *Store) ListPendingDumps(ctx context.Context) ([]PendingDump, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, COALESCE(jid, ''), state, work_dir, path, pid, pid_start,
		criu_pid, criu_start, metadata, created_at, updated_at FROM pending_dumps ORDER BY created_at, rowid`)
	if err != nil {
		return nil, s.dbErr("list pending dumps", err)
	}
	defer rows.Close()
	var list []PendingDump
	for rows.Next() {
		var (
			d                   PendingDump
			state               string
			pidStart, criuStart int64
			metadata            sql.NullString
			created, updated    string
		)
		if err := rows.Scan(&d.ID, &d.JID, &state, &d.WorkDir, &d.Path, &d.PID, &pidStart, &d.CRIUPID, &criuStart,
			&metadata, &created, &updated); err != nil {
			return nil, s.dbErr("list pending dumps", err)
		}
		d.State, d.PIDStart, d.CRIUStart, d.Metadata = DumpState(state), uint64(pidStart), uint64(criuStart), textBytes(metadata)
		if d.CreatedAt, err = parseTime(created); err == nil {
			d.UpdatedAt, err = parseTime(updated)
		}
		if err != nil {
			return nil, s.dbErr("list pending dumps", fmt.Errorf("pending dump %q: %w", d.ID, err))
		}
		list = append(list, d)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr("list pending dumps", err)
	}
	return list, nil
}

// ForgetDump deletes pending dump id, if it exists: the dump failed, or was settled without
// a checkpoint.
func (s *Store) ForgetDump(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM pending_dumps WHERE id = ?", id); err != nil {
			return s.dbErr(fmt.Sprintf("forget dump %q", id), err)
		}
		return nil
	})
}

// CommitDump records checkpoint c and deletes the pending dump with the same ID (if any) in one
// transaction: the catalog never lists a checkpoint that is still pending, and a pending dump
// never outlives its checkpoint's entry. It fails as AddCheckpoint does.
func (s *Store) CommitDump(ctx context.Context, c Checkpoint) error {
	return s.addCheckpoint(ctx, c, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM pending_dumps WHERE id = ?", c.ID); err != nil {
			return s.dbErr(fmt.Sprintf("commit dump %q", c.ID), err)
		}
		return nil
	})
}

// jobExists returns errdefs.ErrNotFound, unwrapped, when jid is not "" and names no job.
func jobExists(ctx context.Context, tx *sql.Tx, jid string) error {
	if jid == "" {
		return nil
	}
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM jobs WHERE jid = ?", jid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return errdefs.ErrNotFound
	}
	return err
}

// wrapJobErr explains a jobExists failure.
func (s *Store) wrapJobErr(what, jid string, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("%s: job %q: %w", what, jid, errdefs.ErrNotFound)
	}
	return s.dbErr(what, err)
}

// execOne runs query, which must change a row, in tx: none yields ifNone. what names the operation
// in a database error.
func (s *Store) execOne(ctx context.Context, tx *sql.Tx, what string, ifNone error, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return s.dbErr(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.dbErr(what, err)
	}
	if n == 0 {
		return ifNone
	}
	return nil
}

// deleteRow deletes, with query, the row of a kind ("job") whose key is key; none is not found.
func (s *Store) deleteRow(ctx context.Context, kind, query, key string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return s.execOne(ctx, tx, fmt.Sprintf("delete %s %q", kind, key), fmt.Errorf("%s %q: %w", kind, key, errdefs.ErrNotFound), query, key)
	})
}

// insertForJob runs insert, an INSERT ... ON CONFLICT DO NOTHING of a row that belongs to job jid
// (none when ""), in tx: a jid that names no job is not found, a row already there is taken.
func (s *Store) insertForJob(ctx context.Context, tx *sql.Tx, what, jid string, taken error, insert string, args ...any) error {
	if err := jobExists(ctx, tx, jid); err != nil {
		return s.wrapJobErr(what, jid, err)
	}
	return s.execOne(ctx, tx, what, taken, insert, args...)
}

// nullString stores "" as NULL.
func nullString(v string) any {
	if v == "" {
		return nil
	}
	return v
}
