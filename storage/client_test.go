package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
)

const mib = 1 << 20

// generator produces size pseudo-random bytes without holding them; onRead, if set, sees the
// running total after each read.
type generator struct {
	rng    *rand.ChaCha8
	left   int64
	total  int64
	onRead func(total int64)
}

func newGenerator(seed byte, size int64) *generator {
	var s [32]byte
	s[0] = seed
	return &generator{rng: rand.NewChaCha8(s), left: size}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.rng.Read(p)
	g.left -= int64(n)
	g.total += int64(n)
	if g.onRead != nil {
		g.onRead(g.total)
	}
	return n, nil
}

// digest returns the sha256 and length of the generator's whole stream, computed by streaming.
func digest(t *testing.T, r io.Reader) ([]byte, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	require.NoError(t, err)
	return h.Sum(nil), n
}

// serverConfig reaches a test S3 server.
func serverConfig(srv *storagetest.Server) Config {
	return Config{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Insecure: true, PathStyle: true,
	}
}

func testClient(t *testing.T) (*Client, string) {
	t.Helper()
	srv := storagetest.Start(t)
	c, err := New(serverConfig(srv))
	require.NoError(t, err)
	return c, srv.Bucket
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func download(t *testing.T, c *Client, loc Location) ([]byte, int64) {
	t.Helper()
	rc, size, err := c.Open(ctxTimeout(t, time.Minute), loc)
	require.NoError(t, err)
	defer rc.Close()
	sum, n := digest(t, rc)
	require.Equal(t, size, n, "Open's size matches the bytes read")
	return sum, n
}

func TestS3RoundTrip(t *testing.T) {
	c, bucket := testClient(t)
	ctx := ctxTimeout(t, 2*time.Minute)
	require.NoError(t, c.Check(ctx, bucket))

	const size = 40 * mib
	wantSum, _ := digest(t, newGenerator(1, size))

	loc := Location{Bucket: bucket}.Join("ckpt/round-trip.tar.zst")
	start := time.Now()
	n, err := c.Upload(ctx, loc, newGenerator(1, size))
	require.NoError(t, err)
	assert.EqualValues(t, size, n)
	t.Logf("uploaded %d MiB in %v", size/mib, time.Since(start))

	exists, err := c.Exists(ctx, loc)
	require.NoError(t, err)
	assert.True(t, exists)

	start = time.Now()
	gotSum, gotN := download(t, c, loc)
	t.Logf("downloaded %d MiB in %v", gotN/mib, time.Since(start))
	assert.EqualValues(t, size, gotN)
	assert.Equal(t, wantSum, gotSum, "sha256 of the downloaded object")

	// Overwrite with different content, then delete.
	n, err = c.Upload(ctx, loc, strings.NewReader("second version"))
	require.NoError(t, err)
	assert.EqualValues(t, len("second version"), n)
	rc, size2, err := c.Open(ctx, loc)
	require.NoError(t, err)
	body, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, "second version", string(body))
	assert.EqualValues(t, len(body), size2)

	require.NoError(t, c.Delete(ctx, loc))
	exists, err = c.Exists(ctx, loc)
	require.NoError(t, err)
	assert.False(t, exists)
	require.NoError(t, c.Delete(ctx, loc), "deleting a missing object is not an error")
}

func TestS3UploadFromPipe(t *testing.T) {
	c, bucket := testClient(t)
	ctx := ctxTimeout(t, 2*time.Minute)

	for _, tc := range []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"small", 1000},
		{"several-parts", 35*mib + 12345},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			h := sha256.New()
			go func() {
				// Write in chunks of varying size, as a compressor would.
				g := newGenerator(2, tc.size)
				sizes := rand.New(rand.NewPCG(1, 2))
				buf := make([]byte, 3*mib)
				for {
					chunk := buf[:1+sizes.IntN(len(buf))]
					n, err := g.Read(chunk)
					if n > 0 {
						h.Write(chunk[:n])
						if _, werr := pw.Write(chunk[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						pw.Close()
						return
					}
				}
			}()
			loc := Location{Bucket: bucket, Key: "pipe/" + tc.name}
			n, err := c.Upload(ctx, loc, pr)
			require.NoError(t, err)
			assert.Equal(t, tc.size, n)
			wantSum := h.Sum(nil) // the writer is done: Upload read to EOF

			gotSum, gotN := download(t, c, loc)
			assert.Equal(t, tc.size, gotN)
			assert.Equal(t, wantSum, gotSum)
		})
	}
}

func TestS3UploadReaderError(t *testing.T) {
	c, bucket := testClient(t)
	ctx := ctxTimeout(t, time.Minute)
	loc := Location{Bucket: bucket, Key: "broken"}

	boom := errors.New("compressor failed")
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.Copy(pw, newGenerator(3, 20*mib))
		pw.CloseWithError(boom)
	}()
	_, err := c.Upload(ctx, loc, pr)
	require.Error(t, err)
	assert.ErrorIs(t, err, boom)
	assertNothingLeft(t, c, loc)
}

