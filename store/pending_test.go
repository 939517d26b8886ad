package store

import (
	"database/sql"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPendingDumpLifecycle: a dump is begun, started, marked dumped and committed; the commit
// adds the checkpoint and removes the pending row at once.
func TestPendingDumpLifecycle(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "j1", Type: "process", Status: JobRunning}))

	d := PendingDump{ID: "ck-1", JID: "j1", WorkDir: "/ck/.a.images", Path: "/ck/a.tar.zst"}
	require.NoError(t, s.BeginDump(ctx, d))
	require.ErrorIs(t, s.BeginDump(ctx, d), errdefs.ErrAlreadyExists)

	list, err := s.ListPendingDumps(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, DumpDumping, list[0].State)
	assert.Equal(t, "j1", list[0].JID)
	assert.Equal(t, d.WorkDir, list[0].WorkDir)
	assert.Equal(t, d.Path, list[0].Path)
	assert.Zero(t, list[0].CRIUPID)
	assert.Nil(t, list[0].Metadata)

	require.NoError(t, s.DumpStarted(ctx, "ck-1", 10, 1234, 11, 1240, []byte(`{"pid":10}`)))
	require.NoError(t, s.DumpDone(ctx, "ck-1"))
	list, err = s.ListPendingDumps(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	got := list[0]
	assert.Equal(t, DumpDumped, got.State)
	assert.Equal(t, 10, got.PID)
	assert.Equal(t, uint64(1234), got.PIDStart)
	assert.Equal(t, 11, got.CRIUPID)
	assert.Equal(t, uint64(1240), got.CRIUStart)
	assert.JSONEq(t, `{"pid":10}`, string(got.Metadata))
	assert.False(t, got.UpdatedAt.Before(got.CreatedAt))

	require.NoError(t, s.CommitDump(ctx, Checkpoint{ID: "ck-1", JID: "j1", Path: d.Path, Type: "process"}))
	list, err = s.ListPendingDumps(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "the commit removed the pending dump")
	ck, err := s.GetCheckpoint(ctx, "ck-1")
	require.NoError(t, err)
	assert.Equal(t, "j1", ck.JID)
}

// TestCommitDumpIsAtomic: a commit whose checkpoint cannot be added leaves the pending dump.
func TestCommitDumpIsAtomic(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.AddCheckpoint(ctx, Checkpoint{ID: "ck-1", Path: "/ck/other", Type: "process"}))
	require.NoError(t, s.BeginDump(ctx, PendingDump{ID: "ck-1", WorkDir: "/ck/a", Path: "/ck/a"}))

	require.ErrorIs(t, s.CommitDump(ctx, Checkpoint{ID: "ck-1", Path: "/ck/a", Type: "process"}), errdefs.ErrAlreadyExists)
	list, err := s.ListPendingDumps(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1, "the failed commit kept the pending dump")
}

// TestPendingDumpErrors: unknown jobs and dumps are refused; forgetting is idempotent.
func TestPendingDumpErrors(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	assert.ErrorIs(t, s.BeginDump(ctx, PendingDump{ID: "ck-1", JID: "nope", WorkDir: "/a", Path: "/a"}), errdefs.ErrNotFound)
	assert.Error(t, s.BeginDump(ctx, PendingDump{ID: "ck-1"}), "no work directory")
	assert.ErrorIs(t, s.DumpDone(ctx, "ck-2"), errdefs.ErrNotFound)
	assert.ErrorIs(t, s.DumpStarted(ctx, "ck-2", 1, 1, 2, 2, nil), errdefs.ErrNotFound)
	require.NoError(t, s.BeginDump(ctx, PendingDump{ID: "ck-1", WorkDir: "/a", Path: "/a"}))
	require.NoError(t, s.ForgetDump(ctx, "ck-1"))
	require.NoError(t, s.ForgetDump(ctx, "ck-1"))
	list, err := s.ListPendingDumps(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// TestDeleteJobForgetsItsPendingDumps: a job's pending dumps go with it.
func TestDeleteJobForgetsItsPendingDumps(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "j1", Type: "process", Status: JobRunning}))
	require.NoError(t, s.BeginDump(ctx, PendingDump{ID: "ck-1", JID: "j1", WorkDir: "/a", Path: "/a"}))
	require.NoError(t, s.DeleteJob(ctx, "j1"))
	list, err := s.ListPendingDumps(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// TestWriteUnsynced: the transaction runs without syncing the disk or checkpointing the WAL, and
// its connection goes back to the pool as it was.
func TestWriteUnsynced(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	s.db.SetMaxOpenConns(1) // the same connection before, during and after
	var during, checkpoint, after, afterCheckpoint int
	require.NoError(t, s.writeUnsynced(ctx, func(tx *sql.Tx) error {
		require.NoError(t, tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&during))
		return tx.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&checkpoint)
	}))
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&after))
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&afterCheckpoint))
	assert.Equal(t, 1, during, "NORMAL")
	assert.Equal(t, 0, checkpoint)
	assert.Equal(t, 2, after, "FULL again")
	assert.Equal(t, 1000, afterCheckpoint)
}
