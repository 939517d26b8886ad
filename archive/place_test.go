package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// filePlacer is a Placer over a file, as live's file sink is.
type filePlacer struct{ f *os.File }

func (p filePlacer) Write(b []byte) (int, error) { return p.f.Write(b) }

func (p filePlacer) Jump(off int64) error {
	_, err := p.f.Seek(off, io.SeekStart)
	return err
}

func (p filePlacer) Region() (Region, error) { return os.OpenFile(p.f.Name(), os.O_RDWR, 0) }

// placeEntry encodes an entry holding data into the placement, as a streamed dump places a pages
// chunk.
func placeEntry(t *testing.T, enc *EntryEncoder, p *Placement, name string, data []byte) {
	t.Helper()
	_, err := enc.Encode(p, name, int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	require.NoError(t, p.Flush())
}

// readEntries reads an archive's entries, in order, with our reader on workers cores.
func readEntries(t *testing.T, data []byte, workers int) ([]string, map[string][]byte) {
	t.Helper()
	ts, err := OpenTar(bytes.NewReader(data), workers)
	require.NoError(t, err)
	defer ts.Close()
	var names []string
	files := map[string][]byte{}
	for {
		hdr, err := ts.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(ts)
		require.NoError(t, err)
		names = append(names, hdr.Name)
		files[hdr.Name] = b
	}
	return names, files
}

// closeArchive closes w, written into f, and returns the archive: f up to where the stream ended,
// what live's file sink keeps.
func closeArchive(t *testing.T, w *Writer, f *os.File) []byte {
	t.Helper()
	require.NoError(t, w.Close())
	end, err := f.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	data, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	return data[:end]
}

// newPlacedArchive starts an archive of codec c in a file with front bytes reserved.
func newPlacedArchive(t *testing.T, c Codec, front int64) (*Writer, *Placement, *os.File) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "a"+c.Extension()))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	w, err := NewWriter(filePlacer{f}, c, 1)
	require.NoError(t, err)
	p, err := w.Reserve(front)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return w, p, f
}

// TestPlacement: entries placed ahead of the front come after it in the archive, which our
// reader and the codec's tool read as if written in order; the room the front leaves is a
// skippable frame; a placed entry whose encoding failed is rewound; the archive ends where the
// Writer's stream does.
func TestPlacement(t *testing.T) {
	for _, c := range []Codec{Zstd, LZ4} {
		t.Run(string(c), func(t *testing.T) {
			w, p, f := newPlacedArchive(t, c, 256<<10)
			enc, err := NewEntryEncoder(c)
			require.NoError(t, err)
			want := map[string][]byte{
				"pages-1.img.part0": randomBytes(300<<10, 1),
				"pages-1.img.part1": compressibleBytes(200<<10, 2),
				"checkpoint.json":   []byte(`{"pid":1}`),
				"core-1.img":        compressibleBytes(10<<10, 3),
				"tail.img":          []byte("after the placed ones"),
			}
			placeEntry(t, enc, p, "pages-1.img.part0", want["pages-1.img.part0"])
			mark := p.Offset()
			// An entry that fails halfway: its size promises more than its reader holds.
			_, err = enc.Encode(p, "broken.img", 1<<20, bytes.NewReader(randomBytes(100<<10, 9)))
			require.Error(t, err)
			require.NoError(t, p.Rewind(mark))
			placeEntry(t, enc, p, "pages-1.img.part1", want["pages-1.img.part1"])

			require.NoError(t, w.FitFront([]int64{9, 10 << 10}))
			for _, name := range []string{"checkpoint.json", "core-1.img"} {
				_, err := w.AddReader(name, int64(len(want[name])), bytes.NewReader(want[name]))
				require.NoError(t, err)
			}
			require.NoError(t, w.EndFront())
			_, err = w.AddReader("tail.img", int64(len(want["tail.img"])), bytes.NewReader(want["tail.img"]))
			require.NoError(t, err)
			data := closeArchive(t, w, f)
			names, got := readEntries(t, data, 2)
			assert.Equal(t, []string{"checkpoint.json", "core-1.img", "pages-1.img.part0", "pages-1.img.part1", "tail.img"}, names)
			for name, b := range want {
				assert.True(t, bytes.Equal(b, got[name]), "%s differs", name)
			}
			tool := map[Codec]string{Zstd: "zstd", LZ4: "lz4"}[c]
			requireToolEntries(t, tool, data, names, want)
		})
	}
}

