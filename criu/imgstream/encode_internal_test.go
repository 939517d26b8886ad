package imgstream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cedana/cedana/archive"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEncWriterRoom checks that an encoder's output stays in memory while it may not spill: a
// chunk whose output finds no room fails with errNoRoom, gives back what it took, and leaves the
// spill file alone; the writer then goes on where it was. Once it may spill (CRIU is done), what
// finds no room goes to the spill file.
func TestEncWriterRoom(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     int64 // the spool's memory, in chunks
		held      int   // raw chunks the drainers hold in it
		first     int   // bytes of a first chunk's output, which fits
		second    int   // bytes of a second chunk's output
		fits      bool  // whether the second fits
		inMemLeft int64 // chunks counted in memory afterwards
		spill     bool  // the writer may spill
	}{
		{"both in one buffer", 2, 1, 1 << 20, 1 << 20, true, 2, false},
		{"second crosses into a buffer of its own", 3, 1, ChunkSize - 10, 20, true, 3, false},
		{"no room for the second's next buffer", 2, 1, ChunkSize - 10, 20, false, 2, false},
		{"no room at all", 1, 1, 0, 10, false, 1, false},
		{"no room for the second's next buffer, spilled", 2, 1, ChunkSize - 10, 20, true, 2, true},
		{"no room at all, spilled", 1, 1, 0, 10, true, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(tc.limit*ChunkSize, t.TempDir(), nil)
			defer s.close()
			for range tc.held {
				require.NotNil(t, s.buffer())
			}
			w := &encWriter{s: s, spill: tc.spill}
			if tc.first > 0 {
				require.True(t, w.begin())
				_, err := w.Write(bytes.Repeat([]byte{1}, tc.first))
				require.NoError(t, err)
			}
			second := bytes.Repeat([]byte{2}, tc.second)
			ok := w.begin()
			if ok {
				_, err := w.Write(second)
				if err != nil {
					require.ErrorIs(t, err, errNoRoom)
					w.rewind()
					ok = false
				}
			}
			assert.Equal(t, tc.fits, ok)
			if ok {
				got, err := io.ReadAll(s.encodedReader(w.out))
				require.NoError(t, err)
				assert.Equal(t, second, got)
			}
			assert.Equal(t, tc.inMemLeft*ChunkSize, s.inMem)
			if tc.spill {
				assert.NotNil(t, s.spill, "what found no room spilled")
			} else {
				assert.Nil(t, s.spill, "an encoder spills only once CRIU is done")
			}
		})
	}
}

// TestHeldCaptureEncodesLate checks what the encoders do with the pages chunks that found no
// memory while CRIU dumped: once it is done, they compress them, their output spilled where
// memory is still short, if the pages compress well (each codec's archive then holds every pages
// chunk encoded, and the spill file keeps only their output); incompressible ones stay as they are
// rather than spill twice. Either way the archive holds the images byte-exact.
func TestHeldCaptureEncodesLate(t *testing.T) {
	const chunks = 8
	random := make([]byte, chunks*ChunkSize)
	_, err := rand.New(rand.NewSource(1)).Read(random)
	require.NoError(t, err)
	counter := make([]byte, chunks*ChunkSize)
	for i := range len(counter) / 8 {
		binary.LittleEndian.PutUint64(counter[i*8:], uint64(i/2+1)*0x10001) // memhog's compressible pattern
	}
	for _, tc := range []struct {
		name     string
		codec    archive.Codec
		pages    []byte
		allAhead bool
	}{
		{"zstd compressible", archive.Zstd, counter, true},
		{"lz4 compressible", archive.LZ4, counter, true},
		{"zstd random", archive.Zstd, random, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, st, arch, images := heldCapture(t, tc.codec, tc.pages, 2*ChunkSize, func(a ArchiveSink) Sink { return a })
			assert.Positive(t, st.Spilled)
			if tc.allAhead {
				assert.Less(t, allocated(t, c.spool.spill), int64(len(tc.pages))/2,
					"the spilled chunks' blocks freed once encoded: the spill file holds their smaller output")
				assert.Equal(t, int64(len(tc.pages)), st.Encoded+st.EncodedLater, "every pages chunk compressed by the encoders")
				assert.Positive(t, st.EncodedLater, "some after CRIU was done")
			} else {
				assert.LessOrEqual(t, st.EncodedLater, int64(ChunkSize), "one incompressible chunk spilled a second time, no more")
			}
			requireArchiveHolds(t, arch, images)
		})
	}
}

// TestHeldCaptureLookahead: random pages, which no encoder spills a second time, are compressed
// once CRIU is done by the archive writer and, on a second core, by the lookahead, which encodes
// the next such chunk into the two buffers the spool set aside for it while the writer compresses
// one: about half of them, within the memory limit, and the archive holds the images byte-exact.
func TestHeldCaptureLookahead(t *testing.T) {
	const chunks, limit = 12, 6 * ChunkSize
	random := make([]byte, chunks*ChunkSize)
	_, err := rand.New(rand.NewSource(2)).Read(random)
	require.NoError(t, err)
	for _, codec := range []archive.Codec{archive.Zstd, archive.LZ4} {
		t.Run(string(codec), func(t *testing.T) {
			h := startHeld(t, codec, limit, func(a ArchiveSink) Sink { return a })
			assert.Equal(t, int64(aheadBuffers*ChunkSize), h.c.spool.reserve, "the lookahead's buffers are set aside")
			st, arch, images := h.finish(t, random)
			assert.LessOrEqual(t, st.PeakMemory, int64(limit), "the lookahead's buffers count against the limit")
			raw := int64(len(random)) - st.Encoded - st.EncodedLater
			assert.GreaterOrEqual(t, st.EncodedLater, int64(chunks/4*ChunkSize), "the lookahead encoded some of the chunks left as they were")
			assert.GreaterOrEqual(t, raw, int64(chunks/4*ChunkSize), "the writer compressed others")
			requireArchiveHolds(t, arch, images)
		})
	}
}

