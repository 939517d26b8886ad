package atomicfile_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/internal/atomicfile"
	"github.com/cedana/cedana/internal/testutil"
)

// TestWrite: a new file and a replaced one get the content and mode asked for, a replaced one
// keeps its owner (WriteOwn: becomes ours), and no temporary file is left beside them.
func TestWrite(t *testing.T) {
	tests := []struct {
		name  string
		old   []byte // nil: path does not exist
		owner int    // the old file's group and owner (root only), -1: ours
		mode  os.FileMode
		own   bool // WriteOwn
	}{
		{name: "new", old: nil, owner: -1, mode: 0o644},
		{name: "replaced", old: []byte("old content, longer than the new"), owner: -1, mode: 0o600},
		{name: "replaced, another owner", old: []byte("x"), owner: 4321, mode: 0o640},
		{name: "replaced, another owner, WriteOwn", old: []byte("x"), owner: 4321, mode: 0o600, own: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner >= 0 {
				testutil.RequireRoot(t)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "file")
			if tt.old != nil {
				require.NoError(t, os.WriteFile(path, tt.old, 0o666))
				if tt.owner >= 0 {
					require.NoError(t, os.Chown(path, tt.owner, tt.owner))
				}
			}
			write := atomicfile.Write
			if tt.own {
				write = atomicfile.WriteOwn
			}
			require.NoError(t, write(path, []byte("new"), tt.mode))
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, "new", string(data))
			info, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, tt.mode, info.Mode().Perm())
			if tt.owner >= 0 {
				want := uint32(tt.owner)
				if tt.own {
					want = uint32(os.Geteuid())
				}
				st := info.Sys().(*syscall.Stat_t)
				assert.Equal(t, want, st.Uid)
				if !tt.own {
					assert.Equal(t, want, st.Gid)
				}
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no temporary file left")
		})
	}
}

// TestWriteMissingDir: a directory that does not exist is an error, and nothing is created.
func TestWriteMissingDir(t *testing.T) {
	assert.Error(t, atomicfile.Write(filepath.Join(t.TempDir(), "missing", "file"), []byte("x"), 0o644))
}

// TestWriteUnprivileged: a caller that may not give files away (here nobody) still replaces a
// file another user owns in a directory it may write, and the file is then its own.
func TestWriteUnprivileged(t *testing.T) {
	if path := os.Getenv("ATOMICFILE_WRITE_AS"); path != "" {
		require.NoError(t, atomicfile.Write(path, []byte("mine\n"), 0o644))
		return
	}
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "atomicfile-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	path := filepath.Join(dir, "pid")
	require.NoError(t, os.WriteFile(path, []byte("root's\n"), 0o644))

	// The test binary, where nobody may run it (go test builds it in a directory of mode 0700).
	self, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	bin := filepath.Join(dir, "atomicfile.test")
	require.NoError(t, os.WriteFile(bin, self, 0o755))

	const nobody = 65534
	cmd := exec.Command(bin, "-test.run", "^TestWriteUnprivileged$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_WRITE_AS="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "mine\n", string(data))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, uint32(nobody), info.Sys().(*syscall.Stat_t).Uid)
}
