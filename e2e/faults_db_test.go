package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/store"
)

// fileState is a file's size and sha256, or its type when it is not a regular file.
func fileState(t *testing.T, path string) string {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	if !info.Mode().IsRegular() {
		return info.Mode().Type().String()
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return fmt.Sprintf("%d bytes, sha256 %x", len(data), sha256.Sum256(data))
}

// withEnv returns env with each of the KEY=value settings replacing the same key's.
func withEnv(env []string, settings ...string) []string {
	out := slices.Clone(env)
	for _, kv := range settings {
		key, _, _ := strings.Cut(kv, "=")
		out = slices.DeleteFunc(out, func(e string) bool { return strings.HasPrefix(e, key+"=") })
		out = append(out, kv)
	}
	return out
}

// startFails runs `daemon start` that must fail at once, and returns its result.
func startFails(t *testing.T, bin string, env []string) result {
	t.Helper()
	start := time.Now()
	r := runCmd(t, bin, env, "daemon", "start")
	took := time.Since(start)
	require.NotEqual(t, 0, r.code, "the daemon started:\n%s", r)
	assert.Less(t, took, 10*time.Second, "the daemon failed at once")
	return r
}

// TestDaemonRefusesLockedDatabase: a second daemon (its own socket, the same db.path) fails at once
// with an error naming the first one's PID, and changes nothing; the first keeps serving. Once the
// first is SIGKILLed (its job keeps running), the lock file it leaves blocks nobody, and a daemon
// that exits cleanly releases the lock too.
func TestDaemonRefusesLockedDatabase(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	jobPID, _ := managedCounter(t, d, "lock-holder")
	db := filepath.Join(d.dir, "state", "cedana.db")
	before := fileState(t, db)

	other := *d
	other.socket = filepath.Join(d.dir, "other.sock")
	other.env = withEnv(d.env, "CEDANA_ADDRESS="+other.socket)
	r := startFails(t, cedanaBin, other.env)
	requireOneLineError(t, r, fmt.Sprintf("state database %s is in use by another cedana daemon (pid %d): stop that daemon, "+
		"or give this one its own database with db.path (CEDANA_DB_PATH)", db, d.cmd.Process.Pid))
	assert.Equal(t, before, fileState(t, db), "the database is untouched")
	r = d.cli("ps")
	require.Equal(t, 0, r.code, "the first daemon still serves: %s", r)
	assert.Contains(t, r.stdout, "lock-holder")

	// A crash: the kernel drops the lock; the job, which must not have inherited it, runs on.
	require.NoError(t, d.cmd.Process.Kill())
	<-d.exited
	require.False(t, pidGone(jobPID), "the job outlives the daemon")
	require.FileExists(t, db+".lock", "the crashed daemon's lock file is left")
	d2 := restartDaemon(t, &other)
	r = d2.cli("ps")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "lock-holder", "the new daemon has the same database")

	// A clean exit releases it too.
	require.NoError(t, d2.cmd.Process.Signal(syscall.SIGTERM))
	<-d2.exited
	require.NoError(t, d2.exitErr)
	d3 := restartDaemon(t, d)
	r = d3.cli("ps")
	require.Equal(t, 0, r.code, r.String())
}

// TestDaemonRefusesBadDatabase: a state database that is not a SQLite database, is damaged, is a
// directory or has a newer schema, and one whose directory cannot be created, stop `daemon start`
// at once with a one-line error naming the file, the problem and the fix; the file is left exactly
// as it was (size and hash), also after a second try.
func TestDaemonRefusesBadDatabase(t *testing.T) {
	requireE2E(t)
	random := make([]byte, 64<<10)
	_, _ = rand.Read(random)
	tests := []struct {
		name string
		// make creates what is at path and returns the path the daemon is given.
		make  func(t *testing.T, path string) string
		wants []string
	}{
		{"garbage", func(t *testing.T, path string) string {
			require.NoError(t, os.WriteFile(path, random, 0o600))
			return path
		}, []string{"is not a SQLite database or is damaged (file is not a database", "it was left as it is: move it aside"}},
		{"damaged", func(t *testing.T, path string) string {
			makeDatabase(t, path, "")
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			copy(data[2*4096:], random) // the pages after the first two
			require.NoError(t, os.WriteFile(path, data, 0o600))
			return path
		}, []string{"is not a SQLite database or is damaged", "move it aside"}},
		{"directory", func(t *testing.T, path string) string {
			require.NoError(t, os.Mkdir(path, 0o700))
			return path
		}, []string{"is a directory, not a file: remove it, or set db.path (CEDANA_DB_PATH) to a file"}},
		{"newer-schema", func(t *testing.T, path string) string {
			makeDatabase(t, path, "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'the future')")
			return path
		}, []string{"database schema version 999 is newer than this cedana supports", "upgrade cedana"}},
		{"uncreatable-directory", func(t *testing.T, path string) string {
			require.NoError(t, os.WriteFile(path, []byte("a file where the directory should be"), 0o600))
			return filepath.Join(path, "cedana.db")
		}, []string{"cannot create the directory of state database", "not a directory", "set db.path (CEDANA_DB_PATH) to a writable location"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bad := filepath.Join(dir, "cedana.db")
			db := tc.make(t, bad)
			before := fileState(t, bad)
			env := withEnv(os.Environ(), "CEDANA_CONFIG_DIR="+dir, "CEDANA_PROTOCOL=unix", "CEDANA_ADDRESS="+filepath.Join(dir, "cedana.sock"),
				"CEDANA_DB_PATH="+db, "CEDANA_JOBS_LOG_DIR="+filepath.Join(dir, "logs"))
			for range 2 {
				r := startFails(t, cedanaBin, env)
				requireOneLineError(t, r, append([]string{db}, tc.wants...)...)
				t.Logf("%s", strings.TrimSpace(r.stderr))
				assert.Equal(t, before, fileState(t, bad), "the file is untouched")
			}
			assert.NoFileExists(t, bad+"-wal")
		})
	}
}

// makeDatabase creates a state database at path as cedana does, then runs stmt (if any) on it.
func makeDatabase(t *testing.T, path, stmt string) {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	if stmt == "" {
		return
	}
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(stmt)
	require.NoError(t, err)
}