func TestS3OpenMissing(t *testing.T) {
	c, bucket := testClient(t)
	ctx := ctxTimeout(t, 30*time.Second)
	loc := Location{Bucket: bucket, Key: "no/such/checkpoint.tar"}

	_, _, err := c.Open(ctx, loc)
	require.Error(t, err)
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.Equal(t, "no checkpoint at s3://"+bucket+"/no/such/checkpoint.tar", err.Error())

	exists, err := c.Exists(ctx, loc)
	require.NoError(t, err)
	assert.False(t, exists)
}

func TestS3WrongSecret(t *testing.T) {
	srv := storagetest.Start(t)
	cfg := serverConfig(srv)
	cfg.SecretKey = "not-the-secret"
	c, err := New(cfg)
	require.NoError(t, err)
	ctx := ctxTimeout(t, 30*time.Second)
	loc := Location{Bucket: srv.Bucket, Key: "x"}

	check := func(what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		t.Logf("%s: %v", what, err)
		assert.ErrorIs(t, err, ErrCredentials, what)
		assert.Contains(t, err.Error(), "S3 rejected the credentials", what)
		assert.Contains(t, err.Error(), "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", what)
	}
	check("Check", c.Check(ctx, srv.Bucket))
	_, _, err = c.Open(ctx, loc)
	check("Open", err)
	_, err = c.Exists(ctx, loc)
	check("Exists", err)
	check("Delete", c.Delete(ctx, loc))

	g := newGenerator(4, mib)
	_, err = c.Upload(ctx, loc, g)
	check("Upload", err)

	// The wrong key id, too.
	cfg.AccessKey = "nobody"
	c, err = New(cfg)
	require.NoError(t, err)
	check("Check with unknown key id", c.Check(ctx, srv.Bucket))
	_, _, err = c.Open(ctx, loc)
	check("Open with unknown key id", err)
	_, err = c.Exists(ctx, loc)
	check("Exists with unknown key id", err)
	_, err = c.Upload(ctx, loc, newGenerator(4, mib))
	check("Upload with unknown key id", err)
}

func TestS3MissingBucket(t *testing.T) {
	c, _ := testClient(t)
	ctx := ctxTimeout(t, 30*time.Second)
	loc := Location{Bucket: "no-such-bucket", Key: "ckpt.tar"}

	check := func(what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		t.Logf("%s: %v", what, err)
		assert.ErrorIs(t, err, ErrBucketNotFound, what)
		assert.Contains(t, err.Error(), "bucket no-such-bucket does not exist", what)
	}
	check("Check", c.Check(ctx, loc.Bucket))
	_, _, err := c.Open(ctx, loc)
	check("Open", err)
	_, err = c.Exists(ctx, loc)
	check("Exists", err)
	_, err = c.Upload(ctx, loc, newGenerator(5, mib))
	check("Upload", err)
}

func TestS3Unreachable(t *testing.T) {
	c, err := New(Config{
		Endpoint: "127.0.0.1:1", Region: "us-east-1", AccessKey: "a", SecretKey: "b",
		Insecure: true, PathStyle: true,
	})
	require.NoError(t, err)
	loc := Location{Bucket: "bucket", Key: "ckpt.tar"}

	check := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := f(ctx)
		elapsed := time.Since(start)
		require.Error(t, err, what)
		t.Logf("%s (%v): %v", what, elapsed.Round(time.Millisecond), err)
		assert.ErrorIs(t, err, ErrUnreachable, what)
		assert.Contains(t, err.Error(), "cannot reach S3 endpoint 127.0.0.1:1: ", what)
		assert.Contains(t, err.Error(), "connection refused", what)
		assert.Contains(t, err.Error(), "check storage.s3.endpoint", what)
		assert.Less(t, elapsed, 4*time.Second, what)
	}
	check("Check", func(ctx context.Context) error { return c.Check(ctx, loc.Bucket) })
	check("Open", func(ctx context.Context) error { _, _, err := c.Open(ctx, loc); return err })
	g := newGenerator(6, mib)
	check("Upload", func(ctx context.Context) error { _, err := c.Upload(ctx, loc, g); return err })
	assert.Zero(t, g.total, "Upload did not consume its source")

	// A name that does not resolve.
	c, err = New(Config{Endpoint: "s3.invalid:9000", Insecure: true, PathStyle: true, Region: "us-east-1"})
	require.NoError(t, err)
	ctx := ctxTimeout(t, 2*time.Second)
	err = c.Check(ctx, "bucket")
	require.Error(t, err)
	t.Logf("unresolvable: %v", err)
	assert.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "cannot reach S3 endpoint s3.invalid:9000")
}

