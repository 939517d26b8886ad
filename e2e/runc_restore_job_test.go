package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A restored runc container as a job, with its exit code: Cedana's `restore runc --attach`,
// `--out`, `--no-server` and `restore job` of runc jobs. Containers and jobs are named rrj-*.

// stopScript counts like the default container, and exits with 42 once /data/stop exists.
const stopScript = `i=0; while [ ! -e /data/stop ]; do i=$((i+1)); printf "%08d\n" $i 1<>/data/count; [ $((i % 10)) = 0 ] && echo "count $i"; sleep 0.1; done; echo bye; exit 42`

// stop makes the container of e, restored from a checkpoint of stopScript, exit with 42.
func (e *runcEnv) stop() {
	e.t.Helper()
	require.NoError(e.t, os.WriteFile(filepath.Join(filepath.Dir(e.counter), "stop"), nil, 0o644))
}

// resume removes the stop file, so that a container restored next counts on.
func (e *runcEnv) resume() {
	e.t.Helper()
	require.NoError(e.t, os.Remove(filepath.Join(filepath.Dir(e.counter), "stop")))
}

// killSupervised kills container id, restored as a job, with runc; runc, its supervisor in the
// foreground, deletes it.
func (e *runcEnv) killSupervised(id string) {
	e.t.Helper()
	out, err := e.cmd("kill", id, "KILL")
	require.NoError(e.t, err, "runc kill: %s", out)
	require.Eventually(e.t, func() bool { return e.state(id) == "" }, 10*time.Second, 20*time.Millisecond,
		"runc, the restored job's supervisor, did not delete the container")
}

// dumpDetached starts container id with runc (stdio /dev/null), dumps it through d into a new
// checkpoint directory and returns its path once the container's init is gone.
func dumpDetached(t *testing.T, e *runcEnv, d *daemon, id string) string {
	t.Helper()
	pid := e.start(id)
	ck := filepath.Join(t.TempDir(), "ck")
	r := d.cli("dump", "runc", id, "--root", e.root, "--dir", filepath.Dir(ck), "--name", filepath.Base(ck))
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	return ck
}

// TestRrjRestoreAttachExitCode: `restore runc --attach` of a container run detached by runc makes
// the restored container a new job, stays attached, and exits with the container's code (42);
// runc no longer lists the container, and the job shows the code.
func TestRrjRestoreAttachExitCode(t *testing.T) {
	e := newRuncEnv(t)
	e.setProcess(stopScript)
	d := startDaemon(t, cedanaBin)
	ck := dumpDetached(t, e, d, "rrj-attach")
	count := requireStopped(t, e.counter)

	wait := d.cliAsync("restore", "runc", "--id", "rrj-attach", "--path", ck, "--bundle", e.bundle, "--root", e.root, "--attach")
	requireCounting(t, e.counter, count)
	assert.Equal(t, "running", e.state("rrj-attach"))
	e.stop()
	r := wait()
	assert.Equal(t, 42, r.code, r.String())
	assert.Regexp(t, `Restored, PID: \d+ \(job \S+\)`, r.stderr)
	assert.Empty(t, e.ids(), "runc still lists the container restored attached")
	assert.Regexp(t, `\S+\s+runc\s+\d+\s+halted \(exit 42\)`, d.cli("ps").stdout)
}

