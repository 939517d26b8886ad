package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

const (
	// stallTimeout is how long an upload waits while its requests make no progress (the
	// server takes no data and sends no answer) before it gives up. A server that crashed
	// refuses or resets connections and fails an upload sooner; this bounds a server that hangs
	// or a network that drops everything, where TCP would wait for many minutes.
	stallTimeout = time.Minute
	// abortRetryFor bounds how long an unfinished multipart upload that could not be aborted
	// when its upload failed (the server was down) is retried in the background.
	abortRetryFor = 10 * time.Minute
	// abortRetryFirst and abortRetryLongest are the first and the longest wait between two of those
	// attempts.
	abortRetryFirst, abortRetryLongest = time.Second, 15 * time.Second
	// abortAttemptTimeout bounds one attempt.
	abortAttemptTimeout = 10 * time.Second
)

// stallError is the cause given to the context of an upload that stopped making progress.
type stallError struct{ after time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("no progress for %v", e.after)
}

// watchStall cancels ctx's call, through cancel, when its round trips (as rec sees them) have
// made no progress for c.stall, and makes its further round trips fail at once. It returns a
// function that stops watching.
func (c *Client) watchStall(rec *netRecorder, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(max(c.stall/20, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				if rec.stalledFor(now) >= c.stall {
					rec.giveUp()
					cancel(&stallError{after: c.stall})
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// abortLater aborts the multipart upload id of loc in the background, retrying with backoff
// for up to c.abortFor while the server cannot be reached: it is for an upload that failed
// because the server went away, whose parts would otherwise stay on the server once it is back.
func (c *Client) abortLater(loc Location, id string) {
	core := minio.Core{Client: c.mc}
	deadline := time.Now().Add(c.abortFor)
	wait := abortRetryFirst
	for {
		ctx, cancel := context.WithTimeout(context.Background(), abortAttemptTimeout)
		ctx, rec := withRecorder(ctx)
		err := core.AbortMultipartUpload(ctx, loc.Bucket, loc.Key, id)
		cancel()
		if err == nil || rec.answered() {
			// Aborted, or the server answered why not (NoSuchUpload: it is gone already;
			// anything else will not change by retrying).
			return
		}
		if time.Now().Add(wait).After(deadline) {
			return
		}
		<-time.After(wait) // backoff between attempts
		wait = min(2*wait, abortRetryLongest)
	}
}
