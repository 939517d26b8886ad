package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/containerd/errdefs"
)

// JobStatus is the state of a managed job's process as the daemon last knew it.
//
// Having been checkpointed is not a status: a dump that leaves the process
// running keeps the job running, one that stops it makes it halted, and the
// job's checkpoints are listed separately.
type JobStatus string

const (
	// JobRunning means the job's process was alive when last checked.
	JobRunning JobStatus = "running"
	// JobHalted means the job's process is gone: it exited or was killed.
	// Job.ExitCode holds its exit code when known.
	JobHalted JobStatus = "halted"
	// JobUnknown means the daemon could not tell, e.g. the job could not be
	// verified after a daemon restart.
	JobUnknown JobStatus = "unknown"
	// JobMigrated means the job was moved to another daemon (Job.MigratedTo) and
	// runs there; nothing of it runs here.
	JobMigrated JobStatus = "migrated"
)

// Valid reports whether s is one of the defined statuses.
func (s JobStatus) Valid() bool {
	switch s {
	case JobRunning, JobHalted, JobUnknown, JobMigrated:
		return true
	}
	return false
}

// Job is a workload the daemon started and manages, identified by its JID.
type Job struct {
	// JID is the job's unique identifier, e.g. from NewJID. Immutable.
	JID string
	// Type is the runtime that runs the job, e.g. "process".
	Type string
	// PID is the job's root process, 0 if none.
	PID int
	// Status is the job's last known state.
	Status JobStatus
	// ExitCode is the process's exit code, nil while running or when unknown.
	ExitCode *int
	// Log is the path of the file receiving the job's output, "" if none.
	Log string
	// Details is the JSON of the runtime-specific details, nil if none.
	Details []byte
	// StartTime is the process's start time in clock ticks since boot
	// (/proc/<pid>/stat field 22), to tell the job's process from a later
	// one that reuses its PID. 0 if unknown.
	StartTime uint64
	// CreatedAt is when the job was created. Immutable.
	CreatedAt time.Time
	// UpdatedAt is when the job was last changed.
	UpdatedAt time.Time
	// MigratedTo is the daemon a migrated job moved to, "" otherwise.
	MigratedTo string
}

// validate checks the fields the database cannot check for itself.
func (j *Job) validate() error {
	if j.JID == "" {
		return errors.New("job has no JID")
	}
	if !j.Status.Valid() {
		return fmt.Errorf("job %q: invalid status %q", j.JID, j.Status)
	}
	if j.StartTime > math.MaxInt64 {
		return fmt.Errorf("job %q: start time %d out of range", j.JID, j.StartTime)
	}
	return nil
}

// CreateJob records a new job. A zero CreatedAt is set to now and a zero
// UpdatedAt to CreatedAt. It fails with errdefs.ErrAlreadyExists if the JID is taken.
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	if err := j.validate(); err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now()
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = j.CreatedAt
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return s.execOne(ctx, tx, fmt.Sprintf("create job %q", j.JID), fmt.Errorf("job %q: %w", j.JID, errdefs.ErrAlreadyExists),
			`INSERT INTO jobs
			(jid, type, pid, status, exit_code, log, details, start_time, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (jid) DO NOTHING`,
			j.JID, j.Type, j.PID, string(j.Status), exitCodeArg(j.ExitCode), j.Log,
			nullText(j.Details), int64(j.StartTime), formatTime(j.CreatedAt), formatTime(j.UpdatedAt))
	})
}

// GetJob returns the job with the given JID, or errdefs.ErrNotFound.
func (s *Store) GetJob(ctx context.Context, jid string) (Job, error) {
	j, err := getJob(ctx, s.db, jid)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return Job{}, s.dbErr(fmt.Sprintf("get job %q", jid), err)
	}
	return j, err
}

