package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPartNames(t *testing.T) {
	tests := []struct {
		entry string
		name  string
		n     int
		ok    bool
	}{
		{PartName("pages-1.img", 0), "pages-1.img", 0, true},
		{PartName("pages-1.img", 12), "pages-1.img", 12, true},
		{"pages-1.img", "", 0, false},
		{"x.part-12", "", 0, false},
		{".part-0001", "", 0, false},
		{"x.part-00a1", "", 0, false},
	}
	for _, tt := range tests {
		name, n, ok := ParsePartName(tt.entry)
		assert.Equal(t, tt.ok, ok, tt.entry)
		if tt.ok {
			assert.Equal(t, tt.name, name)
			assert.Equal(t, tt.n, n)
		}
	}
}

// TestPartsRoundTrip: a file archived in parts (as while it grows) comes back whole.
func TestPartsRoundTrip(t *testing.T) {
	src := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes
	require.NoError(t, os.WriteFile(filepath.Join(src, "pages-1.img"), data, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "core-1.img"), []byte("core"), 0o600))
	for _, codec := range []Codec{Tar, Zstd, LZ4, Gzip, Zlib} {
		t.Run(string(codec), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, codec, 2)
			require.NoError(t, err)
			path := filepath.Join(src, "pages-1.img")
			for i, off := range []int64{0, 100000, 300000} {
				end := []int64{100000, 300000, int64(len(data))}[i]
				_, err := w.AddFilePart(path, "pages-1.img", i, off, end-off)
				require.NoError(t, err)
				if i == 0 { // other files may come between the parts
					_, err = w.AddFile(filepath.Join(src, "core-1.img"), "core-1.img")
					require.NoError(t, err)
				}
			}
			require.NoError(t, w.Close())
			dst := t.TempDir()
			raw, err := Extract(bytes.NewReader(buf.Bytes()), dst, 2)
			require.NoError(t, err)
			assert.Equal(t, int64(len(data)+4), raw)
			got, err := os.ReadFile(filepath.Join(dst, "pages-1.img"))
			require.NoError(t, err)
			assert.Equal(t, data, got)
			names, _ := os.ReadDir(dst)
			assert.Len(t, names, 2, "parts are joined, not extracted as files")
		})
	}
}

// TestPartsOutOfOrder: parts must follow one another in order; a part that would append to a file
// the archive did not start is refused.
func TestPartsOutOfOrder(t *testing.T) {
	src := t.TempDir()
	path := filepath.Join(src, "f")
	require.NoError(t, os.WriteFile(path, []byte("abcdef"), 0o600))
	cases := map[string][][2]int{
		"starts at part 1": {{1, 0}},
		"skips a part":     {{0, 0}, {2, 3}},
	}
	for name, parts := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Tar, 1)
			require.NoError(t, err)
			for _, p := range parts {
				_, err := w.AddFilePart(path, "pages-1.img", p[0], int64(p[1]), 3)
				require.NoError(t, err)
			}
			require.NoError(t, w.Close())
			_, err = Extract(bytes.NewReader(buf.Bytes()), t.TempDir(), 1)
			assert.ErrorIs(t, err, ErrUnsafeEntry)
		})
	}
	// A whole file and parts of the same name clash.
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Tar, 1)
	require.NoError(t, err)
	_, err = w.AddFile(path, "pages-1.img")
	require.NoError(t, err)
	_, err = w.AddFilePart(path, "pages-1.img", 0, 0, 3)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = Extract(bytes.NewReader(buf.Bytes()), t.TempDir(), 1)
	assert.Error(t, err)
}
