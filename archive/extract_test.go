package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileCase is a hand-made tar archive that Extract must refuse.
type hostileCase struct {
	name    string
	entries func(parent string) []tarEntry
	// entry is the name that must appear in the error message.
	entry string
}

func hostileCases() []hostileCase {
	ok := regular("ok.img", "a valid file that must be cleaned up")
	withOK := func(es ...tarEntry) func(string) []tarEntry {
		return func(string) []tarEntry { return append([]tarEntry{ok}, es...) }
	}
	return []hostileCase{
		{"absolute path", func(parent string) []tarEntry {
			return []tarEntry{ok, regular(filepath.Join(parent, "abs"), "pwned")}
		}, "/abs"},
		{"absolute path to sentinel", func(parent string) []tarEntry {
			return []tarEntry{regular(filepath.Join(parent, "sentinel"), "pwned")}
		}, "/sentinel"},
		{"dot dot", withOK(regular("../x", "pwned")), "../x"},
		{"dot dot to sentinel", withOK(regular("../sentinel", "pwned")), "../sentinel"},
		{"dot dot in the middle", withOK(regular("a/../../x", "pwned")), "a/../../x"},
		{"bare dot dot", withOK(regular("..", "pwned")), ".."},
		{"subdirectory file", withOK(regular("sub/file", "pwned")), "sub/file"},
		{"directory entry", withOK(tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "sub/", Mode: 0o755}}), "sub/"},
		{"directory entry without slash", withOK(tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "sub", Mode: 0o755}}), "sub"},
		{"symlink", withOK(
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "../sentinel"}},
			regular("link", "pwned through the symlink"),
		), "link"},
		{"absolute symlink", withOK(
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/etc/passwd"}},
		), "link"},
		{"hardlink", withOK(
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "../sentinel"}},
			regular("hl", "pwned through the hard link"),
		), "hl"},
		{"hardlink to member", withOK(
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "ok.img"}},
		), "hl"},
		{"char device", withOK(tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3, Mode: 0o666}}), "null"},
		{"block device", withOK(tarEntry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8, Devminor: 0, Mode: 0o660}}), "sda"},
		{"fifo", withOK(tarEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o644}}), "fifo"},
		{"duplicate name", withOK(regular("dup.img", "first"), regular("dup.img", "second")), "dup.img"},
		{"duplicate of the first entry", withOK(regular("ok.img", "overwrite")), "ok.img"},
		{"dot", withOK(regular(".", "pwned")), "."},
		{"empty name", withOK(regular("", "pwned")), `""`},
		{"oversized entry", withOK(tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "huge.img", Size: MaxEntrySize + 1, Mode: 0o600}}), "huge.img"},
	}
}

