package adapters_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// imageWriter stands in for CRIU: it writes image files into st.ImageDir, some while the
// archiver watches, can change one after closing it, and reports the workload dumped.
func imageWriter(t *testing.T, changeAfterClose bool) adapters.DumpHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
		core := filepath.Join(st.ImageDir, "core-1.img")
		require.NoError(t, os.WriteFile(core, []byte("core"), 0o600))
		big := make([]byte, 40<<20) // more than one part of a growing pages image
		for i := range big {
			big[i] = byte(i * 7)
		}
		require.NoError(t, os.WriteFile(filepath.Join(st.ImageDir, "pages-1.img"), big, 0o600))
		// The archiver takes the closed images now, while the dump goes on: wait until it has.
		archived := int64(len("core") + len(big))
		require.Eventually(t, func() bool { return st.Progress.Snapshot().Done >= archived }, 10*time.Second, 5*time.Millisecond,
			"the archiver did not take the closed images during the dump")
		if changeAfterClose {
			f, err := os.OpenFile(core, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, _ = f.WriteString("changed")
			require.NoError(t, f.Close())
		}
		require.NoError(t, os.WriteFile(filepath.Join(st.ImageDir, "inventory.img"), []byte("inv"), 0o600))
		return true, nil // as withcriu.Dump does once CRIU has succeeded
	}
}

// archiveState is testState with a Progress, which tells imageWriter what the archiver has taken.
func archiveState() adapters.State {
	st := testState()
	st.Progress = &adapters.Progress{}
	return st
}

func archiveRequest(dir string) *daemonv1.DumpRequest {
	return &daemonv1.DumpRequest{Type: "process", Dir: dir, Name: "ck", Compression: "zstd", Criu: &daemonv1.CriuOptions{}, Details: &daemonv1.Details{}}
}

// TestCompressCheckpoint: the images become one archive that extracts to the same files, and the
// images are removed.
func TestCompressCheckpoint(t *testing.T) {
	dir := t.TempDir()
	chain := imageWriter(t, false)
	h := adapters.DumpHandler(chain).With(adapters.TimeDump, adapters.PrepareDumpDir, adapters.CompressCheckpoint)
	resp := &daemonv1.DumpResponse{}
	require.NoError(t, dumpErr(h(context.Background(), testEnv(), archiveState(), archiveRequest(dir), resp)))
	assert.Equal(t, filepath.Join(dir, "ck.tar.zst"), resp.Path)
	assert.Positive(t, resp.Stats.StoredBytes)
	names, _ := os.ReadDir(dir)
	require.Len(t, names, 1, "only the archive is left")

	f, err := os.Open(resp.Path)
	require.NoError(t, err)
	defer f.Close()
	out := t.TempDir()
	_, err = archive.Extract(f, out, 2)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(out, "pages-1.img"))
	require.NoError(t, err)
	assert.Len(t, got, 40<<20)
	assert.Equal(t, byte(12345*7%256), got[12345])
}

// TestCompressCheckpointKeepsImages: when archiving fails after the dump stopped the workload, the
// uncompressed checkpoint is kept where the error says.
func TestCompressCheckpointKeepsImages(t *testing.T) {
	dir := t.TempDir()
	h := adapters.DumpHandler(imageWriter(t, true)).With(adapters.TimeDump, adapters.PrepareDumpDir, adapters.CompressCheckpoint)
	_, err := h(context.Background(), testEnv(), archiveState(), archiveRequest(dir), &daemonv1.DumpResponse{})
	require.Error(t, err)
	assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	assert.ErrorContains(t, err, "core-1.img changed after it was archived")
	kept := filepath.Join(dir, "ck")
	assert.ErrorContains(t, err, "kept at "+kept)
	assert.FileExists(t, filepath.Join(kept, "pages-1.img"))
	assert.NoFileExists(t, filepath.Join(dir, "ck.tar.zst"))
	assert.NoFileExists(t, filepath.Join(dir, "ck.tar.zst.partial"))

	// <dir>/<name> already taken (only <name>.tar.zst is checked): kept beside it.
	dir = t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "ck", "other"), 0o755))
	_, err = h(context.Background(), testEnv(), archiveState(), archiveRequest(dir), &daemonv1.DumpResponse{})
	require.Error(t, err)
	matches, _ := filepath.Glob(filepath.Join(dir, "ck.kept-*", "pages-1.img"))
	require.Len(t, matches, 1, "kept beside the taken name")
	assert.ErrorContains(t, err, "kept at "+filepath.Dir(matches[0]))
	assert.DirExists(t, filepath.Join(dir, "ck", "other"), "the taken directory is left alone")

	// With --leave-running the workload is fine: nothing is kept.
	dir = t.TempDir()
	req := archiveRequest(dir)
	req.Criu.LeaveRunning = true
	_, err = h(context.Background(), testEnv(), archiveState(), req, &daemonv1.DumpResponse{})
	assert.ErrorContains(t, err, "nothing was kept")
	names, _ := os.ReadDir(dir)
	assert.Empty(t, names)
}
