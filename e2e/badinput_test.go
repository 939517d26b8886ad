package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// requireOneLineError asserts a failed command with a single-line error on stderr containing want.
func requireOneLineError(t *testing.T, r result, want ...string) {
	t.Helper()
	require.NotEqual(t, 0, r.code, r.String())
	msg := strings.TrimSpace(r.stderr)
	assert.NotContains(t, msg, "\n", "error must be one line: %q", msg)
	assert.True(t, strings.HasPrefix(msg, "cedana: error: "), msg)
	for _, w := range want {
		assert.Contains(t, msg, w)
	}
}

// TestDumpRefusesBadPIDs: nonexistent, init and the daemon itself are refused before CRIU runs, and
// nothing is written.
func TestDumpRefusesBadPIDs(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	tests := []struct {
		name string
		pid  int
		want string
	}{
		{"nonexistent", unusedPID(t), "no process with PID"},
		{"init", 1, "refusing to dump PID 1"},
		{"the daemon", d.cmd.Process.Pid, "the cedana daemon itself"},
		{"an ancestor of the daemon", os.Getpid(), "the cedana daemon is part of its tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := d.cli("dump", "process", strconv.Itoa(tt.pid), "--name", "x")
			requireOneLineError(t, r, tt.want)
			assert.Empty(t, entries(d.ckDir), "nothing written")
			assert.NotContains(t, d.log.String(), "criu dump failed")
		})
	}
}

// TestDumpExistingName: a taken name is refused and the old checkpoint is left as it was.
func TestDumpExistingName(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, false)
	first := dump(t, d, w, "--name", "same", "--leave-running")
	before, err := os.ReadFile(filepath.Join(first, "checkpoint.json"))
	require.NoError(t, err)
	filesBefore := entries(first)

	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--name", "same")
	requireOneLineError(t, r, "already exists", first)
	after, err := os.ReadFile(filepath.Join(first, "checkpoint.json"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
	assert.Equal(t, filesBefore, entries(first))
	assert.True(t, w.running(), "a refused dump leaves the workload alone")
}

// TestDumpUnwritableDir: a directory that cannot be created gives a clear error.
func TestDumpUnwritableDir(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, false)
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", filepath.Join(file, "sub"))
	requireOneLineError(t, r, "cannot create the checkpoint in", "writable --dir")
	assert.True(t, w.running())
}

// TestDumpCRIUFailure: when CRIU fails, the workload keeps running, the partial checkpoint is
// removed, and the error quotes the CRIU log line that explains it.
func TestDumpCRIUFailure(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	// A 2 MiB file the workload holds open after it was deleted: CRIU refuses to dump such a
	// "ghost" file above its 1 MiB limit.
	ghost := filepath.Join(t.TempDir(), "ghost")
	require.NoError(t, os.WriteFile(ghost, make([]byte, 2<<20), 0o600))
	holder := startHolder(t, ghost)
	require.NoError(t, os.Remove(ghost))

	r := d.cli("dump", "process", strconv.Itoa(holder), "--name", "ghost")
	requireOneLineError(t, r, "CRIU log:", "ghost", "full log:")
	assert.NotContains(t, r.stderr, "RLIMIT_NOFILE", "the harmless rlimit line is not an explanation")
	assert.NoDirExists(t, filepath.Join(d.ckDir, "ghost"), "partial checkpoint removed")
	assert.False(t, pidGone(holder), "the workload keeps running")
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/4", holder))
	require.NoError(t, err)
	assert.Contains(t, link, "(deleted)", "and still holds its file")
}

// startHolder starts a process in its own session that holds path open and sleeps.
func startHolder(t *testing.T, path string) int {
	t.Helper()
	w := &workload{}
	tick := filepath.Join(t.TempDir(), "tick")
	cmd := fmt.Sprintf(`mkfifo %q; exec 3<>%q; exec 4<%q; while :; do read -t 1 -u 3 || :; done`, tick, tick, path)
	w.cmd = newSetsidCmd("bash", "-c", cmd)
	require.NoError(t, w.cmd.Start())
	pid := w.cmd.Process.Pid
	go func() { _ = w.cmd.Wait() }()
	t.Cleanup(func() { killTree(pid) })
	require.Eventually(t, func() bool {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/4", pid))
		return link == path
	}, 5*time.Second, 10*time.Millisecond)
	return pid
}

// TestRestoreBadPaths: a missing path and a directory that is not a checkpoint are refused.
func TestRestoreBadPaths(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	missing := filepath.Join(t.TempDir(), "nope")
	requireOneLineError(t, d.cli("restore", "process", "--path", missing), "does not exist", missing)

	notCk := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notCk, "pages-1.img"), []byte("x"), 0o600))
	requireOneLineError(t, d.cli("restore", "process", "--path", notCk), "not a cedana checkpoint", "checkpoint.json")

	r := d.cli("restore", "process")
	require.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "--path")
}

// TestCustomBuildWithoutRuntime: a binary built with -tags custom has no process runtime and says
// how to get one, in the CLI and in its daemon.
func TestCustomBuildWithoutRuntime(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaCustomBin)

	r := d.cli("dump", "process", "123")
	requireOneLineError(t, r, "process runtime is not compiled into this cedana binary", "runtimes.process")

	r = d.cli("features")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "process: not compiled in: add build tag runtimes.process")
	assert.NotContains(t, r.stdout, "yes")

	// The daemon answers a request for the missing runtime with the same explanation.
	out := curlJSON(t, d, "Dump", `{"type":"process","details":{"process":{"pid":123}}}`)
	assert.Contains(t, out, `"code":"unimplemented"`)
	assert.Contains(t, out, "runtimes.process")

	r = d.cli("daemon", "check")
	assert.Contains(t, r.stdout, "runtime process")
	assert.Contains(t, r.stdout, "absent")
}

func TestFeaturesDefaultBuild(t *testing.T) {
	requireE2E(t)
	r := runCmd(t, cedanaBin, os.Environ(), "features")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `dump-cmd\s+yes`, r.stdout)
	assert.Regexp(t, `restore-handler\s+yes`, r.stdout)
}

// TestDumpDiskFull: a dump onto a full file system fails clearly, removes its partial files and
// leaves the workload running.
func TestDumpDiskFull(t *testing.T) {
	requireE2E(t)
	small := t.TempDir()
	require.NoError(t, unix.Mount("tmpfs", small, "tmpfs", 0, "size=96k"))
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, false)
	for _, codec := range []string{"none", "zstd"} {
		r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", small, "--name", "full", "--compression", codec)
		requireOneLineError(t, r, "No space left on device")
		assert.Empty(t, entries(small), "partial files removed (%s)", codec)
		assert.True(t, w.running(), "the workload keeps running (%s)", codec)
		before := readCounter(w.counter)
		require.Eventually(t, func() bool { return readCounter(w.counter) > before }, 5*time.Second, 20*time.Millisecond, "and counting")
	}
}