func TestS3UploadCancelled(t *testing.T) {
	c, bucket := testClient(t)

	for _, tc := range []struct {
		name     string
		cancelAt int64
		prior    string // content of an object already at the key, if any
	}{
		{name: "new-object", cancelAt: 10 * mib},
		{name: "after-a-part", cancelAt: 40 * mib},
		{name: "overwrite", cancelAt: 10 * mib, prior: "the previous checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := Location{Bucket: bucket, Key: "cancel/" + tc.name}
			if tc.prior != "" {
				_, err := c.Upload(ctxTimeout(t, time.Minute), loc, strings.NewReader(tc.prior))
				require.NoError(t, err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g := newGenerator(7, 1<<40) // "endless"
			g.onRead = func(total int64) {
				if total >= tc.cancelAt {
					cancel()
				}
			}
			start := time.Now()
			_, err := c.Upload(ctx, loc, g)
			require.Error(t, err)
			t.Logf("cancelled upload returned after %v, %d MiB read: %v", time.Since(start), g.total/mib, err)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Less(t, g.total, tc.cancelAt+2*uploadThreads*uploadPartSize, "reading stopped soon after the cancel")

			if tc.prior == "" {
				assertNothingLeft(t, c, loc)
				return
			}
			rc, _, err := c.Open(ctxTimeout(t, time.Minute), loc)
			require.NoError(t, err)
			body, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			assert.Equal(t, tc.prior, string(body), "the previous object is intact")
			assertNoIncompleteUploads(t, c, loc)
		})
	}
}

// assertNothingLeft checks that no object and no incomplete multipart upload is at loc.
func assertNothingLeft(t *testing.T, c *Client, loc Location) {
	t.Helper()
	exists, err := c.Exists(ctxTimeout(t, 30*time.Second), loc)
	require.NoError(t, err)
	assert.False(t, exists, "no object at %s", loc)
	assertNoIncompleteUploads(t, c, loc)
}

func assertNoIncompleteUploads(t *testing.T, c *Client, loc Location) {
	t.Helper()
	var open []string
	for up := range c.mc.ListIncompleteUploads(ctxTimeout(t, 30*time.Second), loc.Bucket, loc.Key, false) {
		require.NoError(t, up.Err)
		open = append(open, up.Key+" "+up.UploadID)
	}
	assert.Empty(t, open, "incomplete multipart uploads of %s", loc)
}

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &contextReader{ctx: ctx, r: bytes.NewReader([]byte("abc"))}
	buf := make([]byte, 2)
	n, err := r.Read(buf)
	assert.Equal(t, 2, n)
	require.NoError(t, err)
	cancel()
	_, err = r.Read(buf)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestS3CleanupFailedUpload covers what minio-go's own abort cannot: an unfinished upload whose
// abort failed, and an object completed just before the failure was reported.
func TestS3CleanupFailedUpload(t *testing.T) {
	c, bucket := testClient(t)
	ctx := ctxTimeout(t, time.Minute)
	core := minio.Core{Client: c.mc}

	// Left over: an open multipart upload with one part, and a completed object that did not
	// exist before the upload.
	loc := Location{Bucket: bucket, Key: "cleanup/new"}
	id, err := core.NewMultipartUpload(ctx, loc.Bucket, loc.Key, minio.PutObjectOptions{})
	require.NoError(t, err)
	_, err = core.PutObjectPart(ctx, loc.Bucket, loc.Key, id, 1, strings.NewReader("part"), 4, minio.PutObjectPartOptions{})
	require.NoError(t, err)
	_, err = c.Upload(ctx, loc, strings.NewReader("completed"))
	require.NoError(t, err)
	var open []string
	for up := range c.mc.ListIncompleteUploads(ctx, loc.Bucket, loc.Key, false) {
		require.NoError(t, up.Err)
		open = append(open, up.UploadID)
	}
	require.Equal(t, []string{id}, open, "the server lists the unfinished upload")
	cctx, cancel := context.WithCancel(ctx)
	cancel() // cleanup must work with the caller's context already cancelled
	c.cleanupFailedUpload(cctx, loc, &minio.ObjectInfo{})
	assertNothingLeft(t, c, loc)

	// An object that was there before the failed upload is kept.
	loc = Location{Bucket: bucket, Key: "cleanup/kept"}
	_, err = c.Upload(ctx, loc, strings.NewReader("previous"))
	require.NoError(t, err)
	prior, err := c.mc.StatObject(ctx, loc.Bucket, loc.Key, minio.StatObjectOptions{})
	require.NoError(t, err)
	c.cleanupFailedUpload(ctx, loc, &prior)
	exists, err := c.Exists(ctx, loc)
	require.NoError(t, err)
	assert.True(t, exists)

	// Unknown prior state (reads were refused): the object is kept too.
	c.cleanupFailedUpload(ctx, loc, nil)
	exists, err = c.Exists(ctx, loc)
	require.NoError(t, err)
	assert.True(t, exists)
}
