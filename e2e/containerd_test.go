package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
)

// countScript counts into /tmp/count inside the container (overwritten in place, never empty), and
// says so on stdout every tenth count.
const countScript = `i=0; while true; do i=$((i+1)); printf "%08d\n" $i 1<>/tmp/count; [ $((i % 10)) = 0 ] && echo "count $i"; sleep 0.1; done`

// ctrRun starts container id from the test image in namespace ns with ctr, running script, and
// waits until its task runs (and counts, for a counting script). It returns the task's PID.
func ctrRun(t *testing.T, c *containerdDaemon, ns, id, script string) int {
	t.Helper()
	return ctrRunWith(t, c, ns, id, script)
}

// ctrRunWith is ctrRun with more options of `ctr run` (labels, annotations, ...).
func ctrRunWith(t *testing.T, c *containerdDaemon, ns, id, script string, opts ...string) int {
	t.Helper()
	args := append(append([]string{"run", "-d", "--null-io"}, opts...), testImage, id, "/bin/sh", "-c", script)
	out, err := c.ctr(ns, args...)
	require.NoError(t, err, "ctr run: %s", out)
	t.Cleanup(func() { removeContainer(c, ns, id) })
	var pid int
	counts := strings.Contains(script, "/tmp/count")
	require.Eventually(t, func() bool {
		pid = c.taskPID(ns, id)
		return pid > 0 && (!counts || readCounter(containerCounter(pid)) >= 2)
	}, 10*time.Second, 20*time.Millisecond, "container %s did not start (counting)", id)
	return pid
}

// containerCounter is the path of /tmp/count in the container whose init is pid.
func containerCounter(pid int) string { return fmt.Sprintf("/proc/%d/root/tmp/count", pid) }

// removeContainer kills container id's task and removes it with ctr, as a user would.
func removeContainer(c *containerdDaemon, ns, id string) {
	pid := c.taskPID(ns, id)
	_, _ = c.ctr(ns, "task", "kill", "-s", "KILL", id)
	deadline := time.Now().Add(10 * time.Second)
	for pid > 0 && !pidGone(pid) && time.Now().Before(deadline) {
		reapAll(pid)
		time.Sleep(20 * time.Millisecond)
	}
	_, _ = c.ctr(ns, "task", "rm", "-f", id)
	_, _ = c.ctr(ns, "container", "rm", id)
}

// restoredPID reads the PID from `cedana restore`'s output.
func restoredPID(t *testing.T, r result) int {
	t.Helper()
	m := regexp.MustCompile(`Restored, PID: (\d+)`).FindStringSubmatch(r.stdout + r.stderr)
	require.NotNil(t, m, r.String())
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestContainerdDumpRestore: a containerd container's task is checkpointed (the task is gone, the
// container stays); the checkpoint restores as a new container whose task ctr lists RUNNING and
// whose count goes on; ctr kills and removes it. The same container is then dumped three times
// in a row (twice left running, compressed), and the last is restored beside the first copy.
func TestContainerdDumpRestore(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	pid := ctrRun(t, c, "default", "ctr-original", countScript)
	dir := t.TempDir()

	r := d.cli("dump", "containerd", "ctr-original", at, "--dir", dir, "--name", "ck")
	require.Equal(t, 0, r.code, r.String())
	assert.Zero(t, c.taskPID("default", "ctr-original"), "the dumped task is gone")
	out, err := c.ctr("default", "container", "ls", "-q")
	require.NoError(t, err)
	assert.Contains(t, out, "ctr-original", "the container record stays")
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	for _, f := range []string{"containerd-spec.json", "containerd-container.json", "descriptors.json", "checkpoint.json"} {
		assert.FileExists(t, filepath.Join(dir, "ck", f))
	}

	r = d.cli("restore", "containerd", "--path", filepath.Join(dir, "ck"), "--id", "ctr-restored", at)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "default", "ctr-restored") })
	restored := restoredPID(t, r)
	assert.Equal(t, restored, c.taskPID("default", "ctr-restored"), "ctr task ls shows it RUNNING")
	counter := containerCounter(restored)
	requireCounting(t, counter, readCounter(counter))

	// Three dumps in a row of the same container; before[i] is the count just before dump i, so
	// at most a few ticks below what dump i froze.
	var before []int
	for i, extra := range [][]string{{"--leave-running"}, {"--leave-running", "--compression", "zstd"}, {"--compression", "lz4"}} {
		before = append(before, readCounter(counter))
		args := append([]string{"dump", "containerd", "ctr-restored", at, "--dir", dir, "--name", fmt.Sprintf("again%d", i)}, extra...)
		r = d.cli(args...)
		require.Equal(t, 0, r.code, "dump %d: %s", i, r.String())
	}
	require.Eventually(t, func() bool { reapAll(restored); return pidGone(restored) }, 10*time.Second, 20*time.Millisecond)
	r = d.cli("restore", "containerd", "--path", filepath.Join(dir, "again1.tar.zst"), "--id", "ctr-again", at)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "default", "ctr-again") })
	again := restoredPID(t, r)
	requireCounting(t, containerCounter(again), before[1])

	// ctr owns it: kill and remove work.
	out, err = c.ctr("default", "task", "kill", "-s", "KILL", "ctr-again")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { reapAll(again); return pidGone(again) }, 10*time.Second, 20*time.Millisecond)
	out, err = c.ctr("default", "task", "rm", "ctr-again")
	require.NoError(t, err, out)
	out, err = c.ctr("default", "container", "rm", "ctr-again")
	require.NoError(t, err, out)
}

