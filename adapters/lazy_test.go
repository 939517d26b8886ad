package adapters_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func TestCheckLazy(t *testing.T) {
	noLazy := func(rt string) error { return errs.Invalid("--lazy: the %s runtime cannot restore lazily", rt) }
	okRuntime := func(string) error { return nil }
	works := func(context.Context) error { return nil }
	tests := []struct {
		name      string
		req       *daemonv1.RestoreRequest
		runtime   func(string) error
		check     func(context.Context) error
		wantErr   string
		wantCalls int
	}{
		{"not lazy: nothing checked", &daemonv1.RestoreRequest{Type: "x"}, noLazy, nil, "", 1},
		{"lazy through a runtime that can", &daemonv1.RestoreRequest{Type: "x", Lazy: true}, okRuntime, works, "", 1},
		{"lazy, runtime from the checkpoint", &daemonv1.RestoreRequest{Lazy: true}, noLazy, works, "", 1},
		{"lazy through a runtime that cannot", &daemonv1.RestoreRequest{Type: "x", Lazy: true}, noLazy, works, "the x runtime cannot restore lazily", 0},
		{"no daemon to keep the server", &daemonv1.RestoreRequest{Type: "x", Lazy: true}, okRuntime, nil, "restore through the daemon", 0},
		{
			"userfaultfd unavailable", &daemonv1.RestoreRequest{Type: "x", Lazy: true}, okRuntime,
			func(context.Context) error { return errors.New("userfaultfd: operation not permitted") },
			"lazy restores do not work here: userfaultfd: operation not permitted (see `cedana check`)", 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &restoreCapture{}
			h := adapters.RestoreHandler(c.handle).With(adapters.CheckLazy(tt.runtime))
			err := h(context.Background(), &adapters.Env{LazyCheck: tt.check}, adapters.State{}, tt.req, &daemonv1.RestoreResponse{})
			assert.Equal(t, tt.wantCalls, c.calls)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			assert.True(t, errdefs.IsInvalidArgument(err) || errdefs.IsFailedPrecondition(err), "classified: %v", err)
		})
	}
}

// writeArchive writes a tar archive of a checkpoint of one image and returns its path.
func writeArchive(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "inventory.img"), []byte("inv"), 0o600))
	path := filepath.Join(t.TempDir(), "ck.tar")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = archive.WriteDir(dir, f, archive.Tar, 1)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return path
}

// TestImagesHeldPastTheChain: an archive's temporary images stay after the chain while a handler
// holds them, and go with the last release.
func TestImagesHeldPastTheChain(t *testing.T) {
	ck := writeArchive(t)
	tmp := t.TempDir()
	var release func()
	var dir string
	c := &restoreCapture{do: func(_ *adapters.Env, st adapters.State, _ *daemonv1.RestoreRequest, _ *daemonv1.RestoreResponse) {
		dir = st.ImageDir
		release = st.Images.Hold()
	}}
	h := adapters.RestoreHandler(c.handle).With(adapters.FetchCheckpoint)
	require.NoError(t, h(context.Background(), &adapters.Env{TempDir: tmp}, adapters.State{}, &daemonv1.RestoreRequest{Path: ck}, &daemonv1.RestoreResponse{}))
	assert.DirExists(t, dir, "held past the chain")
	release()
	release() // a second release changes nothing
	assert.NoDirExists(t, dir)
	entries, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestImagesHoldOfADirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "inventory.img"), nil, 0o600))
	var held *adapters.ImagesHold
	c := &restoreCapture{do: func(_ *adapters.Env, st adapters.State, _ *daemonv1.RestoreRequest, _ *daemonv1.RestoreResponse) {
		held = st.Images
		st.Images.Hold()() // nil: holds nothing, releases nothing
	}}
	h := adapters.RestoreHandler(c.handle).With(adapters.FetchCheckpoint)
	require.NoError(t, h(context.Background(), &adapters.Env{}, adapters.State{}, &daemonv1.RestoreRequest{Path: dir}, &daemonv1.RestoreResponse{}))
	assert.Nil(t, held, "a checkpoint's own directory is never removed")
	assert.FileExists(t, filepath.Join(dir, "inventory.img"))
}

func TestLazyPagesStatus(t *testing.T) {
	open, closed := make(chan struct{}), make(chan struct{})
	close(closed)
	started := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		lp   *adapters.LazyPages
		want string
	}{
		{"none", nil, ""},
		{"not started", &adapters.LazyPages{}, ""},
		{"serving", &adapters.LazyPages{PID: 42, Started: started, Done: open}, "serving since 2026-12-02T03:04:05Z (criu lazy-pages, PID 42)"},
		{"done", &adapters.LazyPages{Done: closed, Err: func() error { return nil }}, ""},
		{"failed", &adapters.LazyPages{Done: closed, Err: func() error { return errors.New("killed") }}, "failed: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.lp.Status())
		})
	}
}