// requireToolEntries checks that `tool -dc` decodes in to a tar stream of the named entries,
// where the tool is installed.
func requireToolEntries(t *testing.T, tool string, in []byte, names []string, want map[string][]byte) {
	t.Helper()
	out, ok := toolDecode(t, tool, in)
	if !ok {
		return
	}
	tr := tar.NewReader(bytes.NewReader(out))
	for _, name := range names {
		hdr, err := tr.Next()
		require.NoError(t, err, "%s -dc", tool)
		assert.Equal(t, name, hdr.Name)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want[name], b), "%s -dc: %s differs", tool, name)
	}
}

// TestPlacementRewind: rewinding drops what waits in memory and what was written past the mark
// alike; small writes wait, large ones go out at once after them, and what is placed reads back.
func TestPlacementRewind(t *testing.T) {
	_, p, _ := newPlacedArchive(t, Zstd, 4096)
	large := randomBytes(placeDirect, 1)
	for _, b := range [][]byte{[]byte("abc"), large, []byte("def")} {
		n, err := p.Write(b)
		require.NoError(t, err)
		require.Equal(t, len(b), n)
	}
	require.NoError(t, p.Rewind(int64(3+len(large)+1))) // within what waits
	_, err := p.Write([]byte("X"))
	require.NoError(t, err)
	require.NoError(t, p.Flush())
	got, err := io.ReadAll(p.Section(0, p.Offset()))
	require.NoError(t, err)
	assert.Equal(t, append(append([]byte("abc"), large...), "dX"...), got)

	require.NoError(t, p.Rewind(2)) // before what was written
	_, err = p.Write([]byte("Y"))
	require.NoError(t, err)
	require.NoError(t, p.Flush())
	got, err = io.ReadAll(p.Section(0, p.Offset()))
	require.NoError(t, err)
	assert.Equal(t, []byte("abY"), got)
}

// TestPlacementFitFront: a front that would not fit in the room reserved moves what was placed
// further back, and the archive reads in order.
func TestPlacementFitFront(t *testing.T) {
	w, p, f := newPlacedArchive(t, Zstd, 16<<10)
	enc, err := NewEntryEncoder(Zstd)
	require.NoError(t, err)
	pages := randomBytes(3<<20+5, 1)
	placeEntry(t, enc, p, "pages-1.img", pages)
	front := randomBytes(200<<10, 2)
	require.NoError(t, w.FitFront([]int64{int64(len(front))}))
	_, err = w.AddReader("core-1.img", int64(len(front)), bytes.NewReader(front))
	require.NoError(t, err)
	assert.Equal(t, p.Offset(), p.Moved(), "everything placed was moved")
	names, got := readEntries(t, closeArchive(t, w, f), 2)
	assert.Equal(t, []string{"core-1.img", "pages-1.img"}, names)
	assert.True(t, bytes.Equal(front, got["core-1.img"]))
	assert.True(t, bytes.Equal(pages, got["pages-1.img"]))
}

// TestPlacementFrontFull: without FitFront, a front that outgrows its room fails the archive
// with ErrFrontFull before it overwrites anything placed, which reads back intact.
func TestPlacementFrontFull(t *testing.T) {
	w, p, _ := newPlacedArchive(t, LZ4, 16<<10)
	enc, err := NewEntryEncoder(LZ4)
	require.NoError(t, err)
	pages := randomBytes(1<<20, 1)
	placeEntry(t, enc, p, "pages-1.img", pages)
	placed := p.Offset()
	front := randomBytes(200<<10, 2)
	_, err = w.AddReader("core-1.img", int64(len(front)), bytes.NewReader(front))
	if err == nil {
		err = w.Close()
	}
	require.ErrorIs(t, err, ErrFrontFull)
	placedBytes, err := io.ReadAll(p.Section(0, placed))
	require.NoError(t, err)
	names, got := readEntries(t, placedBytes, 2)
	assert.Equal(t, []string{"pages-1.img"}, names)
	assert.True(t, bytes.Equal(pages, got["pages-1.img"]))
}

// TestReserveRefused: room is reserved only in a new zstd or lz4 archive whose destination takes
// writes out of order.
func TestReserveRefused(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "a"))
	require.NoError(t, err)
	defer f.Close()
	w, err := NewWriter(filePlacer{f}, Gzip, 1)
	require.NoError(t, err)
	_, err = w.Reserve(1 << 20)
	assert.ErrorContains(t, err, "skippable")

	w, err = NewWriter(&bytes.Buffer{}, Zstd, 1)
	require.NoError(t, err)
	_, err = w.Reserve(1 << 20)
	assert.ErrorContains(t, err, "in order only")

	w, err = NewWriter(filePlacer{f}, Zstd, 1)
	require.NoError(t, err)
	_, err = w.AddReader("a", 1, bytes.NewReader([]byte("a")))
	require.NoError(t, err)
	_, err = w.Reserve(1 << 20)
	assert.ErrorContains(t, err, "written to already")
}