// TestContainerdRootfs: with --rootfs the writable layer's changes go into the checkpoint, so a
// restore on a fresh snapshot, after the original container is removed, has the files the
// workload wrote.
func TestContainerdRootfs(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	pid := ctrRun(t, c, "default", "ctr-rootfs", "echo written-before-the-dump > /tmp/note; rm /etc/group; "+countScript)
	dir := t.TempDir()

	r := d.cli("dump", "containerd", "ctr-rootfs", at, "--dir", dir, "--name", "ck", "--rootfs")
	require.Equal(t, 0, r.code, r.String())
	assert.FileExists(t, filepath.Join(dir, "ck", "rootfs-diff.tar"))
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	removeContainer(c, "default", "ctr-rootfs")

	r = d.cli("restore", "containerd", "--path", filepath.Join(dir, "ck"), "--id", "ctr-rootfs2", at)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "default", "ctr-rootfs2") })
	restored := restoredPID(t, r)
	note, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/note", restored))
	require.NoError(t, err, "the file written before the dump is on the fresh snapshot")
	assert.Equal(t, "written-before-the-dump\n", string(note))
	assert.NoFileExists(t, fmt.Sprintf("/proc/%d/root/etc/group", restored), "the file the workload deleted stays deleted")
	requireCounting(t, containerCounter(restored), readCounter(containerCounter(restored)))
}

