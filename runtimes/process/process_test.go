package process

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
)

// env is an environment whose daemon is this test.
func env() *adapters.Env { return &adapters.Env{DaemonPID: os.Getpid()} }

// state is a request's state with a logger that discards everything.
func state() adapters.State {
	return adapters.State{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// sleeper starts `sleep 30`, in its own session or not, and kills it when the test ends.
func sleeper(t *testing.T, setsid bool) int {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
		return strings.HasPrefix(string(data), "sleep\x00")
	}, 5*time.Second, time.Millisecond, "sleep did not start")
	return pid
}

// zombie returns the PID of an exited, unreaped child.
func zombie(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		return len(data) > 0 && containsState(string(data), 'Z')
	}, 5*time.Second, 10*time.Millisecond)
	return pid
}

func TestCheckDumpPID(t *testing.T) {
	tests := []struct {
		name string
		pid  func(t *testing.T) int
		kind error
		msg  string
	}{
		{"zero", func(*testing.T) int { return 0 }, errdefs.ErrInvalidArgument, "no PID"},
		{"init", func(*testing.T) int { return 1 }, errdefs.ErrInvalidArgument, "PID 1"},
		{"daemon", func(*testing.T) int { return os.Getpid() }, errdefs.ErrInvalidArgument, "daemon itself"},
		{"daemon's ancestor", func(*testing.T) int { return os.Getppid() }, errdefs.ErrInvalidArgument, "part of its tree"},
		{"missing", func(*testing.T) int { return 1 << 22 }, errdefs.ErrNotFound, "no process"},
		{"zombie", zombie, errdefs.ErrFailedPrecondition, "has exited"},
		{"live", func(t *testing.T) int { return sleeper(t, true) }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			next := func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
				called = true
				return false, nil
			}
			req := &daemonv1.DumpRequest{Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: int32(tt.pid(t))}}}
			_, err := CheckDumpPID(next)(context.Background(), env(), state(), req, &daemonv1.DumpResponse{})
			if tt.kind == nil {
				require.NoError(t, err)
				assert.True(t, called)
				return
			}
			assert.ErrorIs(t, err, tt.kind)
			assert.ErrorContains(t, err, tt.msg)
			assert.False(t, called, "refused before the dump")
		})
	}
}

func TestDescribeTree(t *testing.T) {
	tests := []struct {
		name     string
		setsid   bool
		shellJob bool
	}{
		{"own session", true, false},
		{"in our session: a shell job", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := sleeper(t, tt.setsid)
			req := &daemonv1.DumpRequest{Criu: &daemonv1.CriuOptions{}, Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: int32(pid)}}}
			resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{}}
			next := func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
				return false, nil
			}
			require.NoError(t, dumpErr(DescribeTree(next)(context.Background(), env(), state(), req, resp)))
			assert.Equal(t, int32(pid), resp.Checkpoint.Pid)
			assert.Equal(t, []int32{int32(pid)}, resp.Checkpoint.Pids)
			assert.Equal(t, []string{"sleep", "30"}, resp.Checkpoint.Cmdline)
			assert.Equal(t, tt.shellJob, req.Criu.ShellJob)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// containsState reports whether a /proc/<pid>/stat line has state st.
func containsState(stat string, st byte) bool {
	i := strings.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == st
}

// inPIDNSEnv marks the re-run of a test inside a new PID namespace.
const inPIDNSEnv = "CEDANA_TEST_IN_PIDNS"

// TestCheckDumpPIDSessionOutsideNamespace: a process whose session leader is outside our PID
// namespace (session ID 0, as under a VM's or container's init that never called setsid) is
// refused with the fix named, instead of CRIU's failure after the freeze. The test re-runs itself
// as PID 1 of a new PID namespace, where its own session ID reads 0.
func TestCheckDumpPIDSessionOutsideNamespace(t *testing.T) {
	if os.Getenv(inPIDNSEnv) == "" {
		testutil.RequireRoot(t) // for a new PID namespace
		cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0],
			"-test.run", "^TestCheckDumpPIDSessionOutsideNamespace$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inPIDNSEnv+"=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "--- PASS: TestCheckDumpPIDSessionOutsideNamespace", "%s", out)
		return
	}
	sid, err := unix.Getsid(0)
	require.NoError(t, err)
	require.Equal(t, 0, sid, "inside the new PID namespace our session leader is invisible")
	pid := sleeper(t, false)
	req := &daemonv1.DumpRequest{Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: int32(pid)}}}
	next := func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
		t.Error("the dump went on")
		return false, nil
	}
	_, err = CheckDumpPID(next)(context.Background(), env(), state(), req, &daemonv1.DumpResponse{})
	assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	assert.ErrorContains(t, err, "session ID 0")
	assert.ErrorContains(t, err, "setsid")

	// In its own session it is accepted.
	req.Details.Process.Pid = int32(sleeper(t, true))
	next = func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
		return false, nil
	}
	require.NoError(t, dumpErr(CheckDumpPID(next)(context.Background(), env(), state(), req, &daemonv1.DumpResponse{})))
}

// dumpErr is the error of a dump handler's results.
func dumpErr(_ adapters.Dumped, err error) error { return err }

func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "db"))
	require.NoError(t, err)
	m := jobs.New(st, filepath.Join(dir, "logs"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { m.Close(); st.Close() })

	_, err = Run(ctx, m, &daemonv1.RunRequest{})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	_, err = Run(ctx, m, &daemonv1.RunRequest{Process: &daemonv1.ProcessRun{Path: "/nonexistent/program"}})
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.ErrorContains(t, err, "cannot run /nonexistent/program")

	job, err := Run(ctx, m, &daemonv1.RunRequest{Jid: "j", Process: &daemonv1.ProcessRun{
		Path: "sh", Args: []string{"-c", "echo $GREETING from $(pwd)"}, Env: []string{"GREETING=hello"}, WorkingDir: dir,
	}})
	require.NoError(t, err)
	assert.Equal(t, Name, job.Type)
	assert.Equal(t, filepath.Join(dir, "logs", "j.log"), job.Log)
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(job.Log)
		return string(data) == "hello from "+dir+"\n"
	}, 10*time.Second, 10*time.Millisecond, "the program runs with its arguments, environment and directory")
}

func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	require.NoError(t, err)
	defer out.Close()
	req := &daemonv1.RunRequest{Process: &daemonv1.ProcessRun{Path: "sh", Args: []string{"-c", "echo $GREETING from $(pwd); exit 3"}, Env: []string{"GREETING=hi"}, WorkingDir: dir}}
	proc, err := RunInProcess(req, features.Stdio{Stdout: out, Stderr: out})
	require.NoError(t, err)
	state, err := proc.Wait()
	require.NoError(t, err)
	assert.Equal(t, 3, state.ExitCode())
	data, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	assert.Equal(t, "hi from "+dir+"\n", string(data))

	_, err = RunInProcess(&daemonv1.RunRequest{Process: &daemonv1.ProcessRun{Path: "/nonexistent/program"}}, features.Stdio{})
	assert.ErrorContains(t, err, "cannot run /nonexistent/program")
}

func TestJobDetails(t *testing.T) {
	details := &daemonv1.Details{}
	JobDetails(details, 4242)
	assert.Equal(t, int32(4242), details.GetProcess().GetPid(), "a job's dump dumps its current process")
}
