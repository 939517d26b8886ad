package store

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// contents is what is at path: a file's bytes, or "<dir>" for a directory.
func contents(t *testing.T, path string) string {
	t.Helper()
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return "<dir>"
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// TestSecondOpenIsRefused: while a Store has the database open, another Open of it fails at once
// with an error naming the holder; once the first is closed, it succeeds.
func TestSecondOpenIsRefused(t *testing.T) {
	path := testPath(t)
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.CreateJob(t.Context(), Job{JID: "j", Type: "process", Status: JobRunning}))
	before := contents(t, path)

	_, err = Open(t.Context(), path)
	require.ErrorIs(t, err, ErrLocked)
	assert.Equal(t, fmt.Sprintf("state database %s is in use by another cedana daemon (pid %d): stop that daemon, "+
		"or give this one its own database with db.path (CEDANA_DB_PATH)", path, os.Getpid()), err.Error())
	assert.True(t, before == contents(t, path), "the refused Open left the database alone")

	require.NoError(t, s.Close())
	s = openTest(t, path)
	_, err = s.GetJob(t.Context(), "j")
	require.NoError(t, err, "the data is still there")
}

// TestLockHelper is not a test: run by TestLockReleasedWhenHolderIsKilled in a child process,
// it opens the database named by $STORE_TEST_HOLD, says "ready" and waits to be killed.
func TestLockHelper(t *testing.T) {
	path := os.Getenv("STORE_TEST_HOLD")
	if path == "" {
		t.Skip("helper process for TestLockReleasedWhenHolderIsKilled")
	}
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	defer s.Close()
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until killed
}

// TestLockReleasedWhenHolderIsKilled: another process holding the database keeps Open out, and
// its pid is in the error; once it is SIGKILLed (no Close), the lock file it leaves blocks nobody.
func TestLockReleasedWhenHolderIsKilled(t *testing.T) {
	path := testPath(t)
	openTest(t, path).Close() // create it

	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_TEST_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready", strings.TrimSpace(line))

	_, err = Open(t.Context(), path)
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), fmt.Sprintf("in use by another cedana daemon (pid %d)", cmd.Process.Pid))

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.FileExists(t, path+lockSuffix, "the killed holder's lock file is left")
	s := openTest(t, path)
	require.NoError(t, s.Close(), "the stale lock file did not block")
}

// TestOpenRefusesBadFiles: a file that is not a SQLite database, a damaged database, a directory
// and a database with a newer schema are refused with an error naming the file, the problem and
// the fix, and left exactly as they were.
func TestOpenRefusesBadFiles(t *testing.T) {
	random := make([]byte, 10000)
	_, _ = rand.Read(random)
	tests := []struct {
		name  string
		make  func(t *testing.T, path string)
		wants []string
	}{
		{
			"garbage", func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, random, 0o600)) },
			[]string{"is not a SQLite database or is damaged (file is not a database", "it was left as it is: move it aside"},
		},
		{
			"text", func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, []byte("hello\n"), 0o600)) },
			[]string{"is not a SQLite database or is damaged"},
		},
		{"sqlite-header-then-garbage", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, append([]byte("SQLite format 3\x00"), random...), 0o600))
		}, []string{"is not a SQLite database or is damaged"}},
		{"truncated", func(t *testing.T, path string) {
			data := realDatabase(t)
			require.NoError(t, os.WriteFile(path, data[:len(data)/3], 0o600))
		}, []string{"is not a SQLite database or is damaged"}},
		{"damaged-pages", func(t *testing.T, path string) {
			data := realDatabase(t)
			page := 4096
			copy(data[2*page:], random[:min(len(random), len(data)-2*page)])
			require.NoError(t, os.WriteFile(path, data, 0o600))
		}, []string{"is not a SQLite database or is damaged"}},
		{
			"directory", func(t *testing.T, path string) { require.NoError(t, os.Mkdir(path, 0o700)) },
			[]string{"is a directory, not a file: remove it, or set db.path (CEDANA_DB_PATH) to a file"},
		},
		{"newer-schema", func(t *testing.T, path string) {
			s, err := Open(t.Context(), path)
			require.NoError(t, err)
			_, err = s.db.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'x')", len(migrations)+1)
			require.NoError(t, err)
			require.NoError(t, s.Close())
		}, []string{fmt.Sprintf("database schema version %d is newer than this cedana supports", len(migrations)+1), "upgrade cedana"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cedana.db")
			tc.make(t, path)
			before := contents(t, path)
			for range 2 { // a second try finds the same file, not one "repaired" by the first
				_, err := Open(t.Context(), path)
				require.Error(t, err)
				assert.True(t, strings.HasPrefix(err.Error(), "state database "+path+" ") ||
					strings.HasPrefix(err.Error(), "open store "+path+": "), err.Error())
				assert.NotContains(t, err.Error(), "\n")
				for _, want := range tc.wants {
					assert.Contains(t, err.Error(), want)
				}
				assert.True(t, before == contents(t, path), "the file is untouched")
			}
			_, err := os.Stat(path + "-wal")
			assert.True(t, os.IsNotExist(err), "no WAL file left")
			// The lock was released: a process that fixes the file can open it.
			if tc.name != "directory" {
				require.NoError(t, os.Remove(path))
				openTest(t, path)
			}
		})
	}
}

// realDatabase returns the bytes of a closed database with some rows, several pages long.
func realDatabase(t *testing.T) []byte {
	t.Helper()
	path := testPath(t)
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	for i := range 50 {
		require.NoError(t, s.CreateJob(t.Context(), Job{
			JID: fmt.Sprintf("job-%d", i), Type: "process", Status: JobRunning,
			Details: []byte(strings.Repeat("x", 500)),
		}))
	}
	require.NoError(t, s.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(data), 8*4096)
	return data
}

// TestOpenUncreatableDirectory: a database path whose directory cannot be created (a file is in
// the way) is refused with the fix, and the file in the way is untouched.
func TestOpenUncreatableDirectory(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.WriteFile(blocker, []byte("not a directory"), 0o600))
	path := filepath.Join(blocker, "cedana.db")
	_, err := Open(t.Context(), path)
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("cannot create the directory of state database %s: mkdir %s: not a directory; "+
		"set db.path (CEDANA_DB_PATH) to a writable location", path, blocker), err.Error())
	data, err := os.ReadFile(blocker)
	require.NoError(t, err)
	assert.Equal(t, "not a directory", string(data))
}
