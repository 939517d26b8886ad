package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/internal/testutil"
)

// The load TestLoad puts on an in-process daemon, all at once.
const (
	loadUnaryCalls = 200       // concurrent unary calls of every kind
	loadDumps      = 4         // concurrent dumps of as many processes, each watched by WatchProgress
	loadDumpMiB    = 64        // memory of each dumped process
	loadAttaches   = 2         // Attach streams open on running jobs throughout
	loadRSSLimit   = 100 << 20 // the daemon's RSS once it has stopped and returned its free memory
)

// TestLoad runs a daemon in this process and, at once, makes loadUnaryCalls unary calls, dumps
// loadDumps processes of loadDumpMiB MiB each with real CRIU (each with a WatchProgress stream),
// and keeps loadAttaches Attach streams open on running jobs, which the unary calls write to.
// Everything must succeed; once the daemon has stopped no goroutine of it may be left, and the
// process's RSS must be back under loadRSSLimit.
func TestLoad(t *testing.T) {
	testutil.RequireCRIU(t)
	memhog := buildMemhog(t)
	runtime.GC()
	goroutinesBefore := runtime.NumGoroutine()
	ignore := goleak.IgnoreCurrent()
	// Reset the peak RSS (VmHWM), so that the peak reported is this test's.
	require.NoError(t, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
	start := time.Now()

	d := startTestDaemon(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Jobs that echo their stdin (cat) into their logs, each followed by an Attach stream.
	followers := make([]*follower, loadAttaches)
	catPIDs := make([]int, loadAttaches)
	for i := range followers {
		jid := fmt.Sprintf("cat-%d", i)
		run, err := d.client.Run(ctx, &daemonv1.RunRequest{Type: "process", Jid: jid, Process: &daemonv1.ProcessRun{Path: "cat"}})
		require.NoError(t, err)
		catPIDs[i] = int(run.Job.Pid)
		t.Cleanup(func() { _ = unix.Kill(catPIDs[i], unix.SIGKILL) })
		followers[i] = follow(ctx, t, d.client, jid)
	}
	// Jobs holding loadDumpMiB MiB each, written page by page before they say they are ready.
	hogs := make([]string, loadDumps)
	readyDir := t.TempDir()
	for i := range hogs {
		hogs[i] = fmt.Sprintf("hog-%d", i)
		ready := filepath.Join(readyDir, hogs[i])
		args := []string{"-mib", strconv.Itoa(loadDumpMiB), "-ready", ready}
		_, err := d.client.Run(ctx, &daemonv1.RunRequest{Type: "process", Jid: hogs[i], Process: &daemonv1.ProcessRun{Path: memhog, Args: args}})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		entries, _ := os.ReadDir(readyDir)
		return len(entries) == loadDumps
	}, 30*time.Second, 20*time.Millisecond, "the dumped processes are ready")

	// The load, released at once.
	release := make(chan struct{})
	errs := make(chan error, loadUnaryCalls+2*loadDumps)
	var wg sync.WaitGroup
	launch := func(do func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			errs <- do()
		}()
	}
	codecs := []string{"none", "lz4", "zstd", "gzip"}
	for i, jid := range hogs {
		op := "dump-" + jid
		launch(func() error { return watchProgress(ctx, d.client, op) })
		launch(func() error {
			_, err := d.client.Dump(ctx, &daemonv1.DumpRequest{Jid: jid, Compression: codecs[i%len(codecs)], OperationId: op})
			return wrapf(err, "dump %s", jid)
		})
	}
	var written [loadAttaches][]string
	for i := range loadUnaryCalls {
		call, line := unaryCall(d.client, i)
		if line != "" {
			written[i%loadAttaches] = append(written[i%loadAttaches], line)
		}
		launch(func() error { return call(ctx) })
	}
	loadStart := time.Now()
	stopSampling, goroutinesPeak := sampleGoroutines()
	close(release)
	wg.Wait()
	loadTook := time.Since(loadStart)
	close(stopSampling)
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	// The Attach streams stayed open through the load and carried every line written.
	for i, f := range followers {
		if !assert.Eventually(t, func() bool { return f.hasLines(written[i]) }, 10*time.Second, 10*time.Millisecond) {
			t.Fatalf("attach to %s received %q, want the lines %q", f.jid, f.output(), written[i])
		}
		require.False(t, f.ended(), "attach to %s ended before its job", f.jid)
	}
	// The dumps stopped their processes and were recorded.
	for _, jid := range hogs {
		requireJobStatus(ctx, t, d.client, jid, "halted")
	}
	list, err := d.client.ListCheckpoints(ctx, &daemonv1.ListCheckpointsRequest{})
	require.NoError(t, err)
	assert.Len(t, list.Checkpoints, loadDumps)
	// Killing an echoing job ends it, and its Attach stream with its exit code; the other stream
	// is still open when the daemon stops, which ends it.
	_, err = d.client.KillJob(ctx, &daemonv1.KillJobRequest{Jids: []string{"cat-0"}})
	require.NoError(t, err)
	followers[0].requireEnd(t, 128+9)

	stopStart := time.Now()
	require.NoError(t, d.stop(10*time.Second))
	stopTook := time.Since(stopStart)
	followers[1].requireCut(t)
	// The job outlives the daemon; its watcher (a goroutine waiting for the daemon's child) ends
	// when it does.
	require.NoError(t, unix.Kill(catPIDs[1], unix.SIGKILL))
	goleak.VerifyNone(t, ignore)
	goroutinesAfter := runtime.NumGoroutine()
	peak := memoryStatus(t, "VmHWM")
	runtime.GC()
	debug.FreeOSMemory()
	rss := memoryStatus(t, "VmRSS")
	t.Logf("load: %d unary calls, %d dumps of %d MiB, %d attach streams in %s; whole test %s, shutdown %s",
		loadUnaryCalls, loadDumps, loadDumpMiB, loadAttaches, loadTook.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond), stopTook.Round(time.Millisecond))
	t.Logf("goroutines: %d before, %d at the peak of the load, %d after shutdown", goroutinesBefore, <-goroutinesPeak, goroutinesAfter)
	t.Logf("RSS: peak %d MiB, %d MiB after shutdown and FreeOSMemory", peak>>20, rss>>20)
	assert.Less(t, rss, int64(loadRSSLimit), "RSS after the daemon stopped")
}

