package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/internal/testutil"
)

var runningRe = regexp.MustCompile(`^Running managed process PID (\d+) \(job (\S+), log (\S+)\)\n$`)

// managedCounter runs the counting workload as a managed job and returns its PID and counter file.
func managedCounter(t *testing.T, d *daemon, jid string) (pid int, counter string) {
	t.Helper()
	dir := t.TempDir()
	counter, tick := filepath.Join(dir, "counter"), filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	r := d.cli("run", "process", "--jid", jid, "--", "bash", "-c", "echo started >&2\n"+counterScript, counter, tick, "")
	require.Equal(t, 0, r.code, r.String())
	m := runningRe.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.String())
	pid, _ = strconv.Atoi(m[1])
	assert.Equal(t, jid, m[2])
	t.Cleanup(func() { killTree(pid) })
	require.Eventually(t, func() bool { return readCounter(counter) >= 2 }, 10*time.Second, 20*time.Millisecond, "job did not start counting")
	return pid, counter
}

type jobJSON struct {
	JID      string `json:"jid"`
	PID      int    `json:"pid"`
	Status   string `json:"status"`
	ExitCode *int   `json:"exit_code"`
	Log      string `json:"log"`
	// LazyPages is where a lazy restore's server stands (TestLazyRestore*).
	LazyPages string `json:"lazy_pages"`
	Latest    *struct {
		ID   string `json:"id"`
		Path string `json:"path"`
	} `json:"latest_checkpoint"`
}

func inspectJob(t *testing.T, d *daemon, jid string) jobJSON {
	t.Helper()
	r := d.cli("job", "inspect", jid, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var j jobJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &j), r.stdout)
	return j
}

