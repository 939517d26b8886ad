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

// `cedana dump job J --image REF [--rootfs-only]`, as Cedana's containerd suite types it. Jobs,
// containers and images are named dji-* so that tests running at the same time do not collide.

// requireImage asserts that containerd in namespace ns has image ref (`ctr images ls`).
func requireImage(t *testing.T, c *containerdDaemon, ns, ref string) {
	t.Helper()
	out, err := c.ctr(ns, "images", "ls", "-q")
	require.NoError(t, err, out)
	assert.Contains(t, strings.Fields(out), ref, "ctr images ls")
}

// TestDumpJobImage: a containerd job run as Cedana's suite runs it; `dump job --rootfs-only
// --image` commits its writable layer while it runs on, with no checkpoint of the job;
// `dump job --image` commits it with a checkpoint recorded against the job; `restore
// containerd --image` restores onto the committed image, and `restore job` still works.
func TestDumpJobImage(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	const jid = "dji-cd-job"
	t.Cleanup(func() { removeContainer(c, "default", jid) })

	r := d.cli("run", "containerd", "--snapshotter", "overlayfs", "--jid", jid, "--env", "NGINX_PORT=8080", at,
		"--", testImage, "/bin/sh", "-c", `echo "$NGINX_PORT" >/etc/dji-marker; `+countScript)
	require.Equal(t, 0, r.code, r.String())
	var pid int
	require.Eventually(t, func() bool {
		pid = c.taskPID("default", jid)
		return pid > 0 && readCounter(containerCounter(pid)) >= 2
	},
		10*time.Second, 20*time.Millisecond, "the job's container does not count")
	counter := containerCounter(pid)

	r = d.cli("dump", "job", jid, "--rootfs-only")
	assert.Equal(t, 1, r.code, r.String())
	assert.Contains(t, r.stderr, "give it a name with --image REF")

	r = d.cli("dump", "job", jid, "--image", "docker.io/library/dji-commit:live", "--rootfs-only")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, pid, c.taskPID("default", jid), "--rootfs-only left the task running")
	requireCounting(t, counter, readCounter(counter))
	requireImage(t, c, "default", "docker.io/library/dji-commit:live")
	out, err := c.ctr("default", "run", "--rm", "docker.io/library/dji-commit:live", "dji-cd-check", "cat", "/etc/dji-marker")
	require.NoError(t, err, out)
	assert.Equal(t, "8080\n", out)
	job := inspectJob(t, d, jid)
	assert.Equal(t, "running", job.Status)
	assert.Nil(t, job.Latest, "a commit alone is no checkpoint of the job")

	ck := filepath.Join(t.TempDir(), "ck")
	count := readCounter(counter)
	r = d.cli("dump", "job", jid, "--image", "docker.io/library/dji-commit:ck", "--dir", filepath.Dir(ck), "--name", filepath.Base(ck))
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "Dumped to "+ck+"\n", r.stdout)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	requireImage(t, c, "default", "docker.io/library/dji-commit:ck")
	require.Eventually(t, func() bool { return inspectJob(t, d, jid).Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	job = inspectJob(t, d, jid)
	require.NotNil(t, job.Latest)
	assert.Equal(t, ck, job.Latest.Path)

	// The committed image is the restored container's root file system: the marker comes from it.
	t.Cleanup(func() { removeContainer(c, "default", "dji-cd-restored") })
	r = d.cli("restore", "containerd", "--path", ck, "--id", "dji-cd-restored", "--image", "docker.io/library/dji-commit:ck", at)
	require.Equal(t, 0, r.code, r.String())
	restored := c.taskPID("default", "dji-cd-restored")
	require.Positive(t, restored)
	requireCounting(t, containerCounter(restored), count)
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(restored), "root/etc/dji-marker"))
	require.NoError(t, err)
	assert.Equal(t, "8080\n", string(data))
	info, err := c.ctr("default", "containers", "info", "dji-cd-restored")
	require.NoError(t, err, info)
	assert.Contains(t, info, `"Image": "docker.io/library/dji-commit:ck"`)
	removeContainer(c, "default", "dji-cd-restored")

	r = d.cli("restore", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	again := c.taskPID("default", jid)
	require.Positive(t, again, "the job runs again in its own container")
	requireCounting(t, containerCounter(again), count)
}

// TestDumpJobImageManaged: `dump job --image` of a container adopted with `manage containerd`.
func TestDumpJobImageManaged(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	pid := ctrRun(t, c, "default", "dji-cd-managed", `echo managed >/etc/dji-marker; `+countScript)
	r := d.cli("manage", "containerd", "dji-cd-managed", "--jid", "dji-cd-managed", at)
	require.Equal(t, 0, r.code, r.String())

	r = d.cli("dump", "job", "dji-cd-managed", "--image", "docker.io/library/dji-commit:managed")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Dumped to ")
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	requireImage(t, c, "default", "docker.io/library/dji-commit:managed")
	require.NotNil(t, inspectJob(t, d, "dji-cd-managed").Latest)
}

// TestDumpJobImageRefused: a process job cannot commit an image: `dump job --image` (or
// --rootfs-only) is refused before the job is touched, and nothing is recorded.
func TestDumpJobImageRefused(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	pid, counter := managedCounter(t, d, "dji-proc")
	for _, args := range [][]string{
		{"--image", "dji-commit:proc"},
		{"--image", "dji-commit:proc", "--rootfs-only"},
	} {
		r := d.cli(append([]string{"dump", "job", "dji-proc"}, args...)...)
		assert.Equal(t, 1, r.code, r.String())
		assert.Contains(t, r.stderr, "job dji-proc is a process job, and process workloads have no image to commit")
		assert.Contains(t, r.stderr, "drop --image and --rootfs-only")
	}
	assert.False(t, pidGone(pid))
	requireCounting(t, counter, readCounter(counter))
	job := inspectJob(t, d, "dji-proc")
	assert.Equal(t, "running", job.Status)
	assert.Nil(t, job.Latest)
	assert.Empty(t, entries(d.ckDir), "no checkpoint directory was made")
}