// TestRrjRestoreJobExitCode: a runc job (cedana run runc) dumped and restored with `restore job`
// keeps its exit code: `ps`, `job inspect` and `job attach` show the container's 42, and the
// restored container's output reaches the job's log. Its checkpoint restored with --out becomes
// a new job whose output goes to that file; restored with --no-server (and --out), the command
// exits with 42 and the container is deleted.
func TestRrjRestoreJobExitCode(t *testing.T) {
	e := newRuncEnv(t)
	e.setProcess(stopScript)
	d := startDaemon(t, cedanaBin)
	r := d.cli("run", "runc", "--bundle", e.bundle, "--root", e.root, "--jid", "rrj-job")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return readCounter(e.counter) >= 2 }, 10*time.Second, 20*time.Millisecond)
	pid := e.pid("rrj-job")
	r = d.cli("dump", "job", "rrj-job")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return inspectJob(t, d, "rrj-job").Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job := inspectJob(t, d, "rrj-job")
	require.NotNil(t, job.Latest)
	ck := job.Latest.Path
	count := requireStopped(t, e.counter)

	// restore job: the job runs again; its exit code is known.
	r = d.cli("restore", "job", "rrj-job")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("rrj-job"))
	requireCounting(t, e.counter, count)
	next := fmt.Sprintf("count %d", (count/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(job.Log); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored container's output did not reach the job's log (%s)", next)
	attached := d.cliAsync("job", "attach", "rrj-job")
	e.stop()
	r = attached()
	assert.Equal(t, 42, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, d, "rrj-job").Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job = inspectJob(t, d, "rrj-job")
	require.NotNil(t, job.ExitCode, "a restored runc job's exit code is known")
	assert.Equal(t, 42, *job.ExitCode)
	assert.Regexp(t, `rrj-job\s+runc\s+\d+\s+halted \(exit 42\)`, d.cli("ps").stdout)
	assert.Empty(t, e.ids())

	// --out: a new job, whose output goes to the file.
	e.resume()
	out := filepath.Join(t.TempDir(), "out.log")
	r = d.cli("restore", "runc", "--id", "rrj-out", "--path", ck, "--bundle", e.bundle, "--root", e.root, "--out", out)
	require.Equal(t, 0, r.code, r.String())
	m := regexpMatch(t, `Restored, PID: \d+ \(job (\S+)\)`, r.stdout)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(out); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored container's output did not reach --out (%s)", next)
	e.stop()
	require.Eventually(t, func() bool { return inspectJob(t, d, m).Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job = inspectJob(t, d, m)
	require.NotNil(t, job.ExitCode)
	assert.Equal(t, 42, *job.ExitCode)
	assert.Equal(t, out, job.Log)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(data), "bye\n")
	assert.Empty(t, e.ids())

	// --no-server --out: waits, exits with the container's code; the container is deleted.
	e.resume()
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
	nsOut := filepath.Join(t.TempDir(), "ns.log")
	wait := startCmd(t, cedanaBin, env, "restore", "runc", "--no-server", "--id", "rrj-ns", "--path", ck, "--bundle", e.bundle, "--root", e.root, "--out", nsOut)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(nsOut); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored container's output did not reach --out (%s)", next)
	assert.Equal(t, "running", e.state("rrj-ns"))
	e.stop()
	r = wait()
	assert.Equal(t, 42, r.code, r.String())
	assert.Empty(t, e.ids())
}

// TestRrjRestoreNoServerExitCode: `restore runc --no-server` of a container run detached by runc
// waits for it and exits with its code (42); runc no longer lists it.
func TestRrjRestoreNoServerExitCode(t *testing.T) {
	e := newRuncEnv(t)
	e.setProcess(stopScript)
	d := startDaemon(t, cedanaBin)
	ck := dumpDetached(t, e, d, "rrj-nsx")
	count := requireStopped(t, e.counter)
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))

	wait := startCmd(t, cedanaBin, env, "restore", "runc", "--id", "rrj-nsx", "--path", ck, "--bundle", e.bundle, "--root", e.root, "--no-server")
	requireCounting(t, e.counter, count)
	e.stop()
	r := wait()
	assert.Equal(t, 42, r.code, r.String())
	assert.Empty(t, e.ids(), "runc still lists the container restored without a daemon")
}

// TestRrjRestoreFailure: a checkpoint CRIU cannot restore fails `restore runc --attach` and
// `restore job`: no job is left running or recorded, and runc has no container.
func TestRrjRestoreFailure(t *testing.T) {
	e := newRuncEnv(t)
	e.setProcess(stopScript)
	d := startDaemon(t, cedanaBin)
	ck := dumpDetached(t, e, d, "rrj-bad")
	require.NoError(t, os.Remove(filepath.Join(ck, "pstree.img")))

	r := d.cli("restore", "runc", "--id", "rrj-bad", "--path", ck, "--bundle", e.bundle, "--root", e.root, "--attach")
	assert.NotEqual(t, 0, r.code, r.String())
	assert.NotContains(t, d.cli("ps").stdout, "runc", "a failed restore left a job")
	assert.Empty(t, e.ids())

	r = d.cli("run", "runc", "--bundle", e.bundle, "--root", e.root, "--jid", "rrj-badjob")
	require.Equal(t, 0, r.code, r.String())
	r = d.cli("job", "kill", "rrj-badjob")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, d, "rrj-badjob").Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	r = d.cli("restore", "job", "rrj-badjob", "--path", ck)
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Equal(t, "halted", inspectJob(t, d, "rrj-badjob").Status)
	assert.Empty(t, e.ids())
}

// regexpMatch returns pattern's first group in s.
func regexpMatch(t *testing.T, pattern, s string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	require.NotNil(t, m, "%q does not match %s", s, pattern)
	return m[1]
}
