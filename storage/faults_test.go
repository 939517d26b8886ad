package storage

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultAfter returns an endless generator that calls fault once size bytes have been read
// from it, and the time it did.
func faultAfter(size int64, fault func()) (*generator, *time.Time) {
	g := newGenerator(9, 1<<40)
	at := new(time.Time)
	g.onRead = func(total int64) {
		if total >= size && at.IsZero() {
			fault()
			*at = time.Now()
		}
	}
	return g, at
}

// requireNothingLeftEventually waits until no object and no unfinished upload is at loc.
func requireNothingLeftEventually(t *testing.T, c *Client, loc Location) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for up := range c.mc.ListIncompleteUploads(ctx, loc.Bucket, loc.Key, false) {
			if up.Err == nil {
				return false
			}
		}
		exists, err := c.Exists(ctx, loc)
		return err == nil && !exists
	}, time.Minute, 200*time.Millisecond, "an object or an unfinished upload is left at %s", loc)
	assertNothingLeft(t, c, loc)
}

// TestS3UploadServerKilled: the server crashes in the middle of an upload. The upload fails
// within seconds with a clear error, and once the server is back the unfinished multipart
// upload it held is aborted (minio-go's own abort failed: the server was down).
func TestS3UploadServerKilled(t *testing.T) {
	srv := NewTestServer(t)
	c, err := New(srv.Config)
	require.NoError(t, err)
	loc := Location{Bucket: srv.Bucket, Key: "faults/killed.tar.zst"}
	g, killed := faultAfter(40*mib, srv.Kill)

	_, err = c.Upload(ctxTimeout(t, 5*time.Minute), loc, g)
	took := time.Since(*killed)
	require.Error(t, err)
	t.Logf("failed %v after the kill: %v", took.Round(time.Millisecond), err)
	assert.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "lost the connection to S3 endpoint "+srv.Config.Endpoint+" during upload to "+loc.String())
	assert.Contains(t, err.Error(), "aborts the unfinished multipart upload when the server is back")
	assert.Less(t, took, 10*time.Second, "failed in bounded time")

	srv.Restart()
	requireNothingLeftEventually(t, c, loc)
}

// TestS3UploadServerFrozen: the server stops responding in the middle of an upload (SIGSTOP:
// its connections stay open and take no data), which TCP alone would wait on for many minutes.
// The upload gives up once nothing has moved for the stall timeout, and the unfinished upload
// is aborted once the server responds again.
func TestS3UploadServerFrozen(t *testing.T) {
	srv := NewTestServer(t)
	c, err := New(srv.Config)
	require.NoError(t, err)
	c.stall = 2 * time.Second
	loc := Location{Bucket: srv.Bucket, Key: "faults/frozen.tar.zst"}
	g, frozen := faultAfter(40*mib, srv.Freeze)
	t.Cleanup(srv.Thaw)

	_, err = c.Upload(ctxTimeout(t, 5*time.Minute), loc, g)
	took := time.Since(*frozen)
	require.Error(t, err)
	t.Logf("failed %v after the freeze: %v", took.Round(time.Millisecond), err)
	assert.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "S3 endpoint "+srv.Config.Endpoint+" stopped responding during upload to "+loc.String())
	assert.Contains(t, err.Error(), "no answer for 2s")
	assert.Contains(t, err.Error(), "aborts the unfinished multipart upload when the server is back")
	assert.GreaterOrEqual(t, took, c.stall)
	assert.Less(t, took, c.stall+5*time.Second, "failed soon after the stall timeout")

	srv.Thaw()
	requireNothingLeftEventually(t, c, loc)
}

// TestS3UploadWaitingForDataIsNoStall: an upload whose source is slow (CRIU still dumping) is
// not a stalled upload: only requests in flight without progress are.
func TestS3UploadWaitingForDataIsNoStall(t *testing.T) {
	c, bucket := testClient(t)
	// Long enough for a loaded machine to answer a part; the source pauses for longer.
	c.stall = 2 * time.Second
	loc := Location{Bucket: bucket, Key: "faults/slow-source"}
	g := newGenerator(3, 40*mib)
	paused := false
	g.onRead = func(total int64) {
		if total >= 20*mib && !paused {
			paused = true
			<-time.After(c.stall + time.Second) // the first part is uploaded meanwhile, then nothing is in flight
		}
	}
	n, err := c.Upload(ctxTimeout(t, time.Minute), loc, &smallReads{g})
	require.NoError(t, err)
	assert.EqualValues(t, 40*mib, n)
	assert.True(t, paused)
}

// smallReads reads at most 1 MiB at a time from r.
type smallReads struct{ r io.Reader }

func (s *smallReads) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), mib)])
}
