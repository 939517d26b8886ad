package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/store"
)

func newManager(t *testing.T) *Manager {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "db"))
	require.NoError(t, err)
	m := New(st, filepath.Join(dir, "logs"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { m.Close(); st.Close() })
	return m
}

func waitStatus(t *testing.T, m *Manager, jid string, want store.JobStatus) store.Job {
	t.Helper()
	var job store.Job
	require.Eventually(t, func() bool {
		var err error
		job, err = m.store.GetJob(context.Background(), jid)
		return err == nil && job.Status == want
	}, 10*time.Second, 10*time.Millisecond, "job %s never became %s", jid, want)
	return job
}

// start settles a job's JID and log as a runtime does, then starts name with args as the job.
func start(m *Manager, jid, logPath, name string, args ...string) (store.Job, error) {
	jid, logPath, err := m.NewJob(context.Background(), jid, logPath)
	if err != nil {
		return store.Job{}, err
	}
	return m.Start(context.Background(), Command{Type: "test", JID: jid, Log: logPath, Cmd: exec.Command(name, args...)})
}

func TestStartRecordsExitCode(t *testing.T) {
	tests := []struct {
		name   string
		script string
		code   int
	}{
		{"success", "exit 0", 0},
		{"failure", "exit 42", 42},
		{"killed by a signal", "kill -TERM $$", 128 + int(syscall.SIGTERM)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t)
			job, err := start(m, "", "", "sh", "-c", "echo out; echo err >&2; "+tt.script)
			require.NoError(t, err)
			assert.Equal(t, "test", job.Type, "the job has its runtime's type")
			assert.Regexp(t, `^[a-z]+-[a-z]+-[0-9a-f]{4}$`, job.JID)
			job = waitStatus(t, m, job.JID, store.JobHalted)
			require.NotNil(t, job.ExitCode)
			assert.Equal(t, tt.code, *job.ExitCode)
			assert.Equal(t, filepath.Join(m.logDir, job.JID+".log"), job.Log)
		})
	}
}

func TestStartBadInput(t *testing.T) {
	m := newManager(t)
	_, err := start(m, "", "", "/nonexistent/program")
	assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	assert.ErrorContains(t, err, "cannot start /nonexistent/program")
	_, err = start(m, "../escape", "", "true")
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	_, err = m.Start(context.Background(), Command{Type: "test", Cmd: exec.Command("true")})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, "a job needs its JID")
	list, err := m.store.ListJobs(context.Background())
	require.NoError(t, err)
	assert.Empty(t, list, "no job recorded")
	entries, err := filepath.Glob(filepath.Join(m.logDir, "*.stdin"))
	require.NoError(t, err)
	assert.Empty(t, entries, "no stdin FIFO left behind")

	_, err = start(m, "taken", "", "sleep", "5")
	require.NoError(t, err)
	_, err = start(m, "taken", "", "true")
	assert.ErrorIs(t, err, errdefs.ErrAlreadyExists)
	_, err = m.Signal(context.Background(), "taken", syscall.SIGKILL)
	require.NoError(t, err)
	waitStatus(t, m, "taken", store.JobHalted)
	_, err = m.Signal(context.Background(), "taken", syscall.SIGKILL)
	assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition, "a dead job cannot be signalled")
}

func TestAdoptAndReconcile(t *testing.T) {
	m := newManager(t)
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	job, err := m.Adopt(context.Background(), "process", "adopted", cmd.Process.Pid, nil, "")
	require.NoError(t, err)
	assert.Equal(t, store.JobRunning, job.Status)
	assert.True(t, Running(job))

	// A job recorded as running whose process is gone is halted by Reconcile, exit code unknown.
	require.NoError(t, m.store.CreateJob(context.Background(), store.Job{JID: "ghost", Type: "process", PID: 1 << 22, Status: store.JobRunning}))
	require.NoError(t, m.Reconcile(context.Background()))
	ghost := waitStatus(t, m, "ghost", store.JobHalted)
	assert.Nil(t, ghost.ExitCode)

	require.NoError(t, cmd.Process.Kill())
	<-done
	adopted := waitStatus(t, m, "adopted", store.JobHalted)
	assert.Nil(t, adopted.ExitCode, "not our child: the exit code cannot be known")
}

func TestLock(t *testing.T) {
	m := newManager(t)
	unlock, err := m.Lock("job:a", "job a")
	require.NoError(t, err)
	_, err = m.Lock("job:a", "job a")
	assert.ErrorIs(t, err, errdefs.ErrConflict)
	assert.ErrorContains(t, err, "job a is busy")
	other, err := m.Lock("job:b", "job b")
	require.NoError(t, err, "other jobs are not blocked")
	other()
	unlock()
	again, err := m.Lock("job:a", "job a")
	require.NoError(t, err)
	again()
}

