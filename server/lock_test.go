package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
)

// TestLockJob: a second dump or restore of the same job fails fast while the first runs; other
// jobs do not wait for it. Trees are claimed in the same table (adapters.Env.Claim), so a job's
// dump and a dump naming its tree another way keep apart too.
func TestLockJob(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	m := jobs.New(st, dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	s := &service{jobs: m, env: &adapters.Env{Claim: m.Lock}}

	unlock, err := s.lockJob("a")
	require.NoError(t, err)
	_, err = s.lockJob("a")
	assert.ErrorIs(t, err, errdefs.ErrConflict, "the same job is busy")
	unlockOther, err := s.lockJob("b")
	require.NoError(t, err, "another job is not")
	unlockOther()
	unlock()
	unlock, err = s.lockJob("a")
	require.NoError(t, err, "free again")
	unlock()

	release, err := s.env.Claim("tree:10", "the process tree of PID 10")
	require.NoError(t, err)
	_, err = s.env.Claim("tree:10", "the process tree of PID 10")
	assert.ErrorIs(t, err, errdefs.ErrConflict, "the same tree is busy")
	release()
}
