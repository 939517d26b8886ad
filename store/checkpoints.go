package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
)

// Checkpoint is the record of a checkpoint on disk, made of a job or of a
// bare PID.
type Checkpoint struct {
	// ID is the checkpoint's unique identifier, e.g. from NewCheckpointID.
	ID string
	// JID is the job it was made of, "" for a checkpoint of a bare PID.
	JID string
	// Path is the checkpoint's directory.
	Path string
	// Type is the runtime that made it, e.g. "process".
	Type string
	// Size is its size on disk in bytes.
	Size int64
	// CreatedAt is when it was made.
	CreatedAt time.Time
	// Metadata is the contents of its checkpoint.json, nil if none.
	Metadata []byte
}

// AddCheckpoint records a checkpoint. A zero CreatedAt is set to now. It
// fails with errdefs.ErrNotFound if JID is not "" and names no job, and with
// errdefs.ErrAlreadyExists if the ID is taken.
func (s *Store) AddCheckpoint(ctx context.Context, c Checkpoint) error {
	return s.addCheckpoint(ctx, c, nil)
}

// addCheckpoint is AddCheckpoint, running also in the same transaction (when not nil).
func (s *Store) addCheckpoint(ctx context.Context, c Checkpoint, also func(*sql.Tx) error) error {
	if c.ID == "" {
		return errors.New("add checkpoint: checkpoint has no ID")
	}
	if c.Path == "" {
		return fmt.Errorf("add checkpoint %q: checkpoint has no path", c.ID)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now()
	}
	what := fmt.Sprintf("add checkpoint %q", c.ID)
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := s.insertForJob(ctx, tx, what, c.JID, fmt.Errorf("checkpoint %q: %w", c.ID, errdefs.ErrAlreadyExists),
			`INSERT INTO checkpoints
			(id, jid, path, type, size, created_at, metadata)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`,
			c.ID, nullString(c.JID), c.Path, c.Type, c.Size, formatTime(c.CreatedAt), nullText(c.Metadata)); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
}

// GetCheckpoint returns the checkpoint with the given ID, or errdefs.ErrNotFound.
func (s *Store) GetCheckpoint(ctx context.Context, id string) (Checkpoint, error) {
	c, err := scanCheckpoint(s.db.QueryRowContext(ctx,
		"SELECT "+checkpointColumns+" FROM checkpoints WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("checkpoint %q: %w", id, errdefs.ErrNotFound)
	} else if err != nil {
		return Checkpoint{}, s.dbErr(fmt.Sprintf("get checkpoint %q", id), err)
	}
	return c, nil
}

// ListCheckpoints returns the checkpoints of the job with the given JID, or
// every checkpoint (of jobs and of bare PIDs) if jid is "", newest first. It
// returns errdefs.ErrNotFound if jid is not "" and names no job.
func (s *Store) ListCheckpoints(ctx context.Context, jid string) ([]Checkpoint, error) {
	return s.listCheckpoints(ctx, jid, -1)
}

// LatestCheckpoint returns the newest checkpoint of the job with the given
// JID, or the newest of all if jid is "". It returns errdefs.ErrNotFound if there is
// none or if jid is not "" and names no job.
func (s *Store) LatestCheckpoint(ctx context.Context, jid string) (Checkpoint, error) {
	cs, err := s.listCheckpoints(ctx, jid, 1)
	if err != nil {
		return Checkpoint{}, err
	}
	if len(cs) == 0 {
		if jid == "" {
			return Checkpoint{}, fmt.Errorf("no checkpoints: %w", errdefs.ErrNotFound)
		}
		return Checkpoint{}, fmt.Errorf("job %q has no checkpoints: %w", jid, errdefs.ErrNotFound)
	}
	return cs[0], nil
}

// listCheckpoints is ListCheckpoints returning at most limit checkpoints, all
// if limit < 0.
func (s *Store) listCheckpoints(ctx context.Context, jid string, limit int) ([]Checkpoint, error) {
	what := "list checkpoints"
	query := "SELECT " + checkpointColumns + " FROM checkpoints"
	var args []any
	if jid != "" {
		what = fmt.Sprintf("list checkpoints of job %q", jid)
		query += " WHERE jid = ?"
		args = append(args, jid)
	}
	query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
	args = append(args, limit)

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.dbErr(what, err)
	}
	defer rows.Close()
	var cs []Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, s.dbErr(what, err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(what, err)
	}
	if len(cs) == 0 && jid != "" {
		// Tell "no checkpoints" from "no such job".
		if _, err := s.GetJob(ctx, jid); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// DeleteCheckpoint deletes the record of the checkpoint with the given ID
// (not its files), or returns errdefs.ErrNotFound.
func (s *Store) DeleteCheckpoint(ctx context.Context, id string) error {
	return s.deleteRow(ctx, "checkpoint", "DELETE FROM checkpoints WHERE id = ?", id)
}

// checkpointColumns are the columns scanCheckpoint reads, in order.
const checkpointColumns = "id, COALESCE(jid, ''), path, type, size, created_at, metadata"

// scanCheckpoint reads one row of checkpointColumns.
func scanCheckpoint(r scanner) (Checkpoint, error) {
	var (
		c        Checkpoint
		created  string
		metadata sql.NullString
	)
	if err := r.Scan(&c.ID, &c.JID, &c.Path, &c.Type, &c.Size, &created, &metadata); err != nil {
		return Checkpoint{}, err
	}
	c.Metadata = textBytes(metadata)
	var err error
	if c.CreatedAt, err = parseTime(created); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %q: %w", c.ID, err)
	}
	return c, nil
}
