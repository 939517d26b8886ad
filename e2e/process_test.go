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
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	dumpedTo = regexp.MustCompile(`^Dumped to (\S+)\n$`)
	restored = regexp.MustCompile(`^Restored, PID: (\d+)\n$`)
)

// checkpointJSON is the part of checkpoint.json the tests read.
type checkpointJSON struct {
	Type        string   `json:"type"`
	Pid         int      `json:"pid"`
	Pids        []int    `json:"pids"`
	Cmdline     []string `json:"cmdline"`
	Hostname    string   `json:"hostname"`
	Kernel      string   `json:"kernel"`
	CriuVersion int      `json:"criu_version"`
	CreatedAt   string   `json:"created_at"`
	SizeBytes   string   `json:"size_bytes"`
	Options     struct {
		LeaveRunning bool `json:"leave_running"`
		ShellJob     bool `json:"shell_job"`
	} `json:"options"`
}

func readCheckpoint(t *testing.T, dir string) checkpointJSON {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	require.NoError(t, err)
	var ck checkpointJSON
	require.NoError(t, json.Unmarshal(data, &ck))
	return ck
}

// dump checkpoints w's tree with the CLI and returns the checkpoint's path.
func dump(t *testing.T, d *daemon, w *workload, args ...string) string {
	t.Helper()
	r := d.cli(append([]string{"dump", "process", strconv.Itoa(w.pid)}, args...)...)
	require.Equal(t, 0, r.code, r.String())
	m := dumpedTo.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.String())
	return m[1]
}

// restore restores path with the CLI and returns the restored root's PID.
func restore(t *testing.T, d *daemon, w *workload, path string) int {
	t.Helper()
	r := d.cli("restore", "process", "--path", path)
	require.Equal(t, 0, r.code, r.String())
	m := restored.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.String())
	pid, _ := strconv.Atoi(m[1])
	w.restored = pid
	return pid
}

// TestDumpRestoreProcessTree is the main path: a live two-process tree is checkpointed (and so
// stopped), restored as a child of the daemon, and both its counters go on from where they were.
func TestDumpRestoreProcessTree(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, true)

	path := dump(t, d, w)
	assert.Equal(t, d.ckDir, filepath.Dir(path), "default directory is checkpoint.dir")
	assert.Regexp(t, `^dump-process-\d+$`, filepath.Base(path))
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)
	dumpedChild := requireStopped(t, w.child)

	ck := readCheckpoint(t, path)
	assert.Equal(t, "process", ck.Type)
	assert.Equal(t, w.pid, ck.Pid)
	require.Len(t, ck.Pids, 2, "root and its subshell")
	assert.Equal(t, w.pid, ck.Pids[0])
	assert.Equal(t, "bash", ck.Cmdline[0])
	assert.NotEmpty(t, ck.Hostname)
	assert.NotEmpty(t, ck.Kernel)
	assert.GreaterOrEqual(t, ck.CriuVersion, 40100)
	assert.NotEmpty(t, ck.CreatedAt)
	assert.NotEqual(t, "0", ck.SizeBytes)
	assert.False(t, ck.Options.ShellJob, "a setsid tree is not a shell job")
	files := entries(path)
	assert.Contains(t, files, "dump.log")
	log, err := os.ReadFile(filepath.Join(path, "dump.log"))
	require.NoError(t, err)
	assert.NotContains(t, string(log), "page-xfer", "CRIU logs errors and warnings only, by default (criu.log_level 2)")
	assert.Contains(t, files, "pstree.img")
	assert.Contains(t, files, fmt.Sprintf("core-%d.img", w.pid))
	reapAll(ck.Pids...)

	pid := restore(t, d, w, path)
	assert.Equal(t, w.pid, pid, "CRIU restores the original PID")
	assert.Equal(t, d.cmd.Process.Pid, parentOf(t, pid), "the restored tree is a child of the daemon")
	requireCounting(t, w.counter, dumped)
	requireCounting(t, w.child, dumpedChild)

	// The daemon reaps its restored child when it exits: no zombie is left behind.
	killTree(pid)
	require.Eventually(t, func() bool { return pidGone(pid) }, 5*time.Second, 20*time.Millisecond, "restored process left as a zombie")
	assert.Eventually(t, func() bool { return strings.Contains(d.log.String(), "restored process exited") }, 5*time.Second, 20*time.Millisecond,
		"the daemon logs the exit of what it reaped")
}