// TestJobLifecycle: run → ps → dump job → the job halts → restore job → it counts on under the same
// JID; the catalog lists the checkpoint and deleting it removes the files.
func TestJobLifecycle(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	pid, counter := managedCounter(t, d, "counter-1")

	r := d.cli("ps")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `JOB\s+TYPE\s+PID\s+STATUS\s+CHECKPOINT\s+SIZE\s+LOG`, r.stdout)
	assert.Regexp(t, fmt.Sprintf(`counter-1\s+process\s+%d\s+running`, pid), r.stdout)
	job := inspectJob(t, d, "counter-1")
	assert.Equal(t, filepath.Join(d.dir, "logs", "counter-1.log"), job.Log)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(job.Log); return string(data) == "started\n" }, 5*time.Second, 20*time.Millisecond)

	r = d.cli("dump", "job", "counter-1", "--name", "first")
	require.Equal(t, 0, r.code, r.String())
	path := filepath.Join(d.ckDir, "first")
	require.FileExists(t, filepath.Join(path, "checkpoint.json"))
	dumped := requireStopped(t, counter)
	require.Eventually(t, func() bool { return inspectJob(t, d, "counter-1").Status == "halted" }, 5*time.Second, 20*time.Millisecond)
	job = inspectJob(t, d, "counter-1")
	require.NotNil(t, job.Latest)
	assert.Equal(t, path, job.Latest.Path)

	r = d.cli("dump", "job", "counter-1")
	requireOneLineError(t, r, "job counter-1 is not running", "cedana restore job counter-1")

	require.Eventually(t, func() bool { return pidGone(pid) }, 10*time.Second, 20*time.Millisecond, "dumped PID still taken")
	r = d.cli("restore", "job", "counter-1")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, fmt.Sprintf("Restored, PID: %d\n", pid), r.stdout)
	requireCounting(t, counter, dumped)
	job = inspectJob(t, d, "counter-1")
	assert.Equal(t, "running", job.Status)
	assert.Equal(t, pid, job.PID)

	r = d.cli("restore", "job", "counter-1")
	requireOneLineError(t, r, "job counter-1 is running", "cedana job kill counter-1")

	// Catalog.
	r = d.cli("checkpoint", "list", "--jid", "counter-1", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var list struct {
		Checkpoints []struct {
			ID   string `json:"id"`
			Path string `json:"path"`
		} `json:"checkpoints"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	require.Len(t, list.Checkpoints, 1)
	assert.Equal(t, path, list.Checkpoints[0].Path)
	r = d.cli("checkpoint", "delete", list.Checkpoints[0].ID)
	require.Equal(t, 0, r.code, r.String())
	assert.NoDirExists(t, path, "the files go with the record")
	r = d.cli("checkpoint", "inspect", list.Checkpoints[0].ID)
	requireOneLineError(t, r, "no checkpoint "+list.Checkpoints[0].ID)

	// Kill, exit code, delete.
	r = d.cli("job", "delete", "counter-1")
	requireOneLineError(t, r, "job counter-1 is running", "--force")
	r = d.cli("job", "kill", "counter-1", "--signal", "TERM")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, d, "counter-1").Status == "halted" }, 5*time.Second, 20*time.Millisecond)
	job = inspectJob(t, d, "counter-1")
	require.NotNil(t, job.ExitCode, "the restored job is the daemon's child: its exit code is known")
	assert.Equal(t, 128+int(syscall.SIGTERM), *job.ExitCode)
	r = d.cli("job", "kill", "counter-1")
	requireOneLineError(t, r, "job counter-1 is not running")
	r = d.cli("job", "delete", "counter-1")
	require.Equal(t, 0, r.code, r.String())
	r = d.cli("job", "inspect", "counter-1")
	requireOneLineError(t, r, "no job counter-1")
}

// TestJobSurvivesDaemonRestart: a SIGKILLed daemon leaves its jobs running; the next daemon lists
// them, notices the ones that ended meanwhile, and restores a job from its latest checkpoint.
func TestJobSurvivesDaemonRestart(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	pid, counter := managedCounter(t, d, "survivor")
	otherPID, _ := managedCounter(t, d, "casualty")
	r := d.cli("dump", "job", "survivor", "--leave-running", "--name", "ck1")
	require.Equal(t, 0, r.code, r.String())

	require.NoError(t, d.cmd.Process.Kill())
	<-d.exited
	require.False(t, pidGone(pid), "the job outlives the daemon")
	killTree(otherPID)

	d2 := restartDaemon(t, d)
	job := inspectJob(t, d2, "survivor")
	assert.Equal(t, "running", job.Status)
	assert.Equal(t, pid, job.PID)
	require.NotNil(t, job.Latest)
	assert.Equal(t, filepath.Join(d.ckDir, "ck1"), job.Latest.Path)
	require.Eventually(t, func() bool { return inspectJob(t, d2, "casualty").Status == "halted" }, 5*time.Second, 20*time.Millisecond)

	// The job dies... and comes back from its checkpoint, which is well behind the counter by then.
	time.Sleep(1500 * time.Millisecond)
	before := readCounter(counter)
	killTree(pid)
	require.Eventually(t, func() bool { return inspectJob(t, d2, "survivor").Status == "halted" }, 5*time.Second, 20*time.Millisecond)
	// The orphaned job was re-parented to this test (a subreaper): reap it.
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	r = d2.cli("restore", "job", "survivor")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { v := readCounter(counter); return v > 0 && v < before }, 5*time.Second, 10*time.Millisecond,
		"restored from the checkpoint taken before the counter reached %d", before)
	assert.Equal(t, "running", inspectJob(t, d2, "survivor").Status)

	// SIGTERM stops the daemon at once, and its jobs keep running.
	require.NoError(t, d2.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d2.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon did not stop on SIGTERM while a job runs")
	}
	assert.NoError(t, d2.exitErr)
	assert.False(t, pidGone(pid), "the restored job outlives the daemon")
}

// restartDaemon starts a new daemon with d's socket, database and directories.
func restartDaemon(t *testing.T, d *daemon) *daemon {
	t.Helper()
	d2 := &daemon{t: t, bin: d.bin, dir: d.dir, socket: d.socket, ckDir: d.ckDir, env: d.env, log: &testutil.Buffer{}, exited: make(chan struct{})}
	d2.cmd = newDaemonCmd(d2)
	require.NoError(t, d2.cmd.Start())
	go func() { d2.exitErr = d2.cmd.Wait(); close(d2.exited) }()
	t.Cleanup(func() {
		d2.stop()
		if t.Failed() {
			t.Logf("restarted daemon log:\n%s", d2.log.String())
		}
	})
	d2.waitReady()
	return d2
}

// TestConcurrentDumpsOfOneJob: a second dump of a job while one runs is refused as busy.
func TestConcurrentDumpsOfOneJob(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	managedCounter(t, d, "busy-one")
	var wg sync.WaitGroup
	results := make([]result, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.cli("dump", "job", "busy-one", "--leave-running", "--name", fmt.Sprintf("ck%d", i))
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, r := range results {
		switch {
		case r.code == 0:
			ok++
		case regexp.MustCompile(`job busy-one is busy with another operation`).MatchString(r.stderr):
			busy++
		default:
			t.Errorf("unexpected result: %s", r)
		}
	}
	assert.GreaterOrEqual(t, ok, 1)
	assert.Equal(t, len(results), ok+busy)
}

// TestConcurrentDumpsOfOneTree: dumps naming one tree in different ways (its job, its PID) never
// run at once: while one is under way, the others are refused as busy.
func TestConcurrentDumpsOfOneTree(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	pid, _ := managedCounter(t, d, "busy-two")
	var wg sync.WaitGroup
	results := make([]result, 6)
	for i := range results {
		args := []string{"dump", "job", "busy-two"}
		if i%2 == 1 {
			args = []string{"dump", "process", strconv.Itoa(pid)}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.cli(append(args, "--leave-running", "--name", fmt.Sprintf("ck%d", i))...)
		}()
	}
	wg.Wait()
	busyMsg := regexp.MustCompile(fmt.Sprintf(`(job busy-two|the process tree of PID %d) is busy with another operation`, pid))
	ok, busy := 0, 0
	for _, r := range results {
		switch {
		case r.code == 0:
			ok++
		case busyMsg.MatchString(r.stderr):
			busy++
		default:
			t.Errorf("unexpected result: %s", r)
		}
	}
	assert.GreaterOrEqual(t, ok, 1)
	assert.Equal(t, len(results), ok+busy)
	assert.Regexp(t, fmt.Sprintf(`busy-two\s+process\s+%d\s+running`, pid), d.cli("ps").stdout)
}

// TestRunBadInput: a missing program is refused and no job is recorded; unknown JIDs are named.
func TestRunBadInput(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	r := d.cli("run", "process", "/nonexistent/program")
	requireOneLineError(t, r, "cannot run /nonexistent/program")
	r = d.cli("ps", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	assert.NotContains(t, r.stdout, "jid")
	for _, args := range [][]string{{"job", "inspect", "nope"}, {"job", "kill", "nope"}, {"dump", "job", "nope"}, {"restore", "job", "nope"}, {"job", "delete", "nope"}} {
		requireOneLineError(t, d.cli(args...), "no job nope")
	}
	managedCounter(t, d, "taken")
	requireOneLineError(t, d.cli("run", "process", "--jid", "taken", "true"), "job taken already exists")
	r = d.cli("restore", "job", "taken")
	requireOneLineError(t, r, "job taken is running")
}

// TestManageProcess: an adopted process becomes a job that can be dumped and restored; deleting
// the job deletes its checkpoints' files.
func TestManageProcess(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, false)
	r := d.cli("manage", "process", strconv.Itoa(w.pid), "--jid", "adopted")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, fmt.Sprintf("Managing PID %d as job adopted\n", w.pid), r.stdout)
	assert.Regexp(t, fmt.Sprintf(`adopted\s+process\s+%d\s+running`, w.pid), d.cli("ps").stdout)

	r = d.cli("dump", "job", "adopted", "--name", "adopted-1")
	require.Equal(t, 0, r.code, r.String())
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)
	require.Eventually(t, func() bool { return inspectJob(t, d, "adopted").Status == "halted" }, 5*time.Second, 20*time.Millisecond)
	r = d.cli("restore", "job", "adopted")
	require.Equal(t, 0, r.code, r.String())
	w.restored = w.pid
	requireCounting(t, w.counter, dumped)

	requireOneLineError(t, d.cli("manage", "process", strconv.Itoa(unusedPID(t))), "no running process with PID")
	requireOneLineError(t, d.cli("manage", "process", strconv.Itoa(w.pid), "--jid", "adopted"), "job adopted already exists")

	r = d.cli("job", "delete", "adopted", "--force")
	require.Equal(t, 0, r.code, r.String())
	assert.NoDirExists(t, filepath.Join(d.ckDir, "adopted-1"), "deleting a job deletes its checkpoints")
	require.Eventually(t, func() bool { return pidGone(w.pid) }, 5*time.Second, 20*time.Millisecond, "--force kills the job")
}

// TestRunPIDFile: --pid-file receives the job's PID.
func TestRunPIDFile(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := d.cli("run", "process", "--pid-file", pidFile, "-o", "json", "sleep", "30")
	require.Equal(t, 0, r.code, r.String())
	var job jobJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &job), r.stdout)
	t.Cleanup(func() { killTree(job.PID) })
	assert.NotEmpty(t, job.JID)
	assert.Regexp(t, `^[a-z]+-[a-z]+-[0-9a-f]{4}$`, job.JID, "generated JIDs are short and readable")
	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%d\n", job.PID), string(data))
}