// heldRun is a held capture into an archive, as a streamed dump runs one.
type heldRun struct {
	c   *Capture
	aw  *archive.Writer
	buf bytes.Buffer
	dir string
}

// startHeld starts a held capture, limit bytes of memory, into an archive of codec through the
// sink sink makes of its ArchiveSink; the capture is released when the test ends.
func startHeld(t *testing.T, codec archive.Codec, limit int64, sink func(ArchiveSink) Sink) *heldRun {
	t.Helper()
	h := &heldRun{dir: t.TempDir()}
	var err error
	h.aw, err = archive.NewWriter(&h.buf, codec, 1)
	require.NoError(t, err)
	h.c, err = StartHeldCapture(h.dir, limit, t.TempDir(), nil, sink(ArchiveSink{W: h.aw}), 2)
	require.NoError(t, err)
	t.Cleanup(h.c.Release)
	return h
}

// finish sends the images of a tree whose pages image is pages, waits for the capture and returns
// its stats, the archive and the images.
func (h *heldRun) finish(t *testing.T, pages []byte) (Stats, []byte, map[string][]byte) {
	t.Helper()
	images := map[string][]byte{"pages-1.img": pages, "core-1.img": []byte("core"), "pstree.img": []byte("tree")}
	sendImages(t, h.dir, images, []string{"pstree.img", "core-1.img", "pages-1.img"})
	<-h.c.Drained()
	h.c.Flush()
	st, err := h.c.Wait()
	require.NoError(t, err)
	require.NoError(t, h.aw.Close())
	return st, h.buf.Bytes(), images
}

// heldCapture is startHeld and finish.
func heldCapture(t *testing.T, codec archive.Codec, pages []byte, limit int64, sink func(ArchiveSink) Sink) (*Capture, Stats, []byte, map[string][]byte) {
	t.Helper()
	h := startHeld(t, codec, limit, sink)
	st, arch, images := h.finish(t, pages)
	return h.c, st, arch, images
}

// requireArchiveHolds extracts the archive and checks that it holds the images byte-exact.
func requireArchiveHolds(t *testing.T, arch []byte, images map[string][]byte) {
	t.Helper()
	out := t.TempDir()
	_, err := archive.Extract(bytes.NewReader(arch), out, 1)
	require.NoError(t, err)
	for name, want := range images {
		got, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), name)
	}
}

// routingSink is an archive sink that counts the bytes of pages chunks the capture hands over
// through Put and through PutEncoding, and offers an encoder for PutEncoding or not (direct).
type routingSink struct {
	ArchiveSink
	direct           bool
	put, putEncoding *int64
}

func (s routingSink) DirectEncoder() (ChunkEncoder, bool) {
	if !s.direct {
		return nil, false
	}
	return s.ArchiveSink.DirectEncoder()
}

func (s routingSink) Put(name string, n int, last bool, size int64, r io.Reader) error {
	if strings.HasPrefix(name, "pages-") {
		*s.put += size
	}
	return s.ArchiveSink.Put(name, n, last, size, r)
}

func (s routingSink) PutEncoding(enc ChunkEncoder, name string, n int, last bool, size int64, r io.Reader) error {
	*s.putEncoding += size
	return s.ArchiveSink.PutEncoding(enc, name, n, last, size, r)
}

// TestHeldCaptureEncodesDirectly: the pages chunks that no worker encoded go to a sink that offers
// a direct encoder through it (a zstd or lz4 archive: frames of their own, stored blocks where the
// pages do not compress), else through Put; the archive holds the images byte-exact either way.
func TestHeldCaptureEncodesDirectly(t *testing.T) {
	const chunks, limit = 6, 4 * ChunkSize
	random := make([]byte, chunks*ChunkSize)
	_, err := rand.New(rand.NewSource(3)).Read(random)
	require.NoError(t, err)
	for _, tc := range []struct {
		codec  archive.Codec
		direct bool
	}{{archive.Zstd, true}, {archive.Zstd, false}, {archive.LZ4, true}, {archive.LZ4, false}} {
		direct := tc.direct
		t.Run(fmt.Sprint(tc.codec, ", direct=", direct), func(t *testing.T) {
			var put, putEncoding int64
			_, st, arch, images := heldCapture(t, tc.codec, random, limit, func(a ArchiveSink) Sink {
				return routingSink{a, direct, &put, &putEncoding}
			})
			// Chunks end where CRIU's writes and the pipe's turns end them: count bytes.
			byWriter := int64(len(random)) - st.Encoded - st.EncodedLater
			require.Positive(t, byWriter, "bytes left to the writer")
			if direct {
				assert.Equal(t, byWriter, putEncoding)
				assert.Zero(t, put)
			} else {
				assert.Equal(t, byWriter, put)
				assert.Zero(t, putEncoding)
			}
			requireArchiveHolds(t, arch, images)
		})
	}
}