// ListJobs returns every job, oldest first.
func (s *Store) ListJobs(ctx context.Context) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+jobColumns+" FROM jobs ORDER BY created_at, rowid")
	if err != nil {
		return nil, s.dbErr("list jobs", err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, s.dbErr("list jobs", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr("list jobs", err)
	}
	return jobs, nil
}

// UpdateJob changes the job with the given JID in one transaction: it reads
// the job, passes it to fn, and writes back what fn leaves, with UpdatedAt set
// to now. Changes fn makes to JID or CreatedAt are ignored. If fn returns an
// error nothing is written and that error is returned as is. It returns the
// job as stored, or errdefs.ErrNotFound.
//
// Concurrent updates are serialized, so fn always sees the latest state. fn
// runs while the database is locked for writing: it must be quick and must
// not call back into the Store.
func (s *Store) UpdateJob(ctx context.Context, jid string, fn func(*Job) error) (Job, error) {
	var out Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		j, err := getJob(ctx, tx, jid)
		if errors.Is(err, errdefs.ErrNotFound) {
			return err
		} else if err != nil {
			return s.dbErr(fmt.Sprintf("update job %q", jid), err)
		}
		created := j.CreatedAt
		if err := fn(&j); err != nil {
			return err
		}
		j.JID, j.CreatedAt = jid, created
		if err := j.validate(); err != nil {
			return fmt.Errorf("update job: %w", err)
		}
		j.UpdatedAt = now().UTC()
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET
			type = ?, pid = ?, status = ?, exit_code = ?, log = ?, details = ?, start_time = ?, updated_at = ?, migrated_to = ?
			WHERE jid = ?`,
			j.Type, j.PID, string(j.Status), exitCodeArg(j.ExitCode), j.Log, nullText(j.Details),
			int64(j.StartTime), formatTime(j.UpdatedAt), j.MigratedTo, jid); err != nil {
			return s.dbErr(fmt.Sprintf("update job %q", jid), err)
		}
		out = j
		return nil
	})
	if err != nil {
		return Job{}, err
	}
	return out, nil
}

// DeleteJob deletes the job with the given JID and the records of its
// checkpoints (not the checkpoint files), or returns errdefs.ErrNotFound.
func (s *Store) DeleteJob(ctx context.Context, jid string) error {
	return s.deleteRow(ctx, "job", "DELETE FROM jobs WHERE jid = ?", jid)
}

// jobColumns are the columns scanJob reads, in order.
const jobColumns = "jid, type, pid, status, exit_code, log, details, start_time, created_at, updated_at, migrated_to"

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanJob reads one row of jobColumns.
func scanJob(r scanner) (Job, error) {
	var (
		j                Job
		status           string
		exitCode         sql.NullInt64
		details          sql.NullString
		startTime        int64
		created, updated string
	)
	if err := r.Scan(&j.JID, &j.Type, &j.PID, &status, &exitCode, &j.Log, &details,
		&startTime, &created, &updated, &j.MigratedTo); err != nil {
		return Job{}, err
	}
	j.Status = JobStatus(status)
	if exitCode.Valid {
		c := int(exitCode.Int64)
		j.ExitCode = &c
	}
	j.Details = textBytes(details)
	j.StartTime = uint64(startTime)
	var err error
	if j.CreatedAt, err = parseTime(created); err != nil {
		return Job{}, fmt.Errorf("job %q: %w", j.JID, err)
	}
	if j.UpdatedAt, err = parseTime(updated); err != nil {
		return Job{}, fmt.Errorf("job %q: %w", j.JID, err)
	}
	return j, nil
}

// getJob reads one job through q, a *sql.DB or *sql.Tx.
func getJob(ctx context.Context, q querier, jid string) (Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE jid = ?", jid))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %q: %w", jid, errdefs.ErrNotFound)
	}
	return j, err
}

// exitCodeArg is the SQL argument for an optional exit code.
func exitCodeArg(c *int) any {
	if c == nil {
		return nil
	}
	return *c
}
