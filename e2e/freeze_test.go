package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queried is the part of `cedana query -o json` the tests read.
type queried struct {
	Workloads []struct {
		Type      string `json:"type"`
		ID        string `json:"id"`
		Pid       int    `json:"pid"`
		Status    string `json:"status"`
		Bundle    string `json:"bundle"`
		Processes []struct {
			Pid     int      `json:"pid"`
			State   string   `json:"state"`
			Cmdline []string `json:"cmdline"`
		} `json:"processes"`
	} `json:"workloads"`
}

func query(t *testing.T, d *daemon, args ...string) queried {
	t.Helper()
	r := d.cli(append([]string{"query"}, append(args, "-o", "json")...)...)
	require.Equal(t, 0, r.code, r.String())
	var q queried
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &q), r.stdout)
	return q
}

// TestFreezeProcessSignal: a tree that shares its cgroup is stopped with SIGSTOP, query sees it
// stopped, and unfreeze lets it count on; PID 1 and the daemon are refused.
func TestFreezeProcessSignal(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, true)
	pid := strconv.Itoa(w.pid)

	r := d.cli("freeze", "process", pid)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Frozen (signal)")
	count := requireStopped(t, w.counter)
	requireStopped(t, w.child)

	q := query(t, d, "process", pid)
	require.Len(t, q.Workloads, 1)
	assert.Equal(t, "stopped", q.Workloads[0].Status)
	assert.Equal(t, "process", q.Workloads[0].Type)
	require.Len(t, q.Workloads[0].Processes, 2, "root and its subshell")
	assert.Equal(t, "bash", q.Workloads[0].Processes[0].Cmdline[0])
	text := d.cli("query", "process", pid)
	require.Equal(t, 0, text.code, text.String())
	assert.Regexp(t, `(?m)^process\s+`+pid+`\s+stopped\s+`+pid+`\s`, text.stdout)

	r = d.cli("unfreeze", "process", pid, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `"method":\s*"signal"`, r.stdout)
	requireCounting(t, w.counter, count)
	assert.Equal(t, "sleeping", query(t, d, "process", pid).Workloads[0].Processes[0].State)

	for _, bad := range []string{"1", strconv.Itoa(d.cmd.Process.Pid)} {
		r = d.cli("freeze", "process", bad)
		assert.Equal(t, 1, r.code, r.String())
		assert.Contains(t, r.stderr, "refusing to freeze PID "+bad)
	}
}

// TestFreezeProcessCgroup: a tree alone in a cgroup v2 of its own is frozen through cgroup.freeze.
func TestFreezeProcessCgroup(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, true)
	cg := filepath.Join("/sys/fs/cgroup/unified", fmt.Sprintf("cedana-fq-%d", w.pid))
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = filepath.Join("/sys/fs/cgroup", fmt.Sprintf("cedana-fq-%d", w.pid))
	}
	require.NoError(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() {
		killTree(w.pid)
		require.Eventually(t, func() bool { return os.Remove(cg) == nil }, 10*time.Second, 20*time.Millisecond, "cgroup %s not removed", cg)
	})
	for _, p := range query(t, d, "process", strconv.Itoa(w.pid)).Workloads[0].Processes {
		require.NoError(t, os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(p.Pid)), 0))
	}

	r := d.cli("freeze", "process", strconv.Itoa(w.pid))
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Frozen (cgroup "+cg+")")
	count := requireStopped(t, w.counter)
	assert.Equal(t, "frozen", query(t, d, "process", strconv.Itoa(w.pid)).Workloads[0].Status)

	r = d.cli("unfreeze", "process", strconv.Itoa(w.pid))
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Unfrozen (cgroup "+cg+")")
	requireCounting(t, w.counter, count)
}

// TestRestorePIDFileLeaveStopped: a restore with --pid-file writes the restored root's PID, and
// --leave-stopped leaves the tree stopped until unfreeze resumes it.
func TestRestorePIDFileLeaveStopped(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, true)
	path := dump(t, d, w)
	w.waitExited(t)
	count := requireStopped(t, w.counter)
	reapAll(readCheckpoint(t, path).Pids...)
	pidFile := filepath.Join(t.TempDir(), "restored.pid")

	r := d.cli("restore", "process", "--path", path, "--pid-file", pidFile, "--leave-stopped", "--link-remap")
	require.Equal(t, 0, r.code, r.String())
	m := restored.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.String())
	w.restored, _ = strconv.Atoi(m[1])
	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Equal(t, m[1], string(data))
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(pidFile), ".*"))
	assert.Empty(t, matches, "no temporary file is left beside the PID file")

	requireStopped(t, w.counter)
	assert.Equal(t, "stopped", query(t, d, "process", m[1]).Workloads[0].Status)
	r = d.cli("unfreeze", "process", m[1])
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Unfrozen (signal)")
	requireCounting(t, w.counter, count)
}

// TestFreezeRunc: freeze pauses a runc container as `runc pause` does (runc lists it paused, its
// count stops), query describes it, and unfreeze resumes it.
func TestFreezeRunc(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	const id = "fq-counter"
	pid := e.start(id)

	r := d.cli("freeze", "runc", id, "--root", e.root)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Frozen (pause runc container "+id+")")
	assert.Equal(t, "paused", e.state(id))
	out, err := e.cmd("list")
	require.NoError(t, err, out)
	assert.Regexp(t, id+`\s+\d+\s+paused`, out)
	count := requireStopped(t, e.counter)

	q := query(t, d, "runc", id, "--root", e.root)
	require.Len(t, q.Workloads, 1)
	assert.Equal(t, "paused", q.Workloads[0].Status)
	assert.Equal(t, pid, q.Workloads[0].Pid)
	assert.Equal(t, e.bundle, q.Workloads[0].Bundle)

	r = d.cli("unfreeze", "runc", id, "--root", e.root)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Unfrozen (resume")
	assert.Equal(t, "running", e.state(id))
	requireCounting(t, e.counter, count)
	text := d.cli("query", "runc", id, "--root", e.root)
	require.Equal(t, 0, text.code, text.String())
	assert.True(t, strings.Contains(text.stdout, "running") && strings.Contains(text.stdout, e.bundle), text.stdout)

	r = d.cli("unfreeze", "runc", id, "--root", e.root)
	assert.Equal(t, 1, r.code, r.String())
	assert.Contains(t, r.stderr, "not paused")
	e.killAndDelete(id)
}
