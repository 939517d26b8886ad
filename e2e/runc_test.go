package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/internal/testutil"
)

// runcEnv is a private runc state directory and a bundle with a busybox-static rootfs whose
// container counts into /data/count (overwritten in place, never empty; it says so on stdout every
// tenth count).
type runcEnv struct {
	t       *testing.T
	root    string // runc --root
	bundle  string
	counter string // /data/count seen from the host
	runc    string
}

// newRuncEnv makes a runc root and a bundle; at the end of the test every container in the root
// is killed and deleted.
func newRuncEnv(t *testing.T) *runcEnv {
	t.Helper()
	requireE2E(t)
	runcBin := testutil.RequireTool(t, "runc")
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Fatalf("%s (busybox-static, installed by just deps) is needed for the container's rootfs: %v", busybox, err)
	}
	dir := t.TempDir()
	e := &runcEnv{t: t, root: filepath.Join(dir, "runc-root"), bundle: filepath.Join(dir, "bundle"), runc: runcBin}
	rootfs := filepath.Join(e.bundle, "rootfs")
	for _, sub := range []string{"bin", "proc", "dev", "sys", "tmp", "data"} {
		require.NoError(t, os.MkdirAll(filepath.Join(rootfs, sub), 0o755))
	}
	data, err := os.ReadFile(busybox)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755))
	for _, applet := range []string{"sh", "sleep", "echo", "cat"} {
		require.NoError(t, os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)))
	}
	e.counter = filepath.Join(rootfs, "data", "count")
	out, err := exec.Command(runcBin, "spec", "--bundle", e.bundle).CombinedOutput()
	require.NoError(t, err, "%s", out)
	e.setProcess(`i=0; while true; do i=$((i+1)); printf "%08d\n" $i 1<>/data/count; [ $((i % 10)) = 0 ] && echo "count $i"; sleep 0.1; done`)
	t.Cleanup(e.cleanup)
	return e
}

// editSpec rewrites the bundle's config.json through edit.
func (e *runcEnv) editSpec(edit func(spec map[string]any)) {
	e.t.Helper()
	path := filepath.Join(e.bundle, "config.json")
	data, err := os.ReadFile(path)
	require.NoError(e.t, err)
	var spec map[string]any
	require.NoError(e.t, json.Unmarshal(data, &spec))
	edit(spec)
	data, err = json.MarshalIndent(spec, "", "  ")
	require.NoError(e.t, err)
	require.NoError(e.t, os.WriteFile(path, data, 0o644))
}

// setProcess makes the bundle's container run script with sh, without a terminal.
func (e *runcEnv) setProcess(script string) {
	e.editSpec(func(spec map[string]any) {
		process := spec["process"].(map[string]any)
		process["terminal"] = false
		process["args"] = []string{"/bin/sh", "-c", script}
		spec["root"].(map[string]any)["readonly"] = false
	})
}