// unaryCall returns the i-th unary call of the load and, for a write to an attached job, the line
// it writes (to job cat-<i%loadAttaches>). Lookups of what does not exist must be not_found.
func unaryCall(client daemonv1connect.DaemonServiceClient, i int) (func(context.Context) error, string) {
	switch i % 10 {
	case 0:
		return func(ctx context.Context) error {
			resp, err := client.HealthCheck(ctx, &daemonv1.HealthCheckRequest{})
			if err == nil && !resp.CriuCheckOk {
				err = fmt.Errorf("criu check failed: %s", resp.CriuCheck)
			}
			return wrapf(err, "health check")
		}, ""
	case 1:
		return succeeds(client.ListJobs, &daemonv1.ListJobsRequest{}), ""
	case 2:
		return succeeds(client.ListFeatures, &daemonv1.ListFeaturesRequest{}), ""
	case 3:
		return notFound(client.GetJob, &daemonv1.GetJobRequest{Jid: fmt.Sprintf("missing-%d", i)}), ""
	case 4:
		return succeeds(client.ListCheckpoints, &daemonv1.ListCheckpointsRequest{}), ""
	case 5:
		return notFound(client.GetCheckpoint, &daemonv1.GetCheckpointRequest{Id: fmt.Sprintf("ck-missing%d", i)}), ""
	case 6:
		return succeeds(client.GetJob, &daemonv1.GetJobRequest{Jid: "cat-0"}), ""
	case 7:
		return succeeds(client.ListCheckpoints, &daemonv1.ListCheckpointsRequest{Jid: "hog-0"}), ""
	default:
		line := fmt.Sprintf("line %d", i)
		req := &daemonv1.WriteStdinRequest{Jid: fmt.Sprintf("cat-%d", i%loadAttaches), Data: []byte(line + "\n")}
		return succeeds(client.WriteStdin, req), line
	}
}

// succeeds is a call of rpc with req that must succeed.
func succeeds[Req, Resp any](rpc func(context.Context, *Req) (*Resp, error), req *Req) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := rpc(ctx, req)
		return wrapf(err, "%T %v", req, req)
	}
}

// notFound is a call of rpc with req that must fail with not_found.
func notFound[Req, Resp any](rpc func(context.Context, *Req) (*Resp, error), req *Req) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := rpc(ctx, req); connect.CodeOf(err) != connect.CodeNotFound {
			return fmt.Errorf("%T %v: want not_found, got %w", req, req, err)
		}
		return nil
	}
}

// requireJobStatus waits for job jid to have status.
func requireJobStatus(ctx context.Context, t *testing.T, client daemonv1connect.DaemonServiceClient, jid, status string) {
	t.Helper()
	var last string
	if !assert.Eventually(t, func() bool {
		resp, err := client.GetJob(ctx, &daemonv1.GetJobRequest{Jid: jid})
		if err != nil {
			last = err.Error()
			return false
		}
		last = resp.Job.Status
		return last == status
	}, 10*time.Second, 20*time.Millisecond) {
		t.Fatalf("job %s is %s, want %s", jid, last, status)
	}
}

// sampleGoroutines counts the goroutines every millisecond until stop is closed, then sends the
// highest count on peak.
func sampleGoroutines() (stop chan struct{}, peak chan int) {
	stop, peak = make(chan struct{}), make(chan int, 1)
	go func() {
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		highest := runtime.NumGoroutine()
		for {
			select {
			case <-stop:
				peak <- highest
				return
			case <-ticker.C:
				highest = max(highest, runtime.NumGoroutine())
			}
		}
	}()
	return stop, peak
}

// buildMemhog builds bench/memhog, the benchmarks' workload, into a temporary directory.
func buildMemhog(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "memhog")
	cmd := exec.Command("go", "build", "-o", bin, "../bench/memhog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build memhog: %s", out)
	return bin
}

// memoryStatus reads a memory field (VmRSS, VmHWM) of /proc/self/status, in bytes.
func memoryStatus(t *testing.T, field string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.Fail(t, "no "+field+" in /proc/self/status")
	return 0
}
