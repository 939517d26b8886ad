package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Cedana's command lines for runc, as its users type them (flags before the program). Every
// container and job is named rtflags-* so that tests running at the same time do not collide.

// TestRuncCompatRunExitsAtOnce (defect: `run runc` of a container that exits at once failed with
// "there is nothing to checkpoint", recorded no job and left the container in `runc list`): the
// job is recorded, halts with exit code 0, and runc no longer lists the container.
func TestRuncCompatRunExitsAtOnce(t *testing.T) {
	e := newRuncEnv(t)
	e.setProcess(`echo hello`)
	d := startDaemon(t, cedanaBin)

	r := d.cli("run", "runc", "--id", "rtflags-echo", "--bundle", e.bundle, "--root", e.root, "--jid", "rtflags-echo")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "job rtflags-echo")
	require.Eventually(t, func() bool { return inspectJob(t, d, "rtflags-echo").Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job := inspectJob(t, d, "rtflags-echo")
	require.NotNil(t, job.ExitCode, "the exit code of a runc job is known")
	assert.Equal(t, 0, *job.ExitCode)
	data, err := os.ReadFile(job.Log)
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(data))
	assert.Empty(t, e.ids(), "runc still lists the ended container")
}

// TestRuncCompatAttachExitCode (defect: `run runc --attach` ended with "its exit code is unknown"
// and status 1): the container's exit code reaches the command, `ps`, `job inspect` and `job
// attach`. The container's ID is the JID.
func TestRuncCompatAttachExitCode(t *testing.T) {
	e := newRuncEnv(t)
	e.setProcess(`echo out; echo err >&2; exit 3`)
	d := startDaemon(t, cedanaBin)

	r := d.cli("run", "runc", "--attach", "--bundle", e.bundle, "--root", e.root, "--jid", "rtflags-attach")
	assert.Equal(t, 3, r.code, r.String())
	assert.Contains(t, r.stdout, "out\n")
	assert.Contains(t, r.stdout, "err\n")
	assert.Regexp(t, `rtflags-attach\s+runc\s+\d+\s+halted \(exit 3\)`, d.cli("ps").stdout)
	job := inspectJob(t, d, "rtflags-attach")
	require.NotNil(t, job.ExitCode)
	assert.Equal(t, 3, *job.ExitCode)
	r = d.cli("job", "attach", "rtflags-attach")
	assert.Equal(t, 3, r.code, r.String())
	assert.Empty(t, e.ids())
}

// TestRuncCompatRunFlags: --out and --pid-file (the container's init PID, as runc reports it);
// killing the job gives 128+SIGKILL; --id is the JID by default; a generated JID names the
// container too.
func TestRuncCompatRunFlags(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	dir := t.TempDir()
	out, pidFile := filepath.Join(dir, "out.log"), filepath.Join(dir, "ct.pid")

	r := d.cli("run", "runc", "--bundle", e.bundle, "--root", e.root, "--jid", "rtflags-flags", "--out", out, "--pid-file", pidFile)
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("rtflags-flags"))
	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(e.pid("rtflags-flags")), strings.TrimSpace(string(data)))
	require.Eventually(t, func() bool { data, _ := os.ReadFile(out); return strings.Contains(string(data), "count 10") },
		10*time.Second, 50*time.Millisecond, "the container's output did not reach --out")

	r = d.cli("job", "kill", "rtflags-flags")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, d, "rtflags-flags").Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job := inspectJob(t, d, "rtflags-flags")
	require.NotNil(t, job.ExitCode)
	assert.Equal(t, 137, *job.ExitCode)
	assert.Empty(t, e.ids())

	// No --jid, no --id: the generated JID, which the command prints, is the container's ID.
	e.setProcess(`exit 0`)
	r = d.cli("run", "runc", "--bundle", e.bundle, "--root", e.root)
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `\(job \S+, log`, r.stdout)
}

// TestRuncCompatNoServer: `run --no-server runc` prints the container's output and exits with its
// code; with --detach it leaves the container running under runc; `restore runc --no-server
// --detach` restores a checkpoint that runc then runs.
func TestRuncCompatNoServer(t *testing.T) {
	e := newRuncEnv(t)
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
	e.setProcess(`echo direct; exit 5`)

	r := runCmd(t, cedanaBin, env, "run", "--no-server", "runc", "--bundle", e.bundle, "--root", e.root, "--jid", "rtflags-ns")
	assert.Equal(t, 5, r.code, r.String())
	assert.Equal(t, "direct\n", r.stdout)
	assert.Empty(t, e.ids())

	e.setProcess(`i=0; while true; do i=$((i+1)); printf "%08d\n" $i 1<>/data/count; sleep 0.1; done`)
	r = runCmd(t, cedanaBin, env, "run", "--no-server", "runc", "--detach", "--bundle", e.bundle, "--root", e.root, "--jid", "rtflags-nsd")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("rtflags-nsd"))
	require.Eventually(t, func() bool { return readCounter(e.counter) >= 2 }, 10*time.Second, 20*time.Millisecond)

	// Dumped through a daemon, restored without one.
	d := startDaemon(t, cedanaBin)
	pid := e.pid("rtflags-nsd")
	ck := filepath.Join(t.TempDir(), "ck")
	r = d.cli("dump", "runc", "rtflags-nsd", "--root", e.root, "--dir", filepath.Dir(ck), "--name", filepath.Base(ck))
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	count := requireStopped(t, e.counter)
	r = runCmd(t, cedanaBin, env, "restore", "runc", "--path", ck, "--id", "rtflags-nsd", "--bundle", e.bundle, "--root", e.root, "--detach", "--no-server")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("rtflags-nsd"))
	requireCounting(t, e.counter, count)
	e.killAndDelete("rtflags-nsd")
}

// TestRuncCompatManage: `manage runc ID --bundle B --jid J` adopts a running container (a wrong
// --bundle is refused); `manage runc --upcoming` waits for a container runc starts later, and
// gives up after --upcoming-timeout; processes have no --upcoming.
func TestRuncCompatManage(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)

	e.start("rtflags-adopt")
	r := d.cli("manage", "runc", "rtflags-adopt", "--bundle", t.TempDir(), "--root", e.root, "--jid", "rtflags-adopt")
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, "runs from bundle "+e.bundle)
	r = d.cli("manage", "runc", "rtflags-adopt", "--bundle", e.bundle, "--root", e.root, "--jid", "rtflags-adopt")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `rtflags-adopt\s+runc\s+\d+\s+running`, d.cli("ps").stdout)
	e.killAndDelete("rtflags-adopt")

	wait := d.cliAsync("manage", "runc", "rtflags-up", "--upcoming", "--root", e.root, "--jid", "rtflags-up")
	e.start("rtflags-up")
	r = wait()
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `rtflags-up\s+runc\s+`+strconv.Itoa(e.pid("rtflags-up"))+`\s+running`, d.cli("ps").stdout)
	e.killAndDelete("rtflags-up")

	r = d.cli("manage", "runc", "rtflags-never", "--upcoming", "--upcoming-timeout", "300ms", "--root", e.root)
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, `no running container "rtflags-never" appeared`)

	r = d.cli("manage", "process", "--upcoming", "1")
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, "a process has none")
}
