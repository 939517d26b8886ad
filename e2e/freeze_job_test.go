package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFreezeContainerd: freeze pauses a containerd container's task through containerd (ctr lists
// it PAUSED, its count stops), query describes it paused in text and JSON, and unfreeze resumes
// it (RUNNING, counting on); a second unfreeze and a container without a task are refused.
func TestFreezeContainerd(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	const id = "ccd-freeze"
	pid := ctrRun(t, c, "default", id, countScript)
	counter := containerCounter(pid)

	r := d.cli("freeze", "containerd", id, at)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Frozen (pause containerd container default/"+id+"): PID "+strconv.Itoa(pid))
	assert.Equal(t, "PAUSED", ctrTaskStatus(c, "default", id))
	count := requireStopped(t, counter)

	q := query(t, d, "containerd", id, at)
	require.Len(t, q.Workloads, 1)
	assert.Equal(t, "paused", q.Workloads[0].Status)
	assert.Equal(t, pid, q.Workloads[0].Pid)
	assert.Equal(t, filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", "default", id), q.Workloads[0].Bundle)
	require.NotEmpty(t, q.Workloads[0].Processes)
	assert.Equal(t, "sh", filepath.Base(q.Workloads[0].Processes[0].Cmdline[0]))
	text := d.cli("query", "containerd", id, at)
	require.Equal(t, 0, text.code, text.String())
	assert.Regexp(t, `(?m)^containerd\s+`+id+`\s+paused\s+`+strconv.Itoa(pid)+`\s`, text.stdout)

	r = d.cli("freeze", "containerd", id, at)
	assert.Equal(t, 1, r.code, r.String())
	assert.Contains(t, r.stderr, "not running")

	r = d.cli("unfreeze", "containerd", id, at, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `"method":\s*"resume"`, r.stdout)
	assert.Equal(t, "RUNNING", ctrTaskStatus(c, "default", id))
	requireCounting(t, counter, count)
	assert.Equal(t, "running", query(t, d, "containerd", id, at).Workloads[0].Status)
	text = d.cli("query", "containerd", id, at)
	assert.Regexp(t, `(?m)^containerd\s+`+id+`\s+running\s+`, text.stdout)

	r = d.cli("unfreeze", "containerd", id, at)
	assert.Equal(t, 1, r.code, r.String())
	assert.Contains(t, r.stderr, "not paused")

	removeContainer(c, "default", id)
	r = d.cli("freeze", "containerd", id, at)
	assert.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, id)
}

// TestFreezeJobProcess: `freeze job J` stops a process job's tree (its count stops, every process
// is stopped) and `unfreeze job J` lets it count on.
func TestFreezeJobProcess(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	t.Cleanup(func() { killJobs(t, d) })
	counter := filepath.Join(t.TempDir(), "count")
	const jid = "ccd-fj-process"
	r := d.cli("run", "process", "--jid", jid, "--", "sh", "-c",
		`i=0; while true; do i=$((i+1)); printf "%08d\n" $i 1<>`+counter+`; sleep 0.1; done`)
	require.Equal(t, 0, r.code, r.String())
	requireCounting(t, counter, 1)
	pid := inspectJob(t, d, jid).PID

	r = d.cli("freeze", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `^Frozen \((signal|cgroup [^)]+)\): PID `+strconv.Itoa(pid), r.stdout)
	count := requireStopped(t, counter)
	// Status is "frozen" or "stopped" only when every process of the tree is.
	assert.Regexp(t, `^(frozen|stopped)$`, query(t, d, "process", strconv.Itoa(pid)).Workloads[0].Status)

	r = d.cli("unfreeze", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Unfrozen (")
	requireCounting(t, counter, count)
	assert.Equal(t, "running", inspectJob(t, d, jid).Status)
}

// TestFreezeJobRunc: `freeze job J` pauses a runc job's container as `runc pause` does and
// `unfreeze job J` resumes it.
func TestFreezeJobRunc(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	const jid = "ccd-fj-runc"
	r := d.cli("run", "runc", "--bundle", e.bundle, "--jid", jid, "--root", e.root)
	require.Equal(t, 0, r.code, r.String())
	requireCounting(t, e.counter, 1)

	r = d.cli("freeze", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Frozen (pause runc container "+jid+")")
	assert.Equal(t, "paused", e.state(jid))
	count := requireStopped(t, e.counter)

	r = d.cli("unfreeze", "job", jid)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Unfrozen (resume runc container "+jid+")")
	assert.Equal(t, "running", e.state(jid))
	requireCounting(t, e.counter, count)

	r = d.cli("job", "kill", jid) // the job's runc run deletes the container as it exits
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { return inspectJob(t, d, jid).Status == "halted" }, 10*time.Second, 50*time.Millisecond)
}
