package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/withcriu"
)

// lazyMiB is the memory of the lazily restored workloads: large enough that serving it takes a
// while (about a second here), small enough for CI. lazyBigMiB is the size issue 15 names for
// the restore checked page by page.
const (
	lazyMiB    = 512
	lazyBigMiB = 1024
)

// summedJob is a memhog run as a job that checksums its whole memory (memhog -sum).
type summedJob struct {
	jid, sum string
}

// runSummed runs a memhog of mib MiB (more of its flags in extra) as job jid and waits until it
// has written its first checksum.
func runSummed(t *testing.T, d *daemon, jid string, mib int, extra ...string) summedJob {
	t.Helper()
	dir := t.TempDir()
	ready, sum := filepath.Join(dir, "ready"), filepath.Join(dir, "sum")
	args := append([]string{"run", "process", "--jid", jid, "--", memhogBin, "-mib", strconv.Itoa(mib), "-ready", ready, "-sum", sum}, extra...)
	r := d.cli(args...)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { killTree(inspectJob(t, d, jid).PID) })
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, time.Minute, 20*time.Millisecond, "memhog did not fill its memory")
	return summedJob{jid: jid, sum: sum}
}

// verify asks the restored memhog (pid) for the checksum of its whole memory, which makes every
// page fault in, and compares it with the one it computed before the dump.
func (s summedJob) verify(t *testing.T, pid int) {
	t.Helper()
	again := s.sum + ".again"
	_ = os.Remove(again)
	require.NoError(t, unix.Kill(pid, unix.SIGUSR1))
	require.Eventually(t, func() bool { _, err := os.Stat(again); return err == nil }, 2*time.Minute, 20*time.Millisecond, "no checksum after the restore")
	want, _ := os.ReadFile(s.sum)
	got, _ := os.ReadFile(again)
	assert.Equal(t, string(want), string(got), "memory restored intact")
}

// dumpSummed dumps the job and waits until its process is gone.
func dumpSummed(t *testing.T, d *daemon, jid string, args ...string) {
	t.Helper()
	pid := inspectJob(t, d, jid).PID
	r := d.cli(append([]string{"dump", "job", jid}, args...)...)
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
}

// TestLazyRestoreJob: a job holding 1 GiB of random data, dumped into an lz4 archive, restores
// with --lazy: the restore returns once the tree runs, the non-memory images unpacked first; `job
// inspect` accounts for the lazy-pages server while it serves; the workload's checksum of its
// whole memory matches the one from before the dump; the server then exits and the temporary
// images are removed.
func TestLazyRestoreJob(t *testing.T) {
	requireE2E(t)
	scratch := t.TempDir()
	d := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)
	w := runSummed(t, d, "lazy-big", lazyBigMiB)
	dumpSummed(t, d, w.jid, "--compression", "lz4")

	start := time.Now()
	r := d.cli("restore", "job", w.jid, "--lazy", "-o", "json")
	took := time.Since(start)
	require.Equal(t, 0, r.code, r.String())
	var out streamOut
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Contains(t, out.Stats.Notes, withcriu.LazyNote)
	assert.True(t, slicesHasPrefix(out.Stats.Notes, adapters.UnpackedFirstNote), "notes: %v", out.Stats.Notes)
	j := inspectJob(t, d, w.jid)
	assert.Equal(t, "running", j.Status)
	assert.Equal(t, out.Pid, j.PID)
	t.Logf("lazy restore of %d MiB returned in %s; lazy pages: %q", lazyBigMiB, took.Round(time.Millisecond), j.LazyPages)

	w.verify(t, j.PID)
	require.Eventually(t, func() bool { return inspectJob(t, d, w.jid).LazyPages == "" }, 30*time.Second, 50*time.Millisecond,
		"the lazy-pages server still serves after every page was read")
	t.Logf("every page served %s after the restore request", time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool { return len(entries(scratch)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the temporary images are removed once the server is done: %v", entries(scratch))
	assert.Equal(t, "running", inspectJob(t, d, w.jid).Status)
}

// TestLazyRestoreServerKilled: the lazy-pages server killed while it transfers the memory of a
// lazily restored job (its log, at level 4, shows pages copied) ends the job's tree (it cannot run
// without its memory) and says so in `job inspect`, `ps` and the job's log. The copying starts while
// CRIU finishes the restore, so the kill lands before or after the restore has answered: before,
// the restore fails with the same reason.
func TestLazyRestoreServerKilled(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin, "CEDANA_CRIU_LOG_LEVEL=4")
	w := runSummed(t, d, "lazy-victim", lazyMiB)
	dumpSummed(t, d, w.jid, "--compression", "none")
	r := restoreKillingServer(t, d, w.jid)
	j := inspectJob(t, d, w.jid)
	require.Eventually(t, func() bool { return pidGone(j.PID) }, 10*time.Second, 20*time.Millisecond, "the tree runs on without its memory")
	j = requireLazyFailed(t, d, w.jid, r)
	log, err := os.ReadFile(j.Log)
	require.NoError(t, err)
	assert.Contains(t, string(log), "lazy restore of PID "+strconv.Itoa(j.PID)+" failed")
}

// TestLazyServerFailsToStart: a lazy-pages server that cannot start (here its log's name is taken
// by a directory in the checkpoint) fails the lazy restore with CRIU's reason before anything is
// restored: the job is not running, no CRIU is left behind, and the same checkpoint restores
// lazily, its memory intact, once the cause is gone.
func TestLazyServerFailsToStart(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := runSummed(t, d, "lazy-nostart", 64)
	dumpSummed(t, d, w.jid, "--compression", "none")
	ck := inspectJob(t, d, w.jid).Latest.Path
	blocker := filepath.Join(ck, "lazy-pages.log")
	require.NoError(t, os.Mkdir(blocker, 0o755))

	r := d.cli("restore", "job", w.jid, "--lazy")
	require.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, "criu lazy-pages did not start", r.String())
	assert.Contains(t, r.stderr, "Is a directory", r.String())
	assert.NotEqual(t, "running", inspectJob(t, d, w.jid).Status)
	assert.Zero(t, criuOf(d), "a CRIU of the daemon is left running")

	require.NoError(t, os.Remove(blocker))
	r = d.cli("restore", "job", w.jid, "--lazy")
	require.Equal(t, 0, r.code, r.String())
	j := inspectJob(t, d, w.jid)
	assert.Equal(t, "running", j.Status)
	w.verify(t, j.PID)
}