// TestContainerdJobs: `run containerd` starts an image as a job whose output reaches its log;
// dump job and restore job bring the task back in the same container. `manage containerd` adopts
// a container made as Kubernetes' are, in the k8s.io namespace, and its job dumps and restores.
func TestContainerdJobs(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address

	r := d.cli("run", "containerd", testImage, "--id", "ctr-job", at, "--jid", "ctrjob", "--", "/bin/sh", "-c", countScript)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "default", "ctr-job") })
	assert.Regexp(t, `^Running managed containerd PID \d+ \(job ctrjob, log \S+\)`, r.stdout)
	logPath := filepath.Join(d.dir, "logs", "ctrjob.log")
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), "count 10") },
		10*time.Second, 50*time.Millisecond, "the task's output did not reach the job's log")
	pid := c.taskPID("default", "ctr-job")
	r = d.cli("dump", "job", "ctrjob")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(d.cli("ps").stdout, "halted") }, 10*time.Second, 50*time.Millisecond)
	r = d.cli("restore", "job", "ctrjob")
	require.Equal(t, 0, r.code, r.String())
	restored := c.taskPID("default", "ctr-job")
	require.Positive(t, restored, "the task runs again in the same container")
	assert.Regexp(t, fmt.Sprintf(`ctrjob\s+containerd\s+%d\s+running`, restored), d.cli("ps").stdout)
	count := readCounter(containerCounter(restored))
	requireCounting(t, containerCounter(restored), count)
	next := fmt.Sprintf("count %d", (count/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored task's output did not reach the job's log (%s)", next)

	// Killed (preempted), the job comes back from its checkpoint in the same container.
	r = d.cli("job", "kill", "ctrjob")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return strings.Contains(d.cli("ps").stdout, "halted") }, 10*time.Second, 50*time.Millisecond)
	r = d.cli("restore", "job", "ctrjob")
	require.Equal(t, 0, r.code, r.String())
	require.Positive(t, c.taskPID("default", "ctr-job"))
	// From the same checkpoint as the first restore, which was at count a few counts later. The
	// container's file system still holds the killed task's last count until the restored task
	// writes its own.
	counter := containerCounter(c.taskPID("default", "ctr-job"))
	stale := readCounter(counter)
	require.Eventually(t, func() bool { return readCounter(counter) != stale }, 5*time.Second, 20*time.Millisecond,
		"counter %s stays at %d after the restore", counter, stale)
	requireCounting(t, counter, max(count-10, 0))

	// A container in Kubernetes' namespace.
	c = needContainerd(t, "k8s.io")
	pid = ctrRun(t, c, "k8s.io", "ctr-pod", countScript)
	r = d.cli("manage", "containerd", "ctr-pod", "-n", "k8s.io", at, "--jid", "pod")
	require.Equal(t, 0, r.code, r.String())
	r = d.cli("dump", "job", "pod")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	r = d.cli("restore", "job", "pod")
	require.Equal(t, 0, r.code, r.String())
	restored = c.taskPID("k8s.io", "ctr-pod")
	require.Positive(t, restored)
	requireCounting(t, containerCounter(restored), readCounter(containerCounter(restored)))
}

// TestContainerdBadInput: an unknown container or namespace, a containerd that is not running, a
// container without a running task, an image containerd does not have and an ID whose container
// has a task are each refused with one clear line, and nothing changes.
func TestContainerdBadInput(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	dir := t.TempDir()

	r := d.cli("dump", "containerd", "nope", at, "--dir", dir)
	requireOneLineError(t, r, `no container "nope" in containerd namespace "default"`, "ctr -n default containers ls")
	r = d.cli("dump", "containerd", "nope", at, "-n", "no-such-namespace", "--dir", dir)
	requireOneLineError(t, r, `no container "nope" in containerd namespace "no-such-namespace"`)
	r = d.cli("dump", "containerd", "nope", "--containerd-address", filepath.Join(dir, "none.sock"), "--dir", dir)
	requireOneLineError(t, r, "containerd is not running", "--containerd-address")
	out, err := c.ctr("default", "container", "create", testImage, "ctr-idle", "/bin/sh")
	require.NoError(t, err, out)
	t.Cleanup(func() { removeContainer(c, "default", "ctr-idle") })
	r = d.cli("dump", "containerd", "ctr-idle", at, "--dir", dir)
	requireOneLineError(t, r, "has no running task")
	assert.Empty(t, entries(dir), "nothing written")

	pid := ctrRun(t, c, "default", "ctr-bad", countScript)
	r = d.cli("dump", "containerd", "ctr-bad", at, "--dir", dir, "--name", "ck", "--leave-running")
	require.Equal(t, 0, r.code, r.String())
	ck := filepath.Join(dir, "ck")
	r = d.cli("restore", "containerd", "--path", ck, at)
	requireOneLineError(t, r, "already has a task", "--id")
	r = d.cli("restore", "containerd", "--path", ck, at, "--id", "ctr-other", "--image", "docker.io/library/not-here:1")
	requireOneLineError(t, r, "not-here:1 is not in containerd", "does not pull images", "image import")
	out, err = c.ctr("default", "container", "ls", "-q")
	require.NoError(t, err)
	assert.NotContains(t, out, "ctr-other", "nothing was created")
	assert.Equal(t, pid, c.taskPID("default", "ctr-bad"), "the original runs on, untouched")
}

