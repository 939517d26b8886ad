package e2e

import (
	"encoding/json"
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
	"github.com/cedana/cedana/storage/storagetest"
)

// markEchoer answers each line of input with "got <line> (mark <m>)", where m is the last line
// that began with "mark-": state of the workload's memory that a restore must bring back.
const markEchoer = `mark=; while read line; do case $line in mark-*) mark=$line;; esac; echo "got $line (mark $mark)"; done`

// TestJobResumesOnAnotherDaemon: a job dumped on one daemon, to the S3 server or to a directory
// both daemons read, is taken on by another daemon with `restore job <jid> --path`: it runs there
// under the same JID with a log of that daemon's, its memory and its input intact, and that
// daemon lists it, attaches to it, dumps it again and kills it. The first daemon's record is
// untouched. A checkpoint without the job's record, or of another job, is refused.
func TestJobResumesOnAnotherDaemon(t *testing.T) {
	requireE2E(t)
	srv := storagetest.Start(t)
	a := startDaemon(t, cedanaBin, srv.Env()...)
	b := startDaemon(t, cedanaBin, srv.Env()...)

	var s3Path string
	t.Run("s3", func(t *testing.T) {
		s3Path = takeOverJob(t, a, b, "jobhome-s3", "s3://"+srv.Bucket+"/jobhome", true, "--compression", "zstd")
	})
	t.Run("local", func(t *testing.T) {
		takeOverJob(t, a, b, "jobhome-local", t.TempDir(), false)
	})

	t.Run("runc", func(t *testing.T) {
		takeOverRuncJob(t, a, b, "jobhome-runc")
	})

	t.Run("containerd", func(t *testing.T) {
		takeOverContainerdJob(t, a, b, "jobhome-cd")
	})

	t.Run("refusals", func(t *testing.T) {
		require.NotEmpty(t, s3Path, "the s3 case made no checkpoint")
		r := b.cli("restore", "job", "jobhome-other", "--path", s3Path)
		requireOneLineError(t, r, "is of job jobhome-s3, not jobhome-other", "cedana restore job jobhome-s3 --path "+s3Path)
		r = b.cli("job", "inspect", "jobhome-other")
		requireOneLineError(t, r, "no job jobhome-other")
		assert.NoFileExists(t, filepath.Join(b.dir, "logs", "jobhome-other.log"), "a refused job leaves no log behind")
		assert.NoFileExists(t, filepath.Join(b.dir, "logs", "jobhome-other.stdin"))

		r = b.cli("restore", "job", "jobhome-none")
		requireOneLineError(t, r, "no job jobhome-none", "--path")

		// A checkpoint of a process, not of a job, carries no job record.
		w := startCounter(t, false)
		dir := t.TempDir()
		r = a.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dir, "--name", "jobhome-plain")
		require.Equal(t, 0, r.code, r.String())
		w.waitExited(t)
		r = b.cli("restore", "job", "jobhome-plain", "--path", filepath.Join(dir, "jobhome-plain"))
		requireOneLineError(t, r, "carries no job record", "cedana restore process --path")
		assert.NoFileExists(t, filepath.Join(b.dir, "logs", "jobhome-plain.log"))
		requireStopped(t, w.counter)
	})
}

// takeOverJob runs job jid on daemon a, dumps it to dir (with the extra dump flags), takes it on
// with daemon b and checks that b runs it as its own job, restored by a streaming CRIU when
// streamed is set. It returns the first checkpoint's path.
func takeOverJob(t *testing.T, a, b *daemon, jid, dir string, streamed bool, dumpFlags ...string) string {
	t.Helper()
	r := a.cli("run", "process", "--jid", jid, "--", "sh", "-c", markEchoer)
	require.Equal(t, 0, r.code, r.String())
	pid, _ := strconv.Atoi(regexp.MustCompile(`PID (\d+)`).FindStringSubmatch(r.stdout)[1])
	t.Cleanup(func() { killTree(pid) })
	onA := startAttach(t, a, jid)
	onA.send(t, "mark-"+jid+"\n")
	onA.waitOutput(t, "got mark-"+jid)

	r = a.cli(append([]string{"dump", "job", jid, "--dir", dir, "--name", jid, "-o", "json"}, dumpFlags...)...)
	require.Equal(t, 0, r.code, r.String())
	var dumped dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dumped), r.stdout)
	assert.Equal(t, 128+9, onA.wait(t), "the dump ended the job on a")
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)

	r = b.cli("restore", "job", jid, "--path", dumped.Path, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var restored streamOut
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &restored), r.stdout)
	assert.Equal(t, pid, restored.Pid)
	if streamed {
		assert.Contains(t, restored.Stats.Notes, adapters.RestoreFromNote, "the new log and stdin do not stop CRIU from streaming")
	}
	r = b.cli("ps")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, fmt.Sprintf(`%s\s+process\s+%d\s+running`, jid, pid), r.stdout)
	job := inspectJob(t, b, jid)
	assert.Equal(t, filepath.Join(b.dir, "logs", jid+".log"), job.Log, "a log of b's own")

	onB := startAttach(t, b, jid)
	onB.send(t, "two\n")
	onB.waitOutput(t, "got two (mark mark-"+jid+")")
	logA, err := os.ReadFile(filepath.Join(a.dir, "logs", jid+".log"))
	require.NoError(t, err)
	assert.NotContains(t, string(logA), "got two", "the job writes to b's log, not a's")
	logB, err := os.ReadFile(job.Log)
	require.NoError(t, err)
	assert.Contains(t, string(logB), "got two")
	assert.Equal(t, "halted", inspectJob(t, a, jid).Status, "a's record is untouched")

	// b dumps it again (to the same storage), restores it from its own catalog and kills it.
	r = b.cli(append([]string{"dump", "job", jid, "--dir", dir, "--name", jid + "-again"}, dumpFlags...)...)
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, 128+9, onB.wait(t), "the dump ended the job on b")
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	r = b.cli("restore", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	again := startAttach(t, b, jid)
	again.send(t, "three\n")
	again.waitOutput(t, "got three (mark mark-"+jid+")")
	r = b.cli("job", "kill", jid)
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, b, jid).Status == "halted" }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	return dumped.Path
}