// TestDumpLeaveRunning keeps the workload running, prints JSON, and a restore while the original
// still holds the PIDs is refused with an explanation.
func TestDumpLeaveRunning(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, false)
	dir := t.TempDir()

	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--leave-running", "--dir", dir, "--name", "live", "--output", "json")
	require.Equal(t, 0, r.code, r.String())
	var out struct {
		Path       string `json:"path"`
		Checkpoint struct {
			Pid int `json:"pid"`
		} `json:"checkpoint"`
		Stats struct {
			Total  string            `json:"total"`
			Phases map[string]string `json:"phases"`
		} `json:"stats"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Equal(t, filepath.Join(dir, "live"), out.Path)
	assert.Equal(t, w.pid, out.Checkpoint.Pid)
	assert.NotEmpty(t, out.Stats.Total)
	assert.Contains(t, out.Stats.Phases, "criu_dump")
	assert.True(t, readCheckpoint(t, out.Path).Options.LeaveRunning)

	before := readCounter(w.counter)
	require.Eventually(t, func() bool { return readCounter(w.counter) > before+2 }, 5*time.Second, 20*time.Millisecond, "workload stopped counting")
	assert.True(t, w.running())

	r = d.cli("restore", "process", "--path", out.Path)
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, fmt.Sprintf("PID %d of the checkpoint is in use by a running process", w.pid))
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one-line error: %s", r.stderr)
	assert.True(t, w.running(), "a refused restore leaves the original alone")

	killTree(w.pid)
	w.waitExited(t)
	dumped := readCounter(w.counter)
	restore(t, d, w, out.Path)
	// The restored process resumes from the dump, which happened before the counter moved on.
	assert.Eventually(t, func() bool { v := readCounter(w.counter); return v >= before && v < dumped }, 5*time.Second, 10*time.Millisecond,
		"restored counter should restart from the dumped value, %d..%d", before, dumped)
}

// TestCurl drives the daemon with curl and JSON, exactly as the README shows.
func TestCurl(t *testing.T) {
	requireE2E(t)
	curl, err := exec.LookPath("curl")
	require.NoError(t, err, "curl is installed by `just deps`")
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, false)
	dir := t.TempDir()

	post := func(method, body string) (int, string) {
		out, err := exec.Command(curl, "-sS", "-w", "\n%{http_code}", "--unix-socket", d.socket,
			"-H", "Content-Type: application/json", "-d", body,
			"http://localhost/cedana.daemon.v1.DaemonService/"+method).Output()
		require.NoError(t, err)
		text := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(text, '\n')
		code, _ := strconv.Atoi(text[i+1:])
		return code, text[:i]
	}

	code, body := post("Dump", fmt.Sprintf(`{"type":"process","details":{"process":{"pid":%d}},"dir":%q,"name":"by-curl"}`, w.pid, dir))
	require.Equal(t, 200, code, body)
	var dumpResp struct {
		Path string `json:"path"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &dumpResp))
	assert.Equal(t, filepath.Join(dir, "by-curl"), dumpResp.Path)
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)

	code, body = post("Restore", fmt.Sprintf(`{"path":%q}`, dumpResp.Path))
	require.Equal(t, 200, code, body)
	var restoreResp struct {
		Pid int `json:"pid"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &restoreResp))
	w.restored = restoreResp.Pid
	assert.Equal(t, w.pid, restoreResp.Pid)
	requireCounting(t, w.counter, dumped)

	code, body = post("Dump", `{"type":"process","details":{"process":{"pid":1}}}`)
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, `"code":"invalid_argument"`)

	code, body = post("HealthCheck", `{}`)
	assert.Equal(t, 200, code, body)
	assert.Contains(t, body, `"criuCheckOk":true`)

	code, body = post("ListFeatures", `{}`)
	assert.Equal(t, 200, code, body)
	assert.Contains(t, body, `"dump-cmd"`)

	// gRPC health, served beside the API.
	out, err := exec.Command(curl, "-sS", "--unix-socket", d.socket, "-H", "Content-Type: application/json", "-d", "{}",
		"http://localhost/grpc.health.v1.Health/Check").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "SERVING")
}

// TestShellJobDetected: a process started without its own session (as from a shell) is dumped as a
// shell job without the user saying so, and restores. The "shell" is a session leader of its own,
// so that the test does not depend on the session it runs in (under CI's init it has none).
func TestShellJobDetected(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	dir := t.TempDir()
	w := &workload{counter: filepath.Join(dir, "counter"), tick: filepath.Join(dir, "tick"), exited: make(chan struct{})}
	require.NoError(t, exec.Command("mkfifo", w.tick).Run())
	pidFile := filepath.Join(dir, "pid")
	w.cmd = newSetsidCmd("bash", "-c", `bash -c "$1" "$2" "$3" "" & echo $! >"$0"; wait`, pidFile, counterScript, w.counter, w.tick)
	require.NoError(t, w.cmd.Start())
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() { killTree(w.cmd.Process.Pid); killTree(w.pid); killTree(w.restored) })
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(pidFile)
		w.pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return w.pid > 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return readCounter(w.counter) >= 2 }, 10*time.Second, 20*time.Millisecond)

	path := dump(t, d, w)
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)
	assert.True(t, readCheckpoint(t, path).Options.ShellJob, "detected: its session leader is outside the tree")
	restore(t, d, w, path)
	requireCounting(t, w.counter, dumped)
}
