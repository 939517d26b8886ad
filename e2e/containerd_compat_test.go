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

// Cedana's command lines for containerd, as its users type them. Containers and jobs are named
// rtflags-cd-* so that tests running at the same time do not collide.

// ctrTaskStatus is container id's task status in `ctr task ls` ("" without a task).
func ctrTaskStatus(c *containerdDaemon, ns, id string) string {
	out, _ := c.ctr(ns, "task", "ls")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

// TestContainerdCompatAttach: `run containerd --jid J --attach -- IMAGE sh -c 'exit 3'` exits 3,
// with the container's output and --env; the container is named after the JID, and `ps` and
// `job inspect` know the exit code.
func TestContainerdCompatAttach(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	t.Cleanup(func() { removeContainer(c, "default", "rtflags-cd-attach") })

	r := d.cli("run", "containerd", "--jid", "rtflags-cd-attach", "--attach", "--env", "GREETING=hi", "-e", "WHO=there", at,
		"--", testImage, "sh", "-c", `echo "$GREETING $WHO"; exit 3`)
	assert.Equal(t, 3, r.code, r.String())
	assert.Contains(t, r.stdout, "hi there\n")
	assert.Equal(t, "STOPPED", ctrTaskStatus(c, "default", "rtflags-cd-attach"))
	assert.Regexp(t, `rtflags-cd-attach\s+containerd\s+\d+\s+halted \(exit 3\)`, d.cli("ps").stdout)
	job := inspectJob(t, d, "rtflags-cd-attach")
	require.NotNil(t, job.ExitCode)
	assert.Equal(t, 3, *job.ExitCode)

	r = d.cli("run", "containerd", "--jid", "rtflags-cd-bad", "--env", "NOEQUALS", at, "--", testImage, "true")
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, `--env "NOEQUALS" is not K=V`)
}

// TestContainerdCompatRunFlags: --pid-file is the task's PID, --snapshotter picks the snapshotter,
// --out receives the output, and killing the job records 128+SIGKILL.
func TestContainerdCompatRunFlags(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	t.Cleanup(func() { removeContainer(c, "default", "rtflags-cd-flags") })
	dir := t.TempDir()
	pidFile, out := filepath.Join(dir, "pid"), filepath.Join(dir, "out.log")

	r := d.cli("run", "containerd", "--jid", "rtflags-cd-flags", "--pid-file", pidFile, "--out", out, "--snapshotter", "native", at,
		"--", testImage, "sh", "-c", countScript)
	require.Equal(t, 0, r.code, r.String())
	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(c.taskPID("default", "rtflags-cd-flags")), strings.TrimSpace(string(data)))
	info, err := c.ctr("default", "containers", "info", "rtflags-cd-flags")
	require.NoError(t, err, info)
	assert.Contains(t, info, `"Snapshotter": "native"`)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(out); return strings.Contains(string(data), "count 10") },
		10*time.Second, 50*time.Millisecond, "the task's output did not reach --out")

	r = d.cli("job", "kill", "rtflags-cd-flags")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, d, "rtflags-cd-flags").Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job := inspectJob(t, d, "rtflags-cd-flags")
	require.NotNil(t, job.ExitCode)
	assert.Equal(t, 137, *job.ExitCode)
}

// TestContainerdCompatManageUpcoming: `manage containerd --upcoming` waits for a container ctr
// starts afterwards and adopts it; without one, it gives up after --upcoming-timeout.
func TestContainerdCompatManageUpcoming(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address

	wait := d.cliAsync("manage", "containerd", "--upcoming", "--jid", "rtflags-cd-up", at, "rtflags-cd-up")
	pid := ctrRun(t, c, "default", "rtflags-cd-up", countScript)
	r := wait()
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `rtflags-cd-up\s+containerd\s+`+strconv.Itoa(pid)+`\s+running`, d.cli("ps").stdout)

	r = d.cli("manage", "containerd", "--upcoming", "--upcoming-timeout", "300ms", at, "rtflags-cd-never")
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, `no container "rtflags-cd-never" started`)
}

// TestContainerdCompatCommit: `dump containerd --rootfs-only --image REF` commits the writable
// layer as an image while the task runs on; `dump containerd --image REF` commits it with the
// checkpoint, and `restore containerd --image REF` restores onto it.
func TestContainerdCompatCommit(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	pid := ctrRun(t, c, "default", "rtflags-cd-commit", `echo committed >/etc/rtflags-marker; `+countScript)

	r := d.cli("dump", "containerd", "--rootfs-only", "--image", "docker.io/library/rtflags-commit:live", at, "rtflags-cd-commit")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, pid, c.taskPID("default", "rtflags-cd-commit"), "--rootfs-only left the task running")
	counter := containerCounter(pid)
	requireCounting(t, counter, readCounter(counter))
	out, err := c.ctr("default", "run", "--rm", "docker.io/library/rtflags-commit:live", "rtflags-cd-check", "cat", "/etc/rtflags-marker")
	require.NoError(t, err, out)
	assert.Equal(t, "committed\n", out)

	ck := filepath.Join(t.TempDir(), "ck")
	count := readCounter(counter)
	r = d.cli("dump", "containerd", "--image", "docker.io/library/rtflags-commit:ck", "--dir", filepath.Dir(ck), "--name", filepath.Base(ck), at, "rtflags-cd-commit")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	t.Cleanup(func() { removeContainer(c, "default", "rtflags-cd-restored") })
	r = d.cli("restore", "containerd", "--path", ck, "--id", "rtflags-cd-restored", "--image", "docker.io/library/rtflags-commit:ck", at)
	require.Equal(t, 0, r.code, r.String())
	restored := c.taskPID("default", "rtflags-cd-restored")
	require.Positive(t, restored)
	require.Eventually(t, func() bool { return readCounter(containerCounter(restored)) > count }, 10*time.Second, 20*time.Millisecond,
		"the restored container does not count on from %d", count)

	r = d.cli("dump", "containerd", "--rootfs-only", at, "rtflags-cd-restored")
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, "--image REF")
}