// takeOverRuncJob runs runc job jid (its container of the same ID) on daemon a, dumps it, and has
// daemon b take it on: the container counts on under runc, its output reaches b's log, and b
// dumps it again, restores it and kills it.
func takeOverRuncJob(t *testing.T, a, b *daemon, jid string) {
	t.Helper()
	e := newRuncEnv(t)
	r := a.cli("run", "runc", "--bundle", e.bundle, "--root", e.root, "--jid", jid)
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return readCounter(e.counter) >= 2 }, 10*time.Second, 20*time.Millisecond)
	pid := e.pid(jid)
	r = a.cli("dump", "job", jid, "--dir", t.TempDir(), "--name", jid, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var dumped dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dumped), r.stdout)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	count := requireStopped(t, e.counter)

	r = b.cli("restore", "job", jid, "--path", dumped.Path)
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state(jid))
	requireCounting(t, e.counter, count)
	assert.Regexp(t, fmt.Sprintf(`%s\s+runc\s+\d+\s+running`, jid), b.cli("ps").stdout)
	requireCountInOwnLog(t, b, jid, count)

	r = b.cli("dump", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, b, jid).Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	count = requireStopped(t, e.counter)
	r = b.cli("restore", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	requireCounting(t, e.counter, count)
	killTakenOver(t, a, b, jid)
}

// takeOverContainerdJob runs containerd job jid (its container of the same ID) on daemon a, dumps
// it, and has daemon b take it on: the task runs again in the same container and counts on, its
// output reaches b's log, and b kills it.
func takeOverContainerdJob(t *testing.T, a, b *daemon, jid string) {
	t.Helper()
	c := needContainerd(t, "default")
	t.Cleanup(func() { removeContainer(c, "default", jid) })
	r := a.cli("run", "containerd", testImage, "--jid", jid, "--containerd-address="+c.address, "--", "/bin/sh", "-c", countScript)
	require.Equal(t, 0, r.code, r.String())
	var pid int
	require.Eventually(t, func() bool {
		pid = c.taskPID("default", jid)
		return pid > 0 && readCounter(containerCounter(pid)) >= 2
	}, 10*time.Second, 20*time.Millisecond, "the job's container does not count")
	before := readCounter(containerCounter(pid))
	r = a.cli("dump", "job", jid, "--dir", t.TempDir(), "--name", jid, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var dumped dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dumped), r.stdout)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)

	r = b.cli("restore", "job", jid, "--path", dumped.Path)
	require.Equal(t, 0, r.code, r.String())
	restored := c.taskPID("default", jid)
	require.Positive(t, restored, "the task runs again in the same container")
	requireCounting(t, containerCounter(restored), before)
	assert.Regexp(t, fmt.Sprintf(`%s\s+containerd\s+%d\s+running`, jid, restored), b.cli("ps").stdout)
	requireCountInOwnLog(t, b, jid, readCounter(containerCounter(restored)))
	killTakenOver(t, a, b, jid)
}

// requireCountInOwnLog checks that job jid's log is daemon d's own, in its log directory, and
// that the job's container, counting from count, writes its "count N" lines there.
func requireCountInOwnLog(t *testing.T, d *daemon, jid string, count int) {
	t.Helper()
	job := inspectJob(t, d, jid)
	assert.Equal(t, filepath.Join(d.dir, "logs", jid+".log"), job.Log)
	next := fmt.Sprintf("count %d", (count/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(job.Log); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the container's output did not reach the job's log (%s)", next)
}

// killTakenOver kills job jid on daemon b, which took it on from daemon a, and checks that a's
// record of it is still the halted job it dumped.
func killTakenOver(t *testing.T, a, b *daemon, jid string) {
	t.Helper()
	r := b.cli("job", "kill", jid)
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, b, jid).Status == "halted" }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, "halted", inspectJob(t, a, jid).Status, "a's record is untouched")
}