func TestWriteStdin(t *testing.T) {
	m := newManager(t)
	out := filepath.Join(t.TempDir(), "out")
	job, err := start(m, "reader", out, "sh", "-c", "read line; echo got $line; exit 5")
	require.NoError(t, err)
	require.NoError(t, m.WriteStdin(context.Background(), job.JID, []byte("hello\n")))
	job = waitStatus(t, m, job.JID, store.JobHalted)
	require.NotNil(t, job.ExitCode)
	assert.Equal(t, 5, *job.ExitCode)
	assert.ErrorIs(t, m.WriteStdin(context.Background(), job.JID, []byte("x")), errdefs.ErrFailedPrecondition)
}

func TestValidateJID(t *testing.T) {
	tests := []struct {
		jid string
		msg string // "" when valid
	}{
		{jid: "brave-otter-3f2a"},
		{jid: "a"},
		{jid: "A.b_c-9"},
		{jid: strings.Repeat("j", MaxJIDLen)},
		{jid: "", msg: "empty job ID"},
		{jid: strings.Repeat("j", MaxJIDLen+1), msg: "65 bytes is too long"},
		{jid: strings.Repeat("j", 1<<20), msg: "1048576 bytes is too long"},
		{jid: ".hidden", msg: `".hidden"`},
		{jid: "../escape", msg: `"../escape"`},
		{jid: "a/b", msg: `"a/b"`},
		{jid: "a b", msg: `"a b"`},
		{jid: "a\x00b", msg: `"a\x00b"`},
		{jid: "é", msg: `"é"`},
	}
	for _, tt := range tests {
		t.Run(tt.jid[:min(len(tt.jid), 20)], func(t *testing.T) {
			err := ValidateJID(tt.jid)
			if tt.msg == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
			assert.ErrorContains(t, err, tt.msg)
			assert.Less(t, len(err.Error()), 200, "the message does not echo a huge ID")
		})
	}
}

// TestAdoptWaiting: the exit code wait returns is the job's; a failed wait leaves it unknown; a
// workload that ended before it was recorded is still recorded, then halted.
func TestAdoptWaiting(t *testing.T) {
	tests := []struct {
		name  string
		alive bool
		code  int
		err   error
		want  *int
	}{
		{name: "exit code known", alive: true, code: 3, want: ptr(3)},
		{name: "killed", alive: true, code: 137, want: ptr(137)},
		{name: "wait failed", alive: true, err: errors.New("containerd went away")},
		{name: "ended before it was recorded", code: 0, want: ptr(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t)
			pid := 1 << 22 // no such process
			release := make(chan struct{})
			if tt.alive {
				cmd := exec.Command("sleep", "30")
				require.NoError(t, cmd.Start())
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				pid = cmd.Process.Pid
			}
			job, err := m.AdoptWaiting(context.Background(), "runc", "w", pid, nil, "", func() (int, error) {
				<-release
				return tt.code, tt.err
			})
			require.NoError(t, err)
			assert.Equal(t, store.JobRunning, job.Status)
			assert.Equal(t, pid, job.PID)
			close(release)
			halted := waitStatus(t, m, "w", store.JobHalted)
			assert.Equal(t, tt.want, halted.ExitCode)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestRestoredAsNew: a restored workload recorded as a new job halts with the exit code its
// supervisor's wait returns; without one, a workload that is not the daemon's child halts with
// its exit code unknown; a JID taken is refused.
func TestRestoredAsNew(t *testing.T) {
	tests := []struct {
		name string
		wait func() (int, error)
		want *int
	}{
		{name: "supervised", wait: func() (int, error) { return 42, nil }, want: ptr(42)},
		{name: "supervisor failed", wait: func() (int, error) { return 0, errors.New("runtime went away") }},
		{name: "not supervised, foreign", wait: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t)
			ended := make(chan struct{})
			wait := tt.wait
			if wait != nil {
				inner := wait
				wait = func() (int, error) { <-ended; return inner() }
			}
			pid := 1 << 22 // no such process: a foreign workload that has ended
			job, err := m.RestoredAsNew(context.Background(), "test", "r1", pid, nil, "/tmp/r1.log", wait)
			require.NoError(t, err)
			assert.Equal(t, store.JobRunning, job.Status)
			assert.Equal(t, "/tmp/r1.log", job.Log)
			close(ended)
			halted := waitStatus(t, m, "r1", store.JobHalted)
			assert.Equal(t, tt.want, halted.ExitCode)
			_, err = m.RestoredAsNew(context.Background(), "test", "r1", pid, nil, "", nil)
			require.ErrorContains(t, err, "already exists")
		})
	}
}
