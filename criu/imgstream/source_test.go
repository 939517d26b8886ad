package imgstream_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/criu/imgstream"
)

// entry is a tar entry of a test archive: body, or, with size set, a header announcing size bytes
// and no body (the archive ends there).
type entry struct {
	name string
	body string
	size int64
}

// rawTar writes entries as a plain tar, with no check on names or sizes.
func rawTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.size > 0 {
			size = e.size
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: size, Mode: 0o600, Format: tar.FormatPAX}))
		if e.size > 0 {
			return buf.Bytes() // the header alone: the reader must refuse it before the body
		}
		_, err := io.WriteString(tw, e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// source opens data as an ArchiveSource keeping 1 KiB in memory, the rest in spill.
func source(t *testing.T, data []byte, spill string) *imgstream.ArchiveSource {
	t.Helper()
	ts, err := archive.OpenTar(bytes.NewReader(data), 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ts.Close() })
	return imgstream.NewArchiveSource(ts, 1<<10, spill)
}

// indexOf is an index entry listing names.
func indexOf(t *testing.T, names ...string) entry {
	t.Helper()
	data, err := json.Marshal(names)
	require.NoError(t, err)
	return entry{name: imgstream.IndexName, body: string(data)}
}

// TestArchiveSourceHostile: an archive read straight into CRIU's pipes is held to the limits
// archive.Extract applies (archive.CheckEntry), whether or not it has an index, and its index is
// bounded too: each refusal names the entry and the limit.
func TestArchiveSourceHostile(t *testing.T) {
	many := make([]entry, archive.MaxEntries+1)
	for i := range many {
		many[i] = entry{name: "e" + strings.Repeat("x", i%7) + "-" + string(rune('a'+i%26)) + ".img"}
	}
	manyNames := make([]string, archive.MaxEntries+1)
	for i := range manyNames {
		manyNames[i] = "a.img"
	}
	tests := []struct {
		name      string
		entries   []entry
		readIndex bool
		want      string
		wantIs    error
	}{
		{name: "too many entries", entries: many, want: "more than 100000 entries (archive.MaxEntries)", wantIs: archive.ErrUnsafeEntry},
		{
			name:    "an entry larger than the limit",
			entries: []entry{{name: "pages-1.img", size: archive.MaxEntrySize + 1}},
			want:    "out of range (limit 1099511627776, archive.MaxEntrySize)", wantIs: archive.ErrUnsafeEntry,
		},
		{
			name:    "an entry larger than the spill directory's free space",
			entries: []entry{{name: "pages-1.img", size: archive.MaxEntrySize}},
			want:    "point checkpoint.temp_dir at a larger file system", wantIs: archive.ErrNoRoom,
		},
		{name: "parent directory", entries: []entry{{name: "../escape.img", body: "x"}}, want: `".." element`, wantIs: archive.ErrUnsafeEntry},
		{name: "absolute path", entries: []entry{{name: "/etc/escape.img", body: "x"}}, want: "absolute path", wantIs: archive.ErrUnsafeEntry},
		{name: "subdirectory", entries: []entry{{name: "sub/escape.img", body: "x"}}, want: "directory component", wantIs: archive.ErrUnsafeEntry},
		{name: "dot-dot part", entries: []entry{{name: archive.PartName("..", 0), body: "x"}}, want: "refers to a directory", wantIs: archive.ErrUnsafeEntry},
		{
			name:    "a huge index",
			entries: []entry{{name: imgstream.IndexName, body: `["` + strings.Repeat("a", 4<<20) + `"]`}}, readIndex: true,
			want: "larger than 4 MiB", wantIs: archive.ErrUnsafeEntry,
		},
		{name: "an index of too many names", entries: []entry{indexOf(t, manyNames...)}, readIndex: true, want: "archive.MaxEntries", wantIs: archive.ErrUnsafeEntry},
		{name: "an index naming a parent", entries: []entry{indexOf(t, "core-1.img", "../x")}, readIndex: true, want: `".." element`, wantIs: archive.ErrUnsafeEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside := t.TempDir()
			spill := filepath.Join(outside, "spill")
			require.NoError(t, os.Mkdir(spill, 0o700))
			src := source(t, rawTar(t, tt.entries...), spill)
			var err error
			if tt.readIndex {
				err = src.ReadIndex()
			} else {
				_, err = src.Open("missing.img") // reads, and keeps, the whole archive
			}
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.want)
			assert.ErrorIs(t, err, tt.wantIs)
			left, _ := os.ReadDir(outside)
			assert.Len(t, left, 1, "nothing is written beside the spill directory")
			spilled, _ := os.ReadDir(spill)
			assert.Empty(t, spilled, "spill files are unlinked")
		})
	}
}

// TestArchiveSourceWithoutIndex: an archive without an index gives its images in any order,
// keeping those passed over in memory, then in spill files, and says an absent one is absent.
func TestArchiveSourceWithoutIndex(t *testing.T) {
	big := strings.Repeat("p", 3<<10) // more than the source keeps in memory
	data := rawTar(t, entry{name: "pages-1.img", body: big}, entry{name: "core-1.img", body: "core"},
		entry{name: archive.PartName("pages-2.img", 0), body: "ab"}, entry{name: "pstree.img", body: "tree"},
		entry{name: archive.PartName("pages-2.img", 1), body: "cd"})
	src := source(t, data, t.TempDir())
	require.NoError(t, src.ReadIndex())
	for _, want := range []struct{ name, body string }{
		{"pstree.img", "tree"}, {"core-1.img", "core"}, {"pages-2.img", "abcd"}, {"pages-1.img", big},
	} {
		r, err := src.Open(want.name)
		require.NoError(t, err, want.name)
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.Equal(t, want.body, string(got), want.name)
		require.NoError(t, r.Close())
	}
	_, err := src.Open("mm-1.img")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// FuzzArchiveSource feeds arbitrary archives to an ArchiveSource that unpacks them (WriteAll, as a
// restore that needs files does): it must not panic, and must write only regular files, only in
// its directory.
func FuzzArchiveSource(f *testing.F) {
	for _, seed := range [][]entry{
		{{name: "checkpoint.json", body: "{}"}, {name: imgstream.IndexName, body: `["core-1.img"]`}, {name: "core-1.img", body: "c"}},
		{{name: archive.PartName("pages-1.img", 0), body: "ab"}, {name: "core-1.img", body: "c"}, {name: archive.PartName("pages-1.img", 1), body: "cd"}},
		{{name: "../x", body: "x"}},
		{{name: archive.PartName("..", 0), body: "x"}},
		{{name: imgstream.IndexName, body: `["../x"]`}},
	} {
		f.Add(rawTar(f, seed...))
	}
	f.Add([]byte("not an archive"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := archive.OpenTar(bytes.NewReader(data), 1)
		if err != nil {
			return
		}
		defer ts.Close()
		outside := t.TempDir()
		out, spill := filepath.Join(outside, "out"), filepath.Join(outside, "spill")
		require.NoError(t, os.Mkdir(out, 0o700))
		require.NoError(t, os.Mkdir(spill, 0o700))
		src := imgstream.NewArchiveSource(ts, 1<<10, spill)
		if src.ReadIndex() == nil {
			_ = src.WriteAll(out)
		}
		left, _ := os.ReadDir(outside)
		assert.Len(t, left, 2, "nothing is written beside the directories")
		files, _ := os.ReadDir(out)
		for _, e := range files {
			assert.True(t, e.Type().IsRegular(), "%s is %s", e.Name(), e.Type())
		}
	})
}