// TestContainerdPodLike: a container made the way the CRI plugin makes a pod's containers, in
// the k8s.io namespace and joining the network, IPC and UTS namespaces of the pod's sandbox
// container, is dumped with those namespaces external and restored into the same pod.
func TestContainerdPodLike(t *testing.T) {
	c := needContainerd(t, "k8s.io")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	sandbox := ctrRun(t, c, "k8s.io", "pod-sandbox", "while true; do sleep 1; done")
	ns := func(pid int, kind string) string {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
		return l
	}
	var joins []string
	for _, kind := range []string{"network:net", "ipc:ipc", "uts:uts"} {
		name, file, _ := strings.Cut(kind, ":")
		joins = append(joins, "--with-ns", fmt.Sprintf("%s:/proc/%d/ns/%s", name, sandbox, file))
	}
	args := append([]string{"run", "-d", "--null-io", "--label", "io.cri-containerd.kind=container"}, joins...)
	out, err := c.ctr("k8s.io", append(args, testImage, "pod-app", "/bin/sh", "-c", countScript)...)
	require.NoError(t, err, "ctr run: %s", out)
	t.Cleanup(func() { removeContainer(c, "k8s.io", "pod-app") })
	var pid int
	require.Eventually(t, func() bool {
		pid = c.taskPID("k8s.io", "pod-app")
		return pid > 0 && readCounter(containerCounter(pid)) >= 2
	},
		10*time.Second, 20*time.Millisecond)
	require.Equal(t, ns(sandbox, "net"), ns(pid, "net"), "the app is in the sandbox's network namespace")

	dir := t.TempDir()
	r := d.cli("dump", "containerd", "pod-app", "-n", "k8s.io", at, "--dir", dir, "--name", "ck")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	// The namespace and the containerd come from the checkpoint.
	r = d.cli("restore", "containerd", "--path", filepath.Join(dir, "ck"), "--id", "pod-app-2")
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "k8s.io", "pod-app-2") })
	restored := restoredPID(t, r)
	assert.Equal(t, restored, c.taskPID("k8s.io", "pod-app-2"), "restored in the k8s.io namespace")
	for _, kind := range []string{"net", "ipc", "uts"} {
		assert.Equal(t, ns(sandbox, kind), ns(restored, kind), "restored into the sandbox's %s namespace", kind)
	}
	requireCounting(t, containerCounter(restored), readCounter(containerCounter(restored)))
}

// TestContainerdRootfsArchiveNotStreamed: a --rootfs dump into an archive does not stream CRIU's
// images (the writable layer is stored in CRIU's post-dump notification, which a streamed CRIU
// does not deliver), and its notes say so; the archive holds the images and the layer.
func TestContainerdRootfsArchiveNotStreamed(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	ctrRun(t, c, "default", "strm-ctr-rootfs", countScript)
	t.Cleanup(func() { removeContainer(c, "default", "strm-ctr-rootfs") })
	dir := t.TempDir()

	r := d.cli("dump", "containerd", "strm-ctr-rootfs", at, "--dir", dir, "--name", "ck", "--rootfs", "--compression", "zstd", "--leave-running", "--stats")
	require.Equal(t, 0, r.code, r.String())
	assert.NotContains(t, r.stdout, adapters.StreamedNote)
	assert.Contains(t, r.stdout, adapters.NotStreamedNote+"the runtime captures state while CRIU holds the tree frozen (a container's writable layer for --rootfs")
	f, err := os.Open(filepath.Join(dir, "ck.tar.zst"))
	require.NoError(t, err)
	defer f.Close()
	out := t.TempDir()
	_, err = archive.Extract(f, out, 2)
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(out, "rootfs-diff.tar"))
	assert.FileExists(t, filepath.Join(out, "pstree.img"))
}
