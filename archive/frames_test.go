package archive

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendFrames writes archives in segments, as a streamed dump does (a front the Writer
// compresses, pages compressed ahead of time by EntryEncoders, more entries, the trailer), and
// reads them back byte-exact with Extract and with OpenTar, for every concatenable codec and both
// the sequential and the parallel reader and writer.
func TestAppendFrames(t *testing.T) {
	front := compressibleBytes(100<<10, 1)
	part0, part1 := randomBytes(300<<10+7, 2), compressibleBytes(200<<10, 3)
	whole := compressibleBytes(1000, 4)
	for _, c := range []Codec{Zstd, LZ4, Gzip} {
		for _, workers := range []int{1, 2} {
			t.Run(string(c)+"/"+string(rune('0'+workers)), func(t *testing.T) {
				var out bytes.Buffer
				w, err := NewWriter(&out, c, workers)
				require.NoError(t, err)
				_, err = w.AddReader("checkpoint.json", int64(len(front)), bytes.NewReader(front))
				require.NoError(t, err)
				var seg bytes.Buffer
				enc, err := NewEntryEncoder(c)
				require.NoError(t, err)
				_, err = enc.Encode(&seg, PartName("pages-1.img", 0), int64(len(part0)), bytes.NewReader(part0))
				require.NoError(t, err)
				_, err = enc.Encode(&seg, PartName("pages-1.img", 1), int64(len(part1)), io.MultiReader(bytes.NewReader(part1)))
				require.NoError(t, err)
				_, err = w.AppendFrames(&seg)
				require.NoError(t, err)
				seg.Reset()
				_, err = enc.Encode(&seg, "pages-2.img", int64(len(whole)), bytes.NewReader(whole))
				require.NoError(t, err)
				_, err = w.AppendFrames(&seg)
				require.NoError(t, err)
				_, err = w.AddReader("stats-dump", 5, bytes.NewReader([]byte("stats")))
				require.NoError(t, err)
				require.NoError(t, w.Close())

				dir := t.TempDir()
				_, err = Extract(bytes.NewReader(out.Bytes()), dir, workers)
				require.NoError(t, err)
				for name, want := range map[string][]byte{
					"checkpoint.json": front, "pages-1.img": append(bytes.Clone(part0), part1...), "pages-2.img": whole, "stats-dump": []byte("stats"),
				} {
					got, err := os.ReadFile(filepath.Join(dir, name))
					require.NoError(t, err)
					require.True(t, bytes.Equal(want, got), name)
				}
				names, _ := readEntries(t, out.Bytes(), workers)
				require.Equal(t, []string{"checkpoint.json", "pages-1.img.part-0000", "pages-1.img.part-0001", "pages-2.img", "stats-dump"}, names)
			})
		}
	}
}

// TestAppendFramesRefused: codecs whose frames cannot follow one another are refused, and the
// Writer stays usable.
func TestAppendFramesRefused(t *testing.T) {
	for _, c := range []Codec{Zlib, Tar} {
		t.Run(string(c), func(t *testing.T) {
			_, err := NewEntryEncoder(c)
			require.ErrorIs(t, err, ErrNotConcatenable)
			var out bytes.Buffer
			w, err := NewWriter(&out, c, 1)
			require.NoError(t, err)
			_, err = w.AppendFrames(bytes.NewReader(nil))
			require.ErrorIs(t, err, ErrNotConcatenable)
			_, err = w.AddReader("a", 1, bytes.NewReader([]byte("a")))
			require.NoError(t, err)
			require.NoError(t, w.Close())
			_, err = Extract(bytes.NewReader(out.Bytes()), t.TempDir(), 1)
			require.NoError(t, err)
		})
	}
}

// TestAppendFramesPieces: frames handed over in many pieces (a dump's encoded chunks, read back
// from memory and from the spill file) go through the destination's buffer, with no buffer made for
// each piece (a bufio.Writer's ReadFrom handed the pieces to os.File's one by one once its buffer was
// empty: a 32 KiB buffer and a write(2) each).
func TestAppendFramesPieces(t *testing.T) {
	var seg bytes.Buffer
	enc, err := NewEntryEncoder(LZ4)
	require.NoError(t, err)
	data := compressibleBytes(1<<20, 5)
	_, err = enc.Encode(&seg, "pages-1.img", int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	const pieces = 200
	step := seg.Len()/pieces + 1
	out, err := os.Create(filepath.Join(t.TempDir(), "archive"))
	require.NoError(t, err)
	defer out.Close()
	w, err := NewWriter(bufio.NewWriterSize(out, 16<<10), LZ4, 1) // smaller than the frames
	require.NoError(t, err)
	rs := make([]io.Reader, 0, pieces)
	pieced := func() io.Reader {
		rs = rs[:0]
		for b := seg.Bytes(); len(b) > 0; b = b[min(step, len(b)):] {
			rs = append(rs, struct{ io.Reader }{bytes.NewReader(b[:min(step, len(b))])}) // Read alone
		}
		return io.MultiReader(rs...)
	}
	readers := testing.AllocsPerRun(1, func() { pieced() })
	allocs := testing.AllocsPerRun(1, func() { _, err = w.AppendFrames(pieced()) })
	require.NoError(t, err)
	require.Less(t, allocs-readers, float64(pieces/2), "allocations for %d pieces", pieces)
}
