package health

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestKernelProbeCache: CRIU's kernel probe cache is reported missing where its directory is not a
// tmpfs, or where a stale temporary file blocks it; a cache that is there, or a tmpfs that can take
// one, is fine.
func TestKernelProbeCache(t *testing.T) {
	var fs unix.Statfs_t
	require.NoError(t, unix.Statfs("/dev/shm", &fs))
	if fs.Type != unix.TMPFS_MAGIC {
		t.Skip("/dev/shm is not a tmpfs here") // a tmpfs is all this needs
	}
	disk := t.TempDir()
	require.NoError(t, unix.Statfs(disk, &fs))
	if fs.Type == unix.TMPFS_MAGIC {
		disk = "" // no disk directory to try
	}
	for _, tc := range []struct {
		name  string
		tmpfs bool
		files map[string]int // name: size
		want  string
	}{
		{"tmpfs, no cache yet", true, nil, ""},
		{"tmpfs with a cache", true, map[string]int{"criu.kdat": 904}, ""},
		{"tmpfs blocked by a stale temporary file", true, map[string]int{"criu.kdat.tmp": 0}, "remove it"},
		{"disk", false, nil, "is not a tmpfs"},
		{"disk with an empty cache file", false, map[string]int{"criu.kdat": 0}, "is not a tmpfs"},
		{"disk with a cache put there", false, map[string]int{"criu.kdat": 904}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dir string
			if tc.tmpfs {
				var err error
				dir, err = os.MkdirTemp("/dev/shm", "kdat-test-")
				require.NoError(t, err)
				t.Cleanup(func() { _ = os.RemoveAll(dir) })
			} else {
				if disk == "" {
					t.Skip("the test's temporary directory is a tmpfs")
				}
				dir = t.TempDir()
			}
			for name, size := range tc.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600))
			}
			got := kernelProbeCache(dir)
			if tc.want == "" {
				assert.Empty(t, got)
			} else {
				assert.Contains(t, got, tc.want)
			}
		})
	}
}
