package adapters_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// freePID is a PID no process can hold: PIDs are below /proc/sys/kernel/pid_max.
func freePID(t *testing.T) int32 {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	require.NoError(t, err)
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	return int32(pidMax)
}

// startSleep starts `sleep <seconds>` as a child of the test, which must reap it.
func startSleep(t *testing.T, seconds string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", seconds)
	require.NoError(t, cmd.Start())
	return cmd
}

// killOnCleanup kills and reaps cmd when the test ends.
func killOnCleanup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

func runWaitForFreePIDs(ck *daemonv1.Checkpoint, timeout time.Duration) (*restoreCapture, *daemonv1.RestoreResponse, time.Duration, error) {
	env, st := testEnv(), testState()
	env.PIDWaitTimeout = timeout
	next := &restoreCapture{}
	resp := &daemonv1.RestoreResponse{Checkpoint: ck, Stats: &daemonv1.Stats{}}
	start := time.Now()
	err := adapters.WaitForFreePIDs(next.handle)(context.Background(), env, st, &daemonv1.RestoreRequest{}, resp)
	return next, resp, time.Since(start), err
}

func TestWaitForFreePIDsFree(t *testing.T) {
	free := freePID(t)
	tests := []struct {
		name string
		ck   *daemonv1.Checkpoint
	}{
		{name: "root PID free", ck: &daemonv1.Checkpoint{Pid: free}},
		{name: "all tree PIDs free", ck: &daemonv1.Checkpoint{Pid: free, Pids: []int32{free, free + 1}}},
		{name: "no PID recorded", ck: &daemonv1.Checkpoint{}},
		{name: "no checkpoint", ck: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, resp, took, err := runWaitForFreePIDs(tt.ck, 5*time.Second)
			require.NoError(t, err)
			assert.Equal(t, 1, next.calls)
			assert.Less(t, took, time.Second, "returns at once")
			assert.Contains(t, resp.Stats.Phases, "wait_pids")
		})
	}
}

func TestWaitForFreePIDsLiveHolder(t *testing.T) {
	cmd := startSleep(t, "30")
	killOnCleanup(t, cmd)
	pid := int32(cmd.Process.Pid)

	tests := []struct {
		name    string
		ck      *daemonv1.Checkpoint
		timeout time.Duration
		maxTook time.Duration
	}{
		{name: "root PID held, short timeout", ck: &daemonv1.Checkpoint{Pid: pid}, timeout: 200 * time.Millisecond, maxTook: time.Second},
		{name: "tree PID held", ck: &daemonv1.Checkpoint{Pid: freePID(t), Pids: []int32{freePID(t), pid}}, timeout: 200 * time.Millisecond, maxTook: time.Second},
		// A live holder will not go away by itself: the wait is capped well below a long timeout.
		{name: "long timeout capped", ck: &daemonv1.Checkpoint{Pid: pid}, timeout: time.Minute, maxTook: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, _, took, err := runWaitForFreePIDs(tt.ck, tt.timeout)
			require.Error(t, err)
			assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
			assert.Contains(t, err.Error(), strconv.Itoa(int(pid)))
			assert.Contains(t, err.Error(), "sleep", "the message names the holder")
			assert.Zero(t, next.calls)
			assert.GreaterOrEqual(t, took, min(tt.timeout, 2*time.Second))
			assert.Less(t, took, tt.maxTook)
		})
	}
}

func TestWaitForFreePIDsZombieHolder(t *testing.T) {
	cmd := startSleep(t, "0")
	killOnCleanup(t, cmd) // reaps the zombie at the end
	pid := int32(cmd.Process.Pid)
	require.Eventually(t, func() bool {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
		return err == nil && strings.Contains(string(data), ") Z ")
	}, 5*time.Second, 10*time.Millisecond, "sleep 0 becomes a zombie")

	next, _, took, err := runWaitForFreePIDs(&daemonv1.Checkpoint{Pid: pid}, 300*time.Millisecond)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "zombie")
	assert.Zero(t, next.calls)
	assert.GreaterOrEqual(t, took, 300*time.Millisecond)
	assert.Less(t, took, 2*time.Second)
}

func TestWaitForFreePIDsBecomesFree(t *testing.T) {
	cmd := startSleep(t, "0.3")
	reaped := make(chan error, 1)
	go func() { reaped <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-reaped //nolint:errcheck // killed: its exit status says nothing
	})

	next, _, took, err := runWaitForFreePIDs(&daemonv1.Checkpoint{Pid: int32(cmd.Process.Pid)}, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, next.calls)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond, "waited for the holder to exit")
	assert.Less(t, took, 3*time.Second)
}

func TestWaitForFreePIDsContextCanceled(t *testing.T) {
	cmd := startSleep(t, "30")
	killOnCleanup(t, cmd)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	env, st := testEnv(), testState()
	env.PIDWaitTimeout = time.Minute
	next := &restoreCapture{}
	resp := &daemonv1.RestoreResponse{Checkpoint: &daemonv1.Checkpoint{Pid: int32(cmd.Process.Pid)}, Stats: &daemonv1.Stats{}}
	start := time.Now()
	err := adapters.WaitForFreePIDs(next.handle)(ctx, env, st, &daemonv1.RestoreRequest{}, resp)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	assert.Zero(t, next.calls)
}
