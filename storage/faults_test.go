package storage

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
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

// TestS3UploadServerGoesAway: the server crashes (SIGKILL) or stops responding (SIGSTOP: its
// connections stay open and take no data, which TCP alone would wait on for many minutes) in the
// middle of an upload. The upload fails soon with a clear error, and once the server is back the
// unfinished multipart upload it holds is aborted (minio-go's own abort could not reach it).
func TestS3UploadServerGoesAway(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault, back func(*storagetest.Server)
		stall       time.Duration
		want        string
		within      time.Duration
	}{
		{
			name: "killed", fault: (*storagetest.Server).Kill, back: (*storagetest.Server).Restart, stall: stallTimeout,
			want: "lost the connection to S3 endpoint %s during upload to %s: ", within: 10 * time.Second,
		},
		{
			name: "frozen", fault: (*storagetest.Server).Freeze, back: (*storagetest.Server).Thaw, stall: 2 * time.Second,
			want: "S3 endpoint %s stopped responding during upload to %s: it took no data and sent no answer for 2s", within: 7 * time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := storagetest.Start(t)
			c, err := New(serverConfig(srv))
			require.NoError(t, err)
			c.stall = tc.stall
			loc := Location{Bucket: srv.Bucket, Key: "faults/" + tc.name + ".tar.zst"}
			g, at := faultAfter(40*mib, func() { tc.fault(srv) })
			t.Cleanup(srv.Thaw) // a frozen server would not stop

			_, err = c.Upload(ctxTimeout(t, 5*time.Minute), loc, g)
			took := time.Since(*at)
			require.Error(t, err)
			t.Logf("failed %v after the fault: %v", took.Round(time.Millisecond), err)
			assert.ErrorIs(t, err, ErrUnreachable)
			assert.Contains(t, err.Error(), fmt.Sprintf(tc.want, srv.Endpoint, loc))
			assert.Contains(t, err.Error(), "; cedana aborts the unfinished multipart upload when the server is back (trying for 10m0s)")
			assert.Less(t, took, tc.within, "failed in bounded time")

			tc.back(srv)
			requireNothingLeftEventually(t, c, loc)
		})
	}
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