// restoreKillingServer restores job jid, dumped into a directory with CRIU's log at level 4,
// with --lazy, kills its lazy-pages server once its log shows pages copied, and returns how the
// restore ended: killed before CRIU's restore was done, the restore fails and says why.
func restoreKillingServer(t *testing.T, d *daemon, jid string) result {
	t.Helper()
	dir := inspectJob(t, d, jid).Latest.Path
	wait := d.cliAsync("restore", "job", jid, "--lazy")
	var server int
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(filepath.Join(dir, "lazy-pages.log"))
		server = lazyServerPID(dir)
		return server > 0 && strings.Contains(string(data), "uffd_copy")
	}, time.Minute, time.Millisecond, "the lazy-pages server never copied pages")
	require.NoError(t, unix.Kill(server, unix.SIGKILL))
	r := wait()
	if r.code != 0 {
		assert.Contains(t, r.stderr, "cannot run without the rest of its memory", r.String())
	}
	return r
}

// requireLazyFailed waits until job jid, whose lazy-pages server was killed (restore r), no longer
// runs, and checks that `job inspect` and `ps` say why; it returns the job.
func requireLazyFailed(t *testing.T, d *daemon, jid string, r result) jobJSON {
	t.Helper()
	require.Eventually(t, func() bool { return inspectJob(t, d, jid).Status != "running" }, 10*time.Second, 20*time.Millisecond)
	j := inspectJob(t, d, jid)
	t.Logf("restore exit code %d; lazy pages: %s", r.code, j.LazyPages)
	assert.Contains(t, j.LazyPages, "failed: criu lazy-pages")
	assert.Contains(t, j.LazyPages, "signal: killed")
	assert.Contains(t, j.LazyPages, "cannot run without the rest of its memory, so it was killed")
	ps := d.cli("ps")
	assert.Regexp(t, jid+`\s+\S+\s+\S+\s+halted \(.*lazy pages failed\)`, ps.stdout, ps.String())
	return j
}

// lazyServerPID finds the `criu lazy-pages` serving the images in dir; 0 if there is none.
func lazyServerPID(dir string) int {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		data, _ := os.ReadFile(f)
		args := strings.Split(string(data), "\x00")
		for i, a := range args {
			if a == "lazy-pages" && i+2 < len(args) && args[i+1] == "-D" && args[i+2] == dir {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
				return pid
			}
		}
	}
	return 0
}

// slicesHasPrefix reports whether an element of list starts with prefix.
func slicesHasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// TestLazyRestoreRefused: a lazy restore that cannot work is refused, saying why, before anything
// is read or restored: through a runtime without lazy restores (containerd), and without the daemon
// that would run the lazy-pages server.
func TestLazyRestoreRefused(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	missing := filepath.Join(t.TempDir(), "nothing-here")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "containerd", "--path", missing, "--lazy"}, "--lazy: the containerd runtime cannot restore lazily: containerd's runc shim passes runc restore only"},
		{[]string{"restore", "process", "--path", missing, "--lazy", "--no-server"}, "--lazy needs the daemon"},
	} {
		r := d.cli(c.args...)
		assert.NotEqual(t, 0, r.code, r.String())
		assert.Contains(t, r.stderr, c.want)
	}
}
