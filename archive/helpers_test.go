package archive

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// archiveCodecs are the codecs that produce an archive.
var archiveCodecs = []Codec{Tar, Gzip, LZ4, Zlib, Zstd}

// randomBytes returns n deterministic pseudo-random (incompressible) bytes.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// compressibleBytes returns n deterministic bytes that look a bit like a
// process memory dump: zero pages, text, repetitive structures and a few
// random pages.
func compressibleBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 42))
	words := []string{"checkpoint ", "restore ", "criu ", "page ", "memory ", "process ", "socket ", "thread ", "/usr/lib/", "0x7ffd", "\n", "cedana "}
	b := make([]byte, 0, n+4096)
	page := make([]byte, 4096)
	for len(b) < n {
		switch k := rng.IntN(8); {
		case k < 3: // zero page
			clear(page)
		case k < 5: // text
			page = page[:0]
			for len(page) < 4096 {
				page = append(page, words[rng.IntN(len(words))]...)
			}
			page = page[:4096]
		case k < 7: // array of small structs
			for i := 0; i < 4096; i += 16 {
				binary.LittleEndian.PutUint64(page[i:], 0x00007f0000000000+uint64(rng.IntN(1<<16))*8)
				binary.LittleEndian.PutUint32(page[i+8:], uint32(i/16))
				binary.LittleEndian.PutUint32(page[i+12:], uint32(rng.IntN(4)))
			}
		default: // random page
			for i := 0; i < 4096; i += 8 {
				binary.LittleEndian.PutUint64(page[i:], rng.Uint64())
			}
		}
		b = append(b, page...)
	}
	return b[:n]
}

// makeCheckpoint creates a checkpoint-like directory and returns it with the
// expected file contents.
func makeCheckpoint(t testing.TB, dir string, big int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"pages-1.img":     randomBytes(big, 1),
		"pages-2.img":     compressibleBytes(3<<20+123, 2),
		"inventory.img":   []byte("\x54\x31\x22\x00inventory"),
		"empty.img":       {},
		"dump.log":        bytes.Repeat([]byte("(00.000123) dumping page\n"), 1000),
		"checkpoint.json": []byte(`{"pid":1234,"runtime":"runc"}`),
	}
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	return files
}

// totalSize sums the sizes of files.
func totalSize(files map[string][]byte) int64 {
	var n int64
	for _, b := range files {
		n += int64(len(b))
	}
	return n
}

// tarEntry is one entry of a hand-made tar archive.
type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func regular(name string, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body: []byte(body)}
}

// buildTar writes entries with archive/tar, which does not validate names.
func buildTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		require.NoError(t, tw.WriteHeader(&hdr), "header %q", hdr.Name)
		_, err := tw.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// compress encodes data with codec c.
func compress(t testing.TB, c Codec, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newCompressor(&buf, c, 2)
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// listDir returns the sorted names in dir.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names
}

// sandbox is a parent directory holding a sentinel file and an empty
// extraction directory "out".
type sandbox struct {
	parent, out, sentinel string
}

const sentinelContent = "do not touch"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent := t.TempDir()
	s := sandbox{parent: parent, out: filepath.Join(parent, "out"), sentinel: filepath.Join(parent, "sentinel")}
	require.NoError(t, os.Mkdir(s.out, 0o755))
	require.NoError(t, os.WriteFile(s.sentinel, []byte(sentinelContent), 0o644))
	return s
}

// checkUntouched verifies that nothing outside out changed.
func (s sandbox) checkUntouched(t testing.TB) {
	t.Helper()
	require.Equal(t, []string{"out", "sentinel"}, listDir(t, s.parent), "files appeared next to the extraction directory")
	got, err := os.ReadFile(s.sentinel)
	require.NoError(t, err)
	require.Equal(t, sentinelContent, string(got), "sentinel modified")
	fi, err := os.Lstat(s.sentinel)
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
}

// requireOneEntry checks that content is the tar stream of one entry, name, holding data (no
// trailer needed).
func requireOneEntry(t *testing.T, content []byte, name string, data []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(content))
	hdr, err := tr.Next()
	require.NoError(t, err)
	assert.Equal(t, name, hdr.Name)
	got, err := io.ReadAll(tr)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "content differs")
}

// requireToolDecodes checks that `tool -dc` decodes in to want, where the tool is installed.
func requireToolDecodes(t *testing.T, tool string, in, want []byte) {
	t.Helper()
	if out, ok := toolDecode(t, tool, in); ok {
		require.True(t, bytes.Equal(want, out), "%s -dc differs", tool)
	}
}

// toolDecode is what `tool -dc` decodes in to; false where the tool is not installed.
func toolDecode(t *testing.T, tool string, in []byte) ([]byte, bool) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		return nil, false
	}
	cmd := exec.Command(path, "-dc")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	require.NoError(t, err, "%s -dc", tool)
	return out, true
}