// buildHostile builds a case's tar, writing oversized entries' headers only.
func buildHostile(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		require.NoError(t, tw.WriteHeader(&hdr), "header %q", hdr.Name)
		if hdr.Size > 1<<20 {
			// Only the header matters; Extract must refuse before reading.
			buf.Write(make([]byte, 4096))
			return buf.Bytes()
		}
		_, err := tw.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func TestExtractRefusesHostileEntries(t *testing.T) {
	for _, tc := range hostileCases() {
		for _, c := range archiveCodecs {
			t.Run(tc.name+"/"+string(c), func(t *testing.T) {
				sb := newSandbox(t)
				data := compress(t, c, buildHostile(t, tc.entries(sb.parent)))
				_, err := Extract(bytes.NewReader(data), sb.out, 2)
				require.ErrorIs(t, err, ErrUnsafeEntry)
				assert.Contains(t, err.Error(), tc.entry, "error names the entry")
				t.Log(err)
				sb.checkUntouched(t)
				assert.Empty(t, listDir(t, sb.out), "files created before the failure are removed")
			})
		}
	}
}

func TestExtractTooManyEntries(t *testing.T) {
	entries := make([]tarEntry, MaxEntries+1)
	for i := range entries {
		entries[i] = regular(fmt.Sprintf("f%06d", i), "")
	}
	data := compress(t, Zstd, buildTar(t, entries...))
	sb := newSandbox(t)
	_, err := Extract(bytes.NewReader(data), sb.out, 2)
	require.ErrorIs(t, err, ErrUnsafeEntry)
	assert.ErrorContains(t, err, fmt.Sprintf("f%06d", MaxEntries))
	assert.ErrorContains(t, err, "more than 100000 entries")
	sb.checkUntouched(t)
	assert.Empty(t, listDir(t, sb.out))

	// Exactly the limit is fine.
	data = compress(t, Zstd, buildTar(t, entries[:MaxEntries]...))
	sb = newSandbox(t)
	_, err = Extract(bytes.NewReader(data), sb.out, 2)
	require.NoError(t, err)
	assert.Len(t, listDir(t, sb.out), MaxEntries)
}

func TestExtractDoesNotFollowExistingSymlink(t *testing.T) {
	for _, c := range archiveCodecs {
		t.Run(string(c), func(t *testing.T) {
			sb := newSandbox(t)
			// A symlink planted in the destination must not be followed.
			require.NoError(t, os.Symlink("../sentinel", filepath.Join(sb.out, "pages-1.img")))
			data := compress(t, c, buildTar(t, regular("a.img", "fine"), regular("pages-1.img", "pwned")))
			_, err := Extract(bytes.NewReader(data), sb.out, 2)
			require.ErrorIs(t, err, os.ErrExist)
			assert.ErrorContains(t, err, "pages-1.img")
			sb.checkUntouched(t)
			// Our own file is removed, the pre-existing symlink is kept.
			assert.Equal(t, []string{"pages-1.img"}, listDir(t, sb.out))
			target, err := os.Readlink(filepath.Join(sb.out, "pages-1.img"))
			require.NoError(t, err)
			assert.Equal(t, "../sentinel", target)
		})
	}
}

func TestExtractDestination(t *testing.T) {
	data := buildTar(t, regular("a.img", "x"))
	_, err := Extract(bytes.NewReader(data), filepath.Join(t.TempDir(), "missing"), 1)
	assert.ErrorIs(t, err, os.ErrNotExist)

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = Extract(bytes.NewReader(data), file, 1)
	assert.Error(t, err)
}

// validArchive returns an archive of a small checkpoint for codec c.
func validArchive(t testing.TB, c Codec, big int) []byte {
	t.Helper()
	src := t.TempDir()
	makeCheckpoint(t, src, big)
	var buf bytes.Buffer
	_, err := WriteDir(src, &buf, c, 2)
	require.NoError(t, err)
	return buf.Bytes()
}

func TestExtractTruncatedAndCorrupt(t *testing.T) {
	for _, c := range archiveCodecs {
		data := validArchive(t, c, 1<<20)
		cuts := map[string]int{
			"half":          len(data) / 2,
			"last byte":     len(data) - 1,
			"last 8 bytes":  len(data) - 8,
			"header only":   600,
			"first 4 bytes": 4,
		}
		if c == Tar {
			// Cut exactly before the end-of-archive marker (archive/tar
			// alone reports io.EOF there) and inside it.
			cuts["without trailer"] = len(data) - 1024
			cuts["half trailer"] = len(data) - 512
		}
		for name, n := range cuts {
			for _, workers := range []int{1, 4} {
				t.Run(fmt.Sprintf("%s/%s/workers=%d", c, name, workers), func(t *testing.T) {
					sb := newSandbox(t)
					_, err := Extract(bytes.NewReader(data[:n]), sb.out, workers)
					require.Error(t, err)
					if n >= 512 || c != Tar {
						assert.ErrorIs(t, err, ErrCorrupt)
					}
					t.Log(err)
					sb.checkUntouched(t)
					assert.Empty(t, listDir(t, sb.out))
				})
			}
		}

		t.Run(string(c)+"/flipped byte", func(t *testing.T) {
			bad := bytes.Clone(data)
			bad[len(bad)*3/4] ^= 0x55
			sb := newSandbox(t)
			_, err := Extract(bytes.NewReader(bad), sb.out, 2)
			if c == Tar {
				// Content corruption in an uncompressed tar is not
				// detectable; just make sure nothing escapes.
				t.Log(err)
			} else {
				require.ErrorIs(t, err, ErrCorrupt)
				assert.Empty(t, listDir(t, sb.out))
			}
			sb.checkUntouched(t)
		})

		t.Run(string(c)+"/trailing garbage", func(t *testing.T) {
			bad := append(bytes.Clone(data), []byte("garbage after the end")...)
			sb := newSandbox(t)
			_, err := Extract(bytes.NewReader(bad), sb.out, 2)
			require.Error(t, err)
			t.Log(err)
			assert.Empty(t, listDir(t, sb.out))
			sb.checkUntouched(t)
		})

		t.Run(string(c)+"/trailing zero padding", func(t *testing.T) {
			// Padding the tar stream to a record size is normal.
			raw := append(buildTar(t, regular("a.img", "x")), make([]byte, 9216)...)
			sb := newSandbox(t)
			n, err := Extract(bytes.NewReader(compress(t, c, raw)), sb.out, 2)
			require.NoError(t, err)
			assert.EqualValues(t, 1, n)
		})
	}
}

func TestExtractGarbage(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"text", []byte("definitely not a checkpoint archive\n"), ErrNotArchive},
		{"empty", nil, ErrNotArchive},
		{"random", randomBytes(1<<16, 5), ErrNotArchive},
		{"broken tar magic", bytes.Replace(buildTar(t, regular("a.img", "x")), []byte("ustar"), []byte("xstar"), 1), ErrNotArchive},
		{"gzip magic then garbage", append([]byte{0x1f, 0x8b}, randomBytes(1000, 6)...), ErrCorrupt},
		{"zstd magic then garbage", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, randomBytes(1000, 7)...), ErrCorrupt},
		{"lz4 magic then garbage", append([]byte{0x04, 0x22, 0x4d, 0x18}, randomBytes(1000, 8)...), ErrCorrupt},
		{"zlib header then garbage", append([]byte{0x78, 0x01}, randomBytes(1000, 10)...), ErrCorrupt},
		{"compressed garbage", compress(t, Zstd, randomBytes(5000, 11)), ErrCorrupt},
		{"compressed text", compress(t, Gzip, []byte("hello world")), ErrCorrupt},
	}
	for _, tt := range tests {
		for _, workers := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", tt.name, workers), func(t *testing.T) {
				sb := newSandbox(t)
				_, err := Extract(bytes.NewReader(tt.in), sb.out, workers)
				require.ErrorIs(t, err, tt.want)
				t.Log(err)
				if errors.Is(tt.want, ErrNotArchive) {
					assert.ErrorContains(t, err, "not a checkpoint archive (unrecognised format)")
				}
				sb.checkUntouched(t)
				assert.Empty(t, listDir(t, sb.out))
			})
		}
	}
}

// TestExtractReleasesGoroutines checks that abandoning a stream half-way
// (a hostile entry after a large valid one) leaves no decoder goroutines
// behind, which matters in a long-running daemon.
func TestExtractReleasesGoroutines(t *testing.T) {
	big := compressibleBytes(32<<20, 4)
	raw := buildTar(t, regular("big.img", string(big)), regular("../x", "pwned"), regular("after.img", string(big[:8<<20])))
	for _, c := range archiveCodecs {
		t.Run(string(c), func(t *testing.T) {
			data := compress(t, c, raw)
			before := runtime.NumGoroutine()
			for range 3 {
				sb := newSandbox(t)
				_, err := Extract(bytes.NewReader(data), sb.out, 4)
				require.ErrorIs(t, err, ErrUnsafeEntry)
				assert.Empty(t, listDir(t, sb.out))
			}
			// Poll by hand: assert.Eventually runs its condition on an
			// extra goroutine.
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines leaked: before %d, now %d:\n%s", before, n, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}
