package sysinfo

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// child starts `sleep seconds` as a child of the test; the test reaps it with cmd.Wait.
func child(t *testing.T, seconds string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", seconds)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// zombie starts a child that exits at once and is left unreaped.
func zombie(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := child(t, "0")
	require.Eventually(t, func() bool {
		st, err := ReadStat(cmd.Process.Pid)
		return err == nil && st.State == 'Z'
	}, 5*time.Second, 5*time.Millisecond, "sleep 0 becomes a zombie")
	return cmd
}

func TestWaitExit(t *testing.T) {
	cmd := child(t, "0.2")
	start := time.Now()
	require.NoError(t, WaitExit(context.Background(), cmd.Process.Pid, StartTime(cmd.Process.Pid)))
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "waited for the exit")
	assert.Less(t, time.Since(start), 2*time.Second)

	// A zombie has exited; so has a PID that names nothing, or another process.
	z := zombie(t)
	assert.NoError(t, WaitExit(context.Background(), z.Process.Pid, 0))
	assert.NoError(t, WaitExit(context.Background(), 1<<30, 0))
	live := child(t, "30")
	assert.NoError(t, WaitExit(context.Background(), live.Process.Pid, StartTime(live.Process.Pid)+1))

	// The context ends the wait at once.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	assert.ErrorIs(t, WaitExit(ctx, live.Process.Pid, 0), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
}

func TestWaitReaped(t *testing.T) {
	z := zombie(t)
	pid := z.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, WaitReaped(ctx, pid, StartTime(pid)), context.DeadlineExceeded, "nobody reaps it")

	reaped := make(chan struct{})
	time.AfterFunc(200*time.Millisecond, func() { _ = z.Wait(); close(reaped) })
	defer func() { <-reaped }() // before the cleanup's own Wait
	start := time.Now()
	require.NoError(t, WaitReaped(context.Background(), pid, StartTime(pid)))
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, 150*time.Millisecond, "waited for the reaping")
	assert.Less(t, took, 2*time.Second)
	t.Logf("reaping seen %v after it happened", took-200*time.Millisecond)
	assert.NoError(t, WaitReaped(context.Background(), pid, 0), "a free PID")
}
