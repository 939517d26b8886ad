package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// progressDelay is how long an operation runs before its progress bar appears, so that quick ones
// show none; CEDANA_PROGRESS_DELAY (a Go duration) changes it.
const progressDelay = 500 * time.Millisecond

// callWatched calls rpc with the operation ID watchProgress chose, showing the operation's
// progress while it runs.
func callWatched[Resp any](ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient, rpc func(id string) (Resp, error)) (Resp, error) {
	id, stop := watchProgress(ctx, g, env, client)
	defer stop()
	return rpc(id)
}

// watchProgress returns an operation ID for a dump or restore and shows its progress on stderr
// until stop is called, when stderr is a terminal (and text output was asked for). Otherwise it returns ""
// and shows nothing: a pipe or a file gets no progress bar.
func watchProgress(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) (string, func()) {
	f, ok := env.Stderr.(*os.File)
	if !ok || g.Output == "json" || !term.IsTerminal(int(f.Fd())) {
		return "", func() {}
	}
	delay := progressDelay
	if d, err := time.ParseDuration(env.Getenv("CEDANA_PROGRESS_DELAY")); err == nil {
		delay = d
	}
	id := newOperationID()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		showProgress(ctx, f, client, id, delay)
	}()
	return id, func() {
		if time.Since(start) >= delay {
			// A bar is due: the watch, which may have connected after the operation ended, draws
			// where it ended from the daemon's last report.
			select {
			case <-done:
			case <-time.After(finishWait):
			}
		}
		cancel()
		<-done
	}
}

// finishWait bounds how long a finished command waits for its operation's last progress report.
const finishWait = time.Second

// showProgress renders the operation's progress as a bar of bytes (a spinner when the total is
// unknown), from the first update that comes after delay.
func showProgress(ctx context.Context, w io.Writer, client daemonv1connect.DaemonServiceClient, id string, delay time.Duration) {
	stream, err := client.WatchProgress(ctx, &daemonv1.WatchProgressRequest{OperationId: id})
	if err != nil {
		return
	}
	defer stream.Close()
	start := time.Now()
	var bar *progressbar.ProgressBar
	phase := ""
	for stream.Receive() {
		msg := stream.Msg()
		// The last report, the finished operation's, is drawn too: an operation over before the
		// watch began (a quick one, or a watch slow to connect) still shows where it ended.
		if time.Since(start) < delay || msg.Phase == "" {
			if msg.Finished {
				break
			}
			continue
		}
		if bar == nil || msg.Phase != phase {
			if bar != nil {
				_ = bar.Finish()
			}
			phase = msg.Phase
			total := msg.TotalBytes
			if total <= 0 {
				total = -1 // a spinner
			}
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(phase),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				// The finished bar stays, on a line of its own: a phase that is over by the time the
				// first update arrives still shows.
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
			)
		}
		_ = bar.Set64(msg.DoneBytes)
		if msg.Finished {
			break
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
}

func newOperationID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
