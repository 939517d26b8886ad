package server

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// TestShutdownEndsStreams: a stopping daemon ends the streams that would otherwise last as long
// as a job (Attach) or wait for an operation that will not come (WatchProgress), instead of
// waiting for them until its grace period is over; the job keeps running, and no goroutine of
// the daemon is left.
func TestShutdownEndsStreams(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	d := startTestDaemon(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := d.client.Run(ctx, &daemonv1.RunRequest{Type: "process", Jid: "sleeper", Process: &daemonv1.ProcessRun{Path: "sleep", Args: []string{"60"}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Kill(int(run.Job.Pid), unix.SIGKILL) })

	f := follow(ctx, t, d.client, "sleeper")
	watched := make(chan error, 1)
	go func() { watched <- watchProgress(ctx, d.client, "never-started") }()
	// The watch is on the connection before this call is: its handler runs.
	_, err = d.client.ListJobs(ctx, &daemonv1.ListJobsRequest{})
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, d.stop(5*time.Second))
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
	f.requireCut(t)
	select {
	case err := <-watched:
		assert.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "watch: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the progress stream did not end")
	}
	require.NoError(t, unix.Kill(int(run.Job.Pid), 0), "the job still runs")
	// The job's watcher waits for its exit, as long as the job runs; once it has exited, nothing
	// of the daemon is left.
	require.NoError(t, unix.Kill(int(run.Job.Pid), unix.SIGKILL))
	goleak.VerifyNone(t, ignore)
}
