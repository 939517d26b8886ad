package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/config"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	_ "github.com/cedana/cedana/runtimes/process" // the daemon's tests run and dump process jobs
)

// testDaemon is a daemon served by Run in this process, on a temporary socket, with a client.
type testDaemon struct {
	cfg       config.Config
	client    daemonv1connect.DaemonServiceClient
	http      *http.Client
	transport *http.Transport
	cancel    context.CancelFunc
	done      chan error
}

// testConfig is a configuration whose socket, database, checkpoints and job logs are in a
// temporary directory.
func testConfig(t *testing.T) config.Config {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Address = filepath.Join(dir, "cedana.sock")
	cfg.Checkpoint.Dir = filepath.Join(dir, "ck")
	cfg.DB.Path = filepath.Join(dir, "cedana.db")
	cfg.Jobs.LogDir = filepath.Join(dir, "logs")
	return cfg
}

// startTestDaemon runs the daemon with cfg until stop (or the test's end) and connects a client
// to it over unencrypted HTTP/2.
func startTestDaemon(t *testing.T, cfg config.Config) *testDaemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &testDaemon{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	d.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", cfg.Address)
		},
		Protocols: new(http.Protocols),
	}
	d.transport.Protocols.SetUnencryptedHTTP2(true)
	d.http = &http.Client{Transport: d.transport}
	d.client = daemonv1connect.NewDaemonServiceClient(d.http, "http://localhost", connect.WithGRPC())

	go func() { d.done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), StartOptions{}) }()
	t.Cleanup(func() {
		if err := d.stop(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	require.Eventually(t, func() bool {
		conn, err := net.Dial("unix", cfg.Address)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	return d
}

// stop ends the daemon as SIGTERM does and waits, at most limit, for Run to return; it returns
// Run's error. Stopping again returns nil.
func (d *testDaemon) stop(limit time.Duration) error {
	d.cancel()
	d.transport.CloseIdleConnections()
	select {
	case err, ok := <-d.done:
		if ok {
			close(d.done)
		}
		return err
	case <-time.After(limit):
		return errors.New("the daemon did not stop in time")
	}
}

// wrapf adds what was done to err; nil stays nil.
func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// watchProgress follows operation op until it is reported finished.
func watchProgress(ctx context.Context, client daemonv1connect.DaemonServiceClient, op string) error {
	stream, err := client.WatchProgress(ctx, &daemonv1.WatchProgressRequest{OperationId: op})
	if err != nil {
		return wrapf(err, "watch %s", op)
	}
	defer stream.Close()
	for stream.Receive() {
		if stream.Msg().Finished {
			return nil
		}
	}
	if err := stream.Err(); err != nil {
		return wrapf(err, "watch %s", op)
	}
	return fmt.Errorf("watch %s: the stream ended before the operation", op)
}

// follower follows a job with Attach and keeps what it receives.
type follower struct {
	jid  string
	done chan error

	mu   sync.Mutex
	out  bytes.Buffer
	last *daemonv1.AttachResponse // the message that said the job ended
}

// follow attaches to job jid and returns once the daemon has answered.
func follow(ctx context.Context, t *testing.T, client daemonv1connect.DaemonServiceClient, jid string) *follower {
	t.Helper()
	stream, err := client.Attach(ctx, &daemonv1.AttachRequest{Jid: jid, FromStart: true})
	require.NoError(t, err)
	f := &follower{jid: jid, done: make(chan error, 1)}
	attached := make(chan struct{})
	go func() {
		defer stream.Close()
		first := true
		for stream.Receive() {
			msg := stream.Msg()
			f.mu.Lock()
			f.out.Write(msg.Output)
			if msg.Ended {
				f.last = msg
			}
			f.mu.Unlock()
			if first {
				close(attached)
				first = false
			}
		}
		if first {
			close(attached)
		}
		f.done <- stream.Err()
	}()
	select {
	case <-attached:
	case <-ctx.Done():
		t.Fatalf("attach to %s: %v", jid, ctx.Err())
	}
	require.False(t, f.ended(), "attach to %s", jid)
	return f
}

func (f *follower) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

func (f *follower) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last != nil
}

// hasLines reports whether the output is exactly lines, in any order.
func (f *follower) hasLines(lines []string) bool {
	var got []string
	sc := bufio.NewScanner(strings.NewReader(f.output()))
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(lines))
	return slices.Equal(got, want)
}

// requireEnd requires the stream to end cleanly with the job's exit code.
func (f *follower) requireEnd(t *testing.T, code int32) {
	t.Helper()
	select {
	case err := <-f.done:
		require.NoError(t, err, "attach to %s", f.jid)
	case <-time.After(10 * time.Second):
		t.Fatalf("attach to %s did not end with its job", f.jid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotNil(t, f.last, "attach to %s ended without the job's end", f.jid)
	require.NotNil(t, f.last.ExitCode, "attach to %s: %s", f.jid, f.last.Detail)
	require.Equal(t, code, *f.last.ExitCode)
}

// requireCut requires the stream to have been ended by the daemon's shutdown, before the job.
func (f *follower) requireCut(t *testing.T) {
	t.Helper()
	select {
	case err := <-f.done:
		require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err), "attach to %s: %v", f.jid, err)
		require.ErrorContains(t, err, "shutting down")
	case <-time.After(10 * time.Second):
		t.Fatalf("attach to %s did not end with the daemon", f.jid)
	}
	require.False(t, f.ended(), "attach to %s: the job did not end", f.jid)
}
