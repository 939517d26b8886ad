package live_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
)

// counter is a live.Counter.
type counter struct{ n atomic.Int64 }

func (c *counter) Add(n int64) { c.n.Add(n) }

// TestArchiveToFile: what the images' directory holds at Finish is in the archive, which appears
// under its name only once complete; the counter saw every byte.
func TestArchiveToFile(t *testing.T) {
	images, parent := t.TempDir(), t.TempDir()
	files := map[string]string{"core-1.img": "core", "pages-1.img": "pages", "dump.log": "log"}
	path := filepath.Join(parent, "ck.tar.zst")
	out, err := live.NewFileSink(path)
	require.NoError(t, err)
	var seen counter
	a, err := live.Start(images, out, archive.Zstd, 2, &seen)
	require.NoError(t, err)
	var size int64
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(images, name), []byte(data), 0o600))
		size += int64(len(data))
	}
	assert.NoFileExists(t, path, "not before it is complete")
	stored, err := a.Finish()
	require.NoError(t, err)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, info.Size(), stored)
	assert.NoFileExists(t, live.PartialArchive(path))
	assert.Equal(t, size, seen.n.Load())

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	extracted := t.TempDir()
	_, err = archive.Extract(f, extracted, 2)
	require.NoError(t, err)
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(extracted, name))
		require.NoError(t, err)
		assert.Equal(t, data, string(got), name)
	}
}

// TestAbortLeavesNothing: an aborted archive leaves neither it nor its partial file.
func TestAbortLeavesNothing(t *testing.T) {
	images, parent := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(images, "core-1.img"), []byte("core"), 0o600))
	path := filepath.Join(parent, "ck.tar")
	out, err := live.NewFileSink(path)
	require.NoError(t, err)
	a, err := live.Start(images, out, archive.Tar, 1, &counter{})
	require.NoError(t, err)
	a.Abort()
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// TestFileSinkRegion: a file sink's region is the partial file it created, even when its name was
// taken by another file since (whoever may write the checkpoint's directory), and it stays readable
// after the sink's abort removed the file.
func TestFileSinkRegion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.tar.zst")
	s, err := live.NewFileSink(path)
	require.NoError(t, err)
	partial := live.PartialArchive(path)
	moved := filepath.Join(dir, "moved")
	require.NoError(t, os.Rename(partial, moved))
	require.NoError(t, os.WriteFile(partial, []byte("someone else's"), 0o600))

	r, err := s.(archive.Placer).Region()
	require.NoError(t, err)
	defer r.Close()
	_, err = r.WriteAt([]byte("placed"), 4)
	require.NoError(t, err)
	got, err := os.ReadFile(moved)
	require.NoError(t, err)
	assert.Equal(t, "\x00\x00\x00\x00placed", string(got), "the sink's own file")
	other, err := os.ReadFile(partial)
	require.NoError(t, err)
	assert.Equal(t, "someone else's", string(other), "the file now at its name is untouched")

	require.NoError(t, s.Abort())
	back := make([]byte, 6)
	_, err = r.ReadAt(back, 4)
	require.NoError(t, err)
	assert.Equal(t, "placed", string(back))
}