// cmd runs the host's runc on our root and returns its output.
func (e *runcEnv) cmd(args ...string) (string, error) {
	cmd := exec.Command(e.runc, append([]string{"--root", e.root}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runDetached runs container id with `runc run --detach`. The container keeps runc's stdio, so it
// gets /dev/null (a pipe would keep the output open for as long as the container runs, a host
// file could not be checkpointed); runc's own messages go to a log.
func (e *runcEnv) runDetached(id string) (string, error) {
	logPath := filepath.Join(e.t.TempDir(), "runc.log")
	cmd := exec.Command(e.runc, "--root", e.root, "--log", logPath, "run", "--detach", "--bundle", e.bundle, id)
	err := cmd.Run()
	out, _ := os.ReadFile(logPath)
	return string(out), err
}

// start runs a container detached straight with runc and waits until it counts.
func (e *runcEnv) start(id string) int {
	e.t.Helper()
	out, err := e.runDetached(id)
	require.NoError(e.t, err, "runc run: %s", out)
	pid := e.pid(id)
	require.Positive(e.t, pid)
	require.Eventually(e.t, func() bool { return readCounter(e.counter) >= 2 }, 10*time.Second, 20*time.Millisecond, "the container did not start counting")
	return pid
}

// runcState is the part of `runc state` the tests read.
type runcState struct {
	Status string `json:"status"`
	PID    int    `json:"pid"`
}

// stateOf is runc's state of container id, the zero value if runc does not know it.
func (e *runcEnv) stateOf(id string) runcState {
	var st runcState
	if out, err := e.cmd("state", id); err == nil {
		_ = json.Unmarshal([]byte(out), &st)
	}
	return st
}

// state is runc's status of container id, "" if runc does not know it.
func (e *runcEnv) state(id string) string { return e.stateOf(id).Status }

// pid is container id's init PID, 0 if runc does not know it.
func (e *runcEnv) pid(id string) int { return e.stateOf(id).PID }

// ids lists the containers runc has under our root.
func (e *runcEnv) ids() []string {
	out, err := e.cmd("list", "-q")
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

// killAndDelete kills container id with runc and deletes it, and reaps its init (our test binary
// is the subreaper of containers whose runc has exited).
func (e *runcEnv) killAndDelete(id string) {
	e.t.Helper()
	pid := e.pid(id)
	out, err := e.cmd("kill", id, "KILL")
	require.NoError(e.t, err, "runc kill: %s", out)
	require.Eventually(e.t, func() bool { reapAll(pid); return e.state(id) == "stopped" }, 10*time.Second, 20*time.Millisecond)
	out, err = e.cmd("delete", id)
	require.NoError(e.t, err, "runc delete: %s", out)
	assert.Empty(e.t, e.state(id))
}

func (e *runcEnv) cleanup() {
	for _, id := range e.ids() {
		pid := e.pid(id)
		_, _ = e.cmd("delete", "--force", id)
		reapAll(pid)
	}
}

// TestRuncDumpRestore: a running container is checkpointed (and is then gone from runc), restored
// from the checkpoint under its ID and bundle (runc lists it running, its count goes on), and runc
// kills and deletes it as its own.
func TestRuncDumpRestore(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	pid := e.start("counter")
	dir := t.TempDir()

	r := d.cli("dump", "runc", "counter", "--root", e.root, "--dir", dir, "--name", "ck", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var dumped struct {
		Checkpoint checkpointJSON `json:"checkpoint"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dumped), r.stdout)
	assert.Equal(t, "runc", dumped.Checkpoint.Type)
	assert.Equal(t, pid, dumped.Checkpoint.Pid)
	assert.Empty(t, e.ids(), "a dumped container is gone from runc, as after runc checkpoint")
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	count := requireStopped(t, e.counter)
	for _, f := range []string{"descriptors.json", "runc-config.json", "runc-state.json", "checkpoint.json"} {
		assert.FileExists(t, filepath.Join(dir, "ck", f))
	}

	r = d.cli("restore", "runc", "--path", filepath.Join(dir, "ck"), "--root", e.root)
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("counter"))
	m := regexp.MustCompile(`Restored, PID: (\d+)`).FindStringSubmatch(r.stdout + r.stderr)
	require.NotNil(t, m, r.String())
	assert.Equal(t, m[1], strconv.Itoa(e.pid("counter")))
	requireCounting(t, e.counter, count)
	e.killAndDelete("counter")
}

// TestRuncLeaveRunningCompressedNewID: a compressed dump with --leave-running keeps the container
// running; once it is deleted, the archive restores into the same bundle under a new ID.
func TestRuncLeaveRunningCompressedNewID(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	e.start("original")
	dir := t.TempDir()

	r := d.cli("dump", "runc", "original", "--root", e.root, "--dir", dir, "--name", "ck", "--compression", "zstd", "--leave-running", "--stats")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, adapters.StreamedNote, "a container without a terminal streams its images")
	assert.FileExists(t, filepath.Join(dir, "ck.tar.zst"))
	assert.Equal(t, "running", e.state("original"))
	requireCounting(t, e.counter, readCounter(e.counter))
	e.killAndDelete("original")
	count := readCounter(e.counter)

	r = d.cli("restore", "runc", "--path", filepath.Join(dir, "ck.tar.zst"), "--root", e.root, "--id", "copy", "--bundle", e.bundle, "--stats")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, adapters.UnpackedFirstNote, "runc restores from files")
	assert.Equal(t, []string{"copy"}, e.ids())
	assert.Equal(t, "running", e.state("copy"))
	requireCounting(t, e.counter, count-1)
	e.killAndDelete("copy")
}

// TestRuncJobs: `run runc` starts a container as a job whose output reaches the job's log; dump
// job and restore job bring it back under the same ID, still logging; `manage runc` adopts a
// container runc started, and its job dumps and restores too.
func TestRuncJobs(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)

	r := d.cli("run", "runc", "--id", "job-ct", "--bundle", e.bundle, "--root", e.root, "--jid", "ctjob")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `^Running managed runc PID \d+ \(job ctjob, log \S+\)`, r.stdout)
	assert.Equal(t, "running", e.state("job-ct"))
	logPath := filepath.Join(d.dir, "logs", "ctjob.log")
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), "count 10") },
		10*time.Second, 50*time.Millisecond, "the container's output did not reach the job's log")

	// The container and its log outlive the daemon.
	require.NoError(t, d.cmd.Process.Kill())
	<-d.exited
	later := fmt.Sprintf("count %d", (readCounter(e.counter)/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), later) },
		10*time.Second, 50*time.Millisecond, "the output stopped reaching the log without a daemon (%s)", later)
	d = restartDaemon(t, d)
	assert.Regexp(t, `ctjob\s+runc\s+\d+\s+running`, d.cli("ps").stdout)

	pid := e.pid("job-ct")
	r = d.cli("dump", "job", "ctjob")
	require.Equal(t, 0, r.code, r.String())
	assert.Empty(t, e.ids())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(d.cli("ps").stdout, "halted") }, 10*time.Second, 50*time.Millisecond)
	count := requireStopped(t, e.counter)

	r = d.cli("restore", "job", "ctjob")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("job-ct"))
	assert.Regexp(t, fmt.Sprintf(`ctjob\s+runc\s+%d\s+running`, e.pid("job-ct")), d.cli("ps").stdout)
	requireCounting(t, e.counter, count)
	next := fmt.Sprintf("count %d", (count/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored container's output did not reach the job's log (%s)", next)

	// Killing the job kills the container; runc, the restored job's supervisor, deletes it and
	// reports 128+SIGKILL, and the job comes back from its checkpoint in its place (preemption).
	r = d.cli("job", "kill", "ctjob")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return e.state("job-ct") == "" }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(d.cli("ps").stdout, "halted (exit 137)") }, 10*time.Second, 50*time.Millisecond)
	r = d.cli("restore", "job", "ctjob")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("job-ct"))
	requireCounting(t, e.counter, count)
	e.killSupervised("job-ct")

	// manage: a container started by runc itself.
	e.start("adopted")
	r = d.cli("manage", "runc", "adopted", "--root", e.root, "--jid", "adopted")
	require.Equal(t, 0, r.code, r.String())
	pid = e.pid("adopted")
	r = d.cli("dump", "job", "adopted")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	count = requireStopped(t, e.counter)
	r = d.cli("restore", "job", "adopted")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("adopted"))
	requireCounting(t, e.counter, count)
	e.killSupervised("adopted")
}

// TestRuncBadInput: an unknown container, a wrong root, a paused and a stopped container, a bundle
// without rootfs and an ID in use are each refused with one clear line, and nothing changes.
func TestRuncBadInput(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	dir := t.TempDir()

	e.start("paused")
	r := d.cli("dump", "runc", "nope", "--root", e.root, "--dir", dir)
	requireOneLineError(t, r, `no runc container "nope"`, "runc --root")
	r = d.cli("dump", "runc", "paused", "--root", filepath.Join(dir, "missing"), "--dir", dir)
	requireOneLineError(t, r, "does not exist", "--root")
	assert.Empty(t, entries(dir), "nothing written")

	out, err := e.cmd("pause", "paused")
	require.NoError(t, err, out)
	r = d.cli("dump", "runc", "paused", "--root", e.root, "--dir", dir)
	requireOneLineError(t, r, "is paused", "resume")
	assert.Equal(t, "paused", e.state("paused"), "the container is left as it was")
	out, err = e.cmd("resume", "paused")
	require.NoError(t, err, out)

	// A good checkpoint to restore wrongly.
	r = d.cli("dump", "runc", "paused", "--root", e.root, "--dir", dir, "--name", "ck", "--leave-running")
	require.Equal(t, 0, r.code, r.String())
	ck := filepath.Join(dir, "ck")
	r = d.cli("restore", "runc", "--path", ck, "--root", e.root)
	requireOneLineError(t, r, `already has a container "paused"`, "--id")
	assert.Equal(t, []string{"paused"}, e.ids())
	noRootfs := t.TempDir()
	data, err := os.ReadFile(filepath.Join(e.bundle, "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(noRootfs, "config.json"), data, 0o644))
	r = d.cli("restore", "runc", "--path", ck, "--root", e.root, "--id", "other", "--bundle", noRootfs)
	requireOneLineError(t, r, "has no rootfs")
	r = d.cli("restore", "runc", "--path", ck, "--root", e.root, "--id", "other", "--bundle", t.TempDir())
	requireOneLineError(t, r, "has no config.json")
	assert.Equal(t, []string{"paused"}, e.ids(), "nothing was restored")
	e.killAndDelete("paused")

	// A container whose process has exited.
	e.setProcess("exit 0")
	out, err = e.runDetached("done")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { return e.state("done") == "stopped" }, 10*time.Second, 20*time.Millisecond)
	r = d.cli("dump", "runc", "done", "--root", e.root, "--dir", dir)
	requireOneLineError(t, r, "is stopped", "nothing to checkpoint")

	// A binary built without the runc runtime says so.
	r = runCmd(t, cedanaCustomBin, d.env, "dump", "runc", "x")
	requireOneLineError(t, r, "runc runtime is not compiled into this cedana binary", "runtimes.runc")
}

// setNetNS points the bundle's network namespace at path (a namespace that exists already).
func (e *runcEnv) setNetNS(path string) {
	e.editSpec(func(spec map[string]any) {
		for _, ns := range spec["linux"].(map[string]any)["namespaces"].([]any) {
			if m := ns.(map[string]any); m["type"] == "network" {
				m["path"] = path
			}
		}
	})
}

// TestRuncExternalNetNS: a container that joins a network namespace of the host's (as CNI sets
// them up) is dumped with that namespace external and restored into it.
func TestRuncExternalNetNS(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	name := fmt.Sprintf("cedana-e2e-%d", os.Getpid())
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	nsPath := "/var/run/netns/" + name
	e.setNetNS(nsPath)
	pid := e.start("netns")
	link := func(pid int) string { l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); return l }
	want := link(pid)
	var st syscallStat
	require.NoError(t, statIno(nsPath, &st))
	assert.Contains(t, want, fmt.Sprint(st.ino), "the container joined the named namespace")

	dir := t.TempDir()
	r := d.cli("dump", "runc", "netns", "--root", e.root, "--dir", dir, "--name", "ck")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	for _, name := range entries(filepath.Join(dir, "ck")) {
		assert.False(t, strings.HasPrefix(name, "ifaddr-") || strings.HasPrefix(name, "route-"),
			"the external namespace's contents are not dumped: %s", name)
	}
	count := requireStopped(t, e.counter)

	r = d.cli("restore", "runc", "--path", filepath.Join(dir, "ck"), "--root", e.root)
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, want, link(e.pid("netns")), "restored into the same network namespace")
	requireCounting(t, e.counter, count)
	e.killAndDelete("netns")
}

// syscallStat is the part of stat(2) the tests read.
type syscallStat struct{ ino uint64 }

func statIno(path string, st *syscallStat) error {
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return err
	}
	st.ino = s.Ino
	return nil
}

// setTerminal gives the bundle's container a terminal (process.terminal).
func (e *runcEnv) setTerminal() {
	e.editSpec(func(spec map[string]any) { spec["process"].(map[string]any)["terminal"] = true })
}

// TestRuncTerminal: a container with a terminal runs as a job whose terminal output is its log;
// it is dumped (its pty master is outside the container) and restored with a new terminal, whose
// output reaches the log again.
func TestRuncTerminal(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	logPath, count := dumpTerminalJob(t, e, d, "tty")
	r := d.cli("restore", "job", "tty")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "running", e.state("tty"))
	requireCounting(t, e.counter, count)
	next := fmt.Sprintf("count %d", (count/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored terminal's output did not reach the log (%s)", next)
	e.killAndDelete("tty")
}

// dumpTerminalJob runs the bundle's container with a terminal as job id (container id), waits
// until its output reaches the job's log, dumps the job and returns the log's path and the count
// it stopped at.
func dumpTerminalJob(t *testing.T, e *runcEnv, d *daemon, id string) (string, int) {
	t.Helper()
	e.setTerminal()
	r := d.cli("run", "runc", "--id", id, "--bundle", e.bundle, "--root", e.root, "--jid", id)
	require.Equal(t, 0, r.code, r.String())
	logPath := filepath.Join(d.dir, "logs", id+".log")
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), "count 10") },
		10*time.Second, 50*time.Millisecond, "the terminal's output did not reach the job's log")
	pid := e.pid(id)
	r = d.cli("dump", "job", id)
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	return logPath, requireStopped(t, e.counter)
}

// TestRuncRunRaceForOneJID: runs racing for one JID start a container each; the ones that lose
// the JID remove their container, so no container runs that no job owns.
func TestRuncRunRaceForOneJID(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)

	ids := []string{"race-a", "race-b", "race-c"}
	codes := make([]int, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			codes[i] = d.cli("run", "runc", "--id", id, "--bundle", e.bundle, "--root", e.root, "--jid", "race").code
		})
	}
	wg.Wait()
	var won []string
	for i, code := range codes {
		if code == 0 {
			won = append(won, ids[i])
		}
	}
	require.Len(t, won, 1, "exit codes %v", codes)
	assert.Equal(t, won, e.ids(), "only the winner's container is left")
	e.killSupervised(won[0])
}
