package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCodec(t *testing.T) {
	tests := []struct {
		in      string
		want    Codec
		wantErr string
	}{
		{in: "none", want: None},
		{in: "tar", want: Tar},
		{in: "gzip", want: Gzip},
		{in: "lz4", want: LZ4},
		{in: "zlib", want: Zlib},
		{in: "zstd", want: Zstd},
		{in: "x", wantErr: `unknown compression "x": use one of none, tar, gzip, lz4, zlib, zstd`},
		{in: "", wantErr: `unknown compression "": use one of none, tar, gzip, lz4, zlib, zstd`},
		{in: "ZSTD", wantErr: `unknown compression "ZSTD"`},
		{in: "gz", wantErr: `unknown compression "gz"`},
		{in: " zstd", wantErr: `unknown compression " zstd"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseCodec(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestExtension(t *testing.T) {
	tests := []struct {
		codec     Codec
		want      string
		isArchive bool
	}{
		{None, "", false},
		{Tar, ".tar", true},
		{Gzip, ".tar.gz", true},
		{LZ4, ".tar.lz4", true},
		{Zlib, ".tar.zlib", true},
		{Zstd, ".tar.zst", true},
		{Codec("bogus"), "", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.codec), func(t *testing.T) {
			assert.Equal(t, tt.want, tt.codec.Extension())
			assert.Equal(t, tt.isArchive, tt.codec.IsArchive())
		})
	}
}

func TestDetect(t *testing.T) {
	emptyTar := buildTar(t)
	oneFile := buildTar(t, regular("a.img", "hello"))
	tests := []struct {
		name string
		in   []byte
		want Codec
	}{
		{"zstd magic", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, Zstd},
		{"lz4 magic", []byte{0x04, 0x22, 0x4d, 0x18, 0x64}, LZ4},
		{"gzip magic", []byte{0x1f, 0x8b, 0x08, 0}, Gzip},
		{"zlib default level", []byte{0x78, 0x9c, 1, 2}, Zlib},
		{"zlib best speed", []byte{0x78, 0x01}, Zlib},
		{"zlib best compression", []byte{0x78, 0xda}, Zlib},
		{"zlib small window", []byte{0x48, 0x0d}, Zlib},
		{"tar", oneFile, Tar},
		{"empty tar", emptyTar, Tar},
		{"real gzip", compress(t, Gzip, oneFile), Gzip},
		{"real zstd", compress(t, Zstd, oneFile), Zstd},
		{"real lz4", compress(t, LZ4, oneFile), LZ4},
		{"real zlib", compress(t, Zlib, oneFile), Zlib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tt.in))
			got, err := Detect(br)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			// Detect only peeks.
			rest, err := io.ReadAll(br)
			require.NoError(t, err)
			assert.Equal(t, tt.in, rest)
		})
	}

	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"text", []byte("this is not a checkpoint archive at all, just some text")},
		{"one byte of gzip magic", []byte{0x1f}},
		{"wrong gzip magic", []byte{0x1f, 0x8c, 0x08, 0}},
		{"wrong zstd magic", []byte{0x28, 0xb5, 0x2f, 0xfe}},
		{"wrong lz4 magic", []byte{0x04, 0x22, 0x4d, 0x19}},
		{"zlib bad check", []byte{0x78, 0x9d}},
		{"zlib preset dictionary", []byte{0x78, 0xbb}},
		{"zlib window too large", []byte{0x88, 0x1c}},
		{"tar with broken magic", bytes.Replace(oneFile, []byte("ustar"), []byte("ustaR"), 1)},
		{"short tar", oneFile[:300]},
		{"random", randomBytes(4096, 9)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Detect(bufio.NewReader(bytes.NewReader(tt.in)))
			require.ErrorIs(t, err, ErrNotArchive)
			assert.EqualError(t, err, "not a checkpoint archive (unrecognised format)")
		})
	}
}

func TestDetectSmallBuffer(t *testing.T) {
	// A bufio.Reader smaller than a tar block still detects compressed
	// streams, and Extract copes by wrapping it.
	data := compress(t, Zstd, buildTar(t, regular("a.img", "hello")))
	c, err := Detect(bufio.NewReaderSize(bytes.NewReader(data), 16))
	require.NoError(t, err)
	assert.Equal(t, Zstd, c)

	tarData := buildTar(t, regular("a.img", "hello"))
	sb := newSandbox(t)
	raw, err := Extract(bufio.NewReaderSize(bytes.NewReader(tarData), 16), sb.out, 1)
	require.NoError(t, err)
	assert.EqualValues(t, 5, raw)
}

// TestRoundTrip archives a checkpoint with every codec and worker count and
// extracts it again.
func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := makeCheckpoint(t, src, 20<<20)
	want := totalSize(files)

	for i, c := range archiveCodecs {
		for _, workers := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", c, workers), func(t *testing.T) {
				work := t.TempDir()
				// Deliberately misleading file name: detection is by content.
				wrong := archiveCodecs[(i+1)%len(archiveCodecs)]
				path := filepath.Join(work, "checkpoint"+wrong.Extension())
				f, err := os.Create(path)
				require.NoError(t, err)
				raw, err := WriteDir(src, f, c, workers)
				require.NoError(t, err)
				require.NoError(t, f.Close())
				assert.Equal(t, want, raw)

				fi, err := os.Stat(path)
				require.NoError(t, err)
				t.Logf("%s workers=%d: %d raw bytes -> %d archive bytes", c, workers, raw, fi.Size())
				if c != Tar {
					// The compressible half must actually be compressed.
					assert.Less(t, fi.Size(), want-int64(len(files["pages-2.img"]))/2)
				}

				f, err = os.Open(path)
				require.NoError(t, err)
				defer f.Close()
				got, err := Detect(bufio.NewReader(f))
				require.NoError(t, err)
				assert.Equal(t, c, got)
				_, err = f.Seek(0, io.SeekStart)
				require.NoError(t, err)

				out := filepath.Join(work, "out")
				require.NoError(t, os.Mkdir(out, 0o755))
				n, err := Extract(f, out, workers)
				require.NoError(t, err)
				assert.Equal(t, want, n)

				names := listDir(t, out)
				require.Len(t, names, len(files))
				for name, data := range files {
					p := filepath.Join(out, name)
					fi, err := os.Lstat(p)
					require.NoError(t, err)
					assert.True(t, fi.Mode().IsRegular(), name)
					assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
					got, err := os.ReadFile(p)
					require.NoError(t, err)
					assert.True(t, bytes.Equal(data, got), "content of %s differs", name)
				}
			})
		}
	}
}

func TestWriterAPI(t *testing.T) {
	src := t.TempDir()
	a := filepath.Join(src, "a")
	b := filepath.Join(src, "b")
	require.NoError(t, os.WriteFile(a, []byte("hello"), 0o600))
	require.NoError(t, os.WriteFile(b, compressibleBytes(100_000, 3), 0o600))

	for _, c := range archiveCodecs {
		t.Run(string(c), func(t *testing.T) {
			var buf closeTracker
			w, err := NewWriter(&buf, c, 0)
			require.NoError(t, err)
			n, err := w.AddFile(a, "a.img")
			require.NoError(t, err)
			assert.EqualValues(t, 5, n)
			n, err = w.AddFile(b, "b.img")
			require.NoError(t, err)
			assert.EqualValues(t, 100_000, n)
			assert.EqualValues(t, 100_005, w.RawBytes())

			for _, name := range []string{"", ".", "..", "sub/a", "/abs", "../a", "a.img"} {
				_, err := w.AddFile(a, name)
				assert.Error(t, err, "name %q", name)
			}
			_, err = w.AddFile(src, "dir.img")
			assert.ErrorContains(t, err, "not a regular file")
			_, err = w.AddFile(filepath.Join(src, "missing"), "missing.img")
			assert.ErrorIs(t, err, os.ErrNotExist)

			require.NoError(t, w.Close())
			require.NoError(t, w.Close(), "second Close is a no-op")
			assert.False(t, buf.closed, "Close must not close the destination")
			_, err = w.AddFile(a, "late.img")
			assert.ErrorContains(t, err, "closed")
			assert.EqualValues(t, 100_005, w.RawBytes())

			sb := newSandbox(t)
			raw, err := Extract(bytes.NewReader(buf.Bytes()), sb.out, 2)
			require.NoError(t, err)
			assert.EqualValues(t, 100_005, raw)
			assert.Equal(t, []string{"a.img", "b.img"}, listDir(t, sb.out))
		})
	}
}

type closeTracker struct {
	bytes.Buffer
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestNewWriterRefusals(t *testing.T) {
	_, err := NewWriter(io.Discard, None, 1)
	assert.ErrorContains(t, err, "none")
	_, err = NewWriter(io.Discard, Codec("bzip2"), 1)
	assert.ErrorContains(t, err, `unknown compression "bzip2"`)
	_, err = NewWriter(nil, Zstd, 1)
	assert.Error(t, err)
	_, err = WriteDir(t.TempDir(), io.Discard, None, 1)
	assert.Error(t, err)
}

func TestWriteDirRefusesNonRegular(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"subdirectory", func(t *testing.T, dir string) { require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755)) }},
		{"symlink", func(t *testing.T, dir string) {
			require.NoError(t, os.Symlink(filepath.Join(dir, "a.img"), filepath.Join(dir, "link.img")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a.img"), []byte("x"), 0o600))
			tt.setup(t, dir)
			var buf bytes.Buffer
			_, err := WriteDir(dir, &buf, Zstd, 1)
			assert.ErrorContains(t, err, "not a regular file")
			assert.Zero(t, buf.Len(), "nothing written")
		})
	}
	_, err := WriteDir(filepath.Join(t.TempDir(), "missing"), io.Discard, Tar, 1)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestWriteDirSortedAndEmpty(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"c", "a", "b"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600))
	}
	var buf bytes.Buffer
	_, err := WriteDir(dir, &buf, Tar, 1)
	require.NoError(t, err)
	// Names appear in order in the uncompressed tar stream.
	ia, ib, ic := bytes.Index(buf.Bytes(), []byte("a\x00")), bytes.Index(buf.Bytes(), []byte("b\x00")), bytes.Index(buf.Bytes(), []byte("c\x00"))
	assert.True(t, ia < ib && ib < ic, "entries sorted")

	// An empty directory gives a valid, empty archive for every codec.
	empty := t.TempDir()
	for _, c := range archiveCodecs {
		var buf bytes.Buffer
		raw, err := WriteDir(empty, &buf, c, 2)
		require.NoError(t, err)
		assert.Zero(t, raw)
		sb := newSandbox(t)
		raw, err = Extract(&buf, sb.out, 2)
		require.NoError(t, err, "codec %s", c)
		assert.Zero(t, raw)
		assert.Empty(t, listDir(t, sb.out))
	}
}
