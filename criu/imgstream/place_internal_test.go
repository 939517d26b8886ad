package imgstream

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
)

// placedRun is a held capture into a local archive with room at its front, as a streamed dump of
// a tree whose memory exceeds the memory limit runs one.
type placedRun struct {
	c    *Capture
	aw   *archive.Writer
	out  live.Sink
	path string
	dir  string
}

// startPlaced starts a held capture of codec, limit bytes of memory, into an archive file with
// front bytes of room, through the sink sink makes of its ArchiveSink.
func startPlaced(t *testing.T, codec archive.Codec, limit, front int64, sink func(ArchiveSink) Sink) *placedRun {
	t.Helper()
	h := &placedRun{dir: t.TempDir(), path: filepath.Join(t.TempDir(), "ck"+codec.Extension())}
	var err error
	h.out, err = live.NewFileSink(h.path)
	require.NoError(t, err)
	h.aw, err = archive.NewWriter(h.out, codec, 1)
	require.NoError(t, err)
	_, err = h.aw.Reserve(front)
	require.NoError(t, err)
	h.c, err = StartHeldCapture(h.dir, limit, t.TempDir(), nil, sink(ArchiveSink{W: h.aw}), 2)
	require.NoError(t, err)
	t.Cleanup(h.c.Release)
	return h
}

// send sends images in order and fits the archive's front to what came besides the pages.
func (h *placedRun) send(t *testing.T, images map[string][]byte, order []string) {
	t.Helper()
	sendImages(t, h.dir, images, order)
	<-h.c.Drained()
	require.NoError(t, h.aw.FitFront(h.c.FrontSizes()))
	h.c.Flush()
}

// placedBytes is the number of bytes of the chunks the capture placed.
func (h *placedRun) placedBytes() int64 {
	var n int64
	for _, it := range h.c.arrived {
		if it.placed {
			n += it.size
		}
	}
	return n
}

// archiveOrder lists the entries of the archive at path in order.
func archiveOrder(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	ts, err := archive.OpenTar(f, 1)
	require.NoError(t, err)
	defer ts.Close()
	var names []string
	for {
		hdr, err := ts.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		require.NoError(t, err)
		names = append(names, hdr.Name)
	}
}

// TestHeldCapturePlaces: into an archive with room at its front, the pages chunks go into their
// place as they come, the first encoder's, in restore order (two pages images one after the
// other, as CRIU dumps two processes), while a small memory limit makes the rest spill; the
// archive lists the other images first and holds every image byte-exact; the front may outgrow
// the room, which moves the pages back.
func TestHeldCapturePlaces(t *testing.T) {
	const chunks, limit = 6, 2 * ChunkSize
	random := make([]byte, chunks*ChunkSize+1234)
	_, err := rand.New(rand.NewSource(4)).Read(random)
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		codec archive.Codec
		front int64
		core  int
	}{
		{"zstd", archive.Zstd, 1 << 20, 100},
		{"lz4", archive.LZ4, 1 << 20, 100},
		{"lz4, a front larger than its room", archive.LZ4, 64 << 10, 300 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startPlaced(t, tc.codec, limit, tc.front, func(a ArchiveSink) Sink { return a })
			core := make([]byte, tc.core)
			_, _ = rand.New(rand.NewSource(5)).Read(core)
			images := map[string][]byte{"pages-1.img": random, "pages-2.img": random[:3*ChunkSize], "core-1.img": core, "pstree.img": []byte("tree")}
			h.send(t, images, []string{"pstree.img", "pages-1.img", "core-1.img", "pages-2.img"})
			st, err := h.c.Wait()
			require.NoError(t, err)
			require.NoError(t, h.aw.Close())
			_, err = h.out.Commit()
			require.NoError(t, err)

			assert.GreaterOrEqual(t, st.Placed, int64(ChunkSize), "at least the first chunk went into its place")
			assert.Equal(t, h.placedBytes(), st.Placed)
			names := archiveOrder(t, h.path)
			require.GreaterOrEqual(t, len(names), 4)
			assert.Equal(t, []string{"pstree.img", "core-1.img"}, names[:2], "the other images first")
			arch, err := os.ReadFile(h.path)
			require.NoError(t, err)
			requireArchiveHolds(t, arch, images)
		})
	}
}

// failingSink fails to take the image named fail.
type failingSink struct {
	ArchiveSink
	fail string
}

var errSinkFailed = errors.New("the archive could not be written")

func (s failingSink) Put(name string, n int, last bool, size int64, r io.Reader) error {
	if name == s.fail {
		return errSinkFailed
	}
	return s.ArchiveSink.Put(name, n, last, size, r)
}

// TestHeldCapturePlacedRescue: when the archive fails after pages went into their place, Rescue
// reads them back from there, with the rest from memory and the spill file: the images come out
// byte-exact, even once the archive's partial file is gone.
func TestHeldCapturePlacedRescue(t *testing.T) {
	random := make([]byte, 4*ChunkSize)
	_, err := rand.New(rand.NewSource(6)).Read(random)
	require.NoError(t, err)
	h := startPlaced(t, archive.Zstd, 2*ChunkSize, 1<<20, func(a ArchiveSink) Sink { return failingSink{a, "core-1.img"} })
	images := map[string][]byte{"pages-1.img": random, "core-1.img": []byte("core")}
	h.send(t, images, []string{"pages-1.img", "core-1.img"})
	_, err = h.c.Wait()
	require.ErrorIs(t, err, errSinkFailed)
	require.Positive(t, h.placedBytes(), "pages were placed before the archive failed")
	require.NoError(t, h.out.Abort())
	require.NoFileExists(t, live.PartialArchive(h.path))

	out := t.TempDir()
	require.NoError(t, h.c.Rescue(&DirSink{Dir: out}))
	for name, want := range images {
		got, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), name)
	}
}

// TestPlacerFits: a chunk fits the placement when it is the next of the pages image being placed,
// or the first of another once that one is complete.
func TestPlacerFits(t *testing.T) {
	pl := &placer{}
	assert.True(t, pl.fits(&item{name: "pages-1.img", n: 0}))
	pl.image, pl.next = "pages-1.img", 1
	assert.True(t, pl.fits(&item{name: "pages-1.img", n: 1}))
	assert.False(t, pl.fits(&item{name: "pages-1.img", n: 2}), "a chunk ahead of its turn")
	assert.False(t, pl.fits(&item{name: "pages-2.img", n: 0}), "another image while pages-1 is not complete")
	pl.image = ""
	assert.True(t, pl.fits(&item{name: "pages-2.img", n: 0}))
}
