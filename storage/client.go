package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/containerd/errdefs"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	// uploadPartSize is the size of each part of a multipart upload. With parts of 16 MiB and
	// S3's limit of 10,000 parts, objects of up to 156 GiB can be uploaded.
	uploadPartSize = 16 << 20
	// uploadThreads is how many parts are uploaded at once; the upload buffers
	// uploadThreads*uploadPartSize bytes of memory.
	uploadThreads = 4
	// cleanupTimeout bounds the removal of what a failed upload left on the server.
	cleanupTimeout = 30 * time.Second
	// maxRetries is how many times a request is tried when the server cannot be reached or
	// answers with a retryable error (minio-go's default, 10, makes an upload to a server that
	// died take 15-20 s to fail; 3 take 2-4 s).
	maxRetries = 3
	// dialTimeout bounds connecting to the server (minio-go's default is 30 s, per try).
	dialTimeout = 10 * time.Second
)

// Client reads and writes objects of one S3-compatible endpoint. It is safe for concurrent use.
type Client struct {
	mc        *minio.Client
	endpoint  string // host[:port], for messages
	insecure  bool
	anonymous bool
	stall     time.Duration // stallTimeout, shorter in tests
	abortFor  time.Duration // abortRetryFor
}

// New returns a client for cfg. It does not contact the server; use Check for that.
func New(cfg Config) (*Client, error) {
	endpoint, insecure := splitEndpoint(cfg.Endpoint, cfg.Insecure)
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if cfg.AccessKey != "" && cfg.SecretKey == "" {
		return nil, fmt.Errorf("S3 access key %s has no secret key; set AWS_SECRET_ACCESS_KEY or storage.s3.secret_key", cfg.AccessKey)
	}
	if cfg.AccessKey == "" && cfg.SecretKey != "" {
		return nil, errors.New("S3 secret key is set without an access key; set AWS_ACCESS_KEY_ID or storage.s3.access_key")
	}
	transport, err := minio.DefaultTransport(!insecure)
	if err != nil {
		return nil, fmt.Errorf("set up the S3 HTTP transport: %w", err)
	}
	transport.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	mc, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       !insecure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    recordingTransport{base: transport},
		MaxRetries:   maxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("invalid S3 endpoint %q: %w; check storage.s3.endpoint (host[:port] or an http(s):// URL)", cfg.Endpoint, err)
	}
	return &Client{
		mc: mc, endpoint: endpoint, insecure: insecure, anonymous: cfg.AccessKey == "",
		stall: stallTimeout, abortFor: abortRetryFor,
	}, nil
}

// Endpoint returns the host[:port] the client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// Check verifies that the endpoint answers, the credentials are accepted and bucket exists.
// Its errors wrap ErrUnreachable, ErrCredentials or ErrBucketNotFound.
func (c *Client) Check(ctx context.Context, bucket string) error {
	loc := Location{Bucket: bucket}
	ctx, rec := withRecorder(ctx)
	ok, err := c.mc.BucketExists(ctx, bucket)
	if err == nil && ok {
		return nil
	}
	var headErr error
	if err != nil {
		headErr = c.classify(ctx, rec, "check", loc, err)
		if !errors.Is(headErr, ErrCredentials) {
			return headErr
		}
	}
	// The answer to a HEAD request has no body, hence no error code: some servers answer 404
	// to an unknown access key, and 403 can mean a bad signature or a missing permission.
	// A listing request gets the server's precise error.
	if err := c.probeBucket(ctx, bucket); err != nil {
		return c.classify(ctx, rec, "check", loc, err)
	}
	// The listing worked, so the bucket exists and the credentials are good, whatever the
	// HEAD request said.
	return nil
}

// probeBucket lists at most one key of bucket and returns the error of that request.
func (c *Client) probeBucket(ctx context.Context, bucket string) error {
	for obj := range c.mc.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		return obj.Err
	}
	return nil
}

// notFound returns the error for an object missing at loc, unless the reason is that the
// bucket is missing (which a GET or HEAD of the object does not always tell apart) or the
// credentials are wrong.
func (c *Client) notFound(ctx context.Context, loc Location, err error) error {
	if cerr := c.Check(ctx, loc.Bucket); cerr != nil && !errors.Is(cerr, ErrUnreachable) && !isContextErr(cerr) {
		return cerr
	}
	return err
}

func (c *Client) bucketMissing(bucket string, cause error) error {
	return newError(ErrBucketNotFound, cause, "bucket %s does not exist on %s; create it or fix the s3:// URL",
		bucket, c.endpoint)
}

// Upload streams r to the object at loc and returns the number of bytes uploaded. The size
// need not be known: r is read in parts of 16 MiB into 4 buffers (64 MiB of memory) that are
// uploaded in parallel with a multipart upload, so the object is never staged whole on disk
// or in memory; objects can be up to 156 GiB (10,000 parts). An existing object at loc is
// replaced when the upload completes.
//
// On failure, including an error from r and cancellation of ctx, no new object is left at
// loc: the multipart upload is aborted (its parts deleted), as are other unfinished uploads
// to the same key, and an object that appeared or changed at loc during the call is removed
// (an object that was there before is kept). When the server went away (it crashed or
// stopped responding), the abort is retried in the background for up to 10 minutes, so
// that the parts it holds are deleted once it is back; the error says so. ctx is checked
// between reads of r, but a Read that blocks is not interrupted; a producer feeding r
// through an io.Pipe should watch ctx itself.
//
// An upload whose requests make no progress for a minute (the server takes no data and
// sends no answer) fails with an error wrapping ErrUnreachable; waiting for r does not
// count.
func (c *Client) Upload(ctx context.Context, loc Location, r io.Reader) (int64, error) {
	if loc.Key == "" {
		return 0, fmt.Errorf("cannot upload to %s: the location has no object key", loc)
	}
	ctx, rec := withRecorder(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer c.watchStall(rec, cancel)()

	// Remember what is at loc now, so that a failed upload removes only what it created. This
	// also fails fast, before r is consumed, when the endpoint or the credentials are wrong.
	prior, err := c.stat(ctx, rec, loc)
	switch {
	case err == nil:
	case errdefs.IsNotFound(err):
		prior = &minio.ObjectInfo{}
	case errors.Is(err, ErrCredentials):
		// Some policies allow writing but not reading; try the upload, without removal of
		// objects on failure since the state before it is unknown.
		prior = nil
	default:
		return 0, err
	}

	info, err := c.mc.PutObject(ctx, loc.Bucket, loc.Key, &contextReader{ctx: ctx, r: r}, -1, minio.PutObjectOptions{
		ContentType:           "application/octet-stream",
		PartSize:              uploadPartSize,
		NumThreads:            uploadThreads,
		ConcurrentStreamParts: true,
	})
	if err != nil {
		var stall *stallError
		stalled := errors.As(context.Cause(ctx), &stall)
		cleaned := false
		if rec.answered() && !stalled {
			cleaned = c.cleanupFailedUpload(ctx, loc, prior)
		}
		err = c.classify(ctx, rec, "upload to", loc, err)
		if id := rec.upload(); id != "" && !cleaned {
			go c.abortLater(loc, id)
			err = fmt.Errorf("%w; cedana aborts the unfinished multipart upload when the server is back (trying for %v)", err, c.abortFor)
		}
		return 0, err
	}
	return info.Size, nil
}

// cleanupFailedUpload aborts the multipart uploads of loc.Key that are still open and removes
// an object that appeared at loc (or changed) since prior was taken (nil: unknown, keep it).
// minio-go already aborts its own upload on failure; this catches an abort that failed and a
// completion whose answer was lost. It reports whether no unfinished upload of loc.Key is
// left: the listing worked and every abort too.
func (c *Client) cleanupFailedUpload(ctx context.Context, loc Location, prior *minio.ObjectInfo) (clean bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	ctx, _ = withRecorder(ctx) // not the failed call's, which may have given up
	core := minio.Core{Client: c.mc}
	clean = true
	for up := range c.mc.ListIncompleteUploads(ctx, loc.Bucket, loc.Key, false) {
		if up.Err != nil {
			clean = false
			break
		}
		if up.Key == loc.Key {
			if err := core.AbortMultipartUpload(ctx, loc.Bucket, loc.Key, up.UploadID); err != nil {
				clean = false
			}
		}
	}
	if prior == nil {
		return clean
	}
	now, err := c.mc.StatObject(ctx, loc.Bucket, loc.Key, minio.StatObjectOptions{})
	if err != nil {
		return clean
	}
	if prior.ETag == "" || now.ETag != prior.ETag {
		_ = c.mc.RemoveObject(ctx, loc.Bucket, loc.Key, minio.RemoveObjectOptions{})
	}
	return clean
}

// contextReader fails reads once ctx is done, so that an upload stops consuming its source.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (cr *contextReader) Read(p []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, err
	}
	return cr.r.Read(p)
}

// Open returns a reader of the object at loc and its size in bytes. The object is streamed
// from the server as it is read; ctx must stay live until the reader is closed. A missing
// object yields an error wrapping errdefs.ErrNotFound ("no checkpoint at s3://...").
func (c *Client) Open(ctx context.Context, loc Location) (io.ReadCloser, int64, error) {
	if loc.Key == "" {
		return nil, 0, fmt.Errorf("cannot open %s: the location has no object key", loc)
	}
	ctx, rec := withRecorder(ctx)
	obj, err := c.mc.GetObject(ctx, loc.Bucket, loc.Key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, c.classify(ctx, rec, "open", loc, err)
	}
	info, err := obj.Stat() // sends the GET and reads the response headers
	if err != nil {
		obj.Close()
		err = c.classify(ctx, rec, "open", loc, err)
		if errdefs.IsNotFound(err) {
			err = c.notFound(ctx, loc, err)
		}
		return nil, 0, err
	}
	return &objectReader{obj: obj, c: c, ctx: ctx, rec: rec, loc: loc}, info.Size, nil
}

// objectReader gives read errors of an object the same clear messages as Open's.
type objectReader struct {
	obj *minio.Object
	c   *Client
	ctx context.Context
	rec *netRecorder
	loc Location
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.obj.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = o.c.classify(o.ctx, o.rec, "read", o.loc, err)
	}
	return n, err
}

func (o *objectReader) Close() error { return o.obj.Close() }

// Delete removes the object at loc. Deleting an object that does not exist is not an error.
func (c *Client) Delete(ctx context.Context, loc Location) error {
	if loc.Key == "" {
		return fmt.Errorf("cannot delete %s: the location has no object key", loc)
	}
	ctx, rec := withRecorder(ctx)
	if err := c.mc.RemoveObject(ctx, loc.Bucket, loc.Key, minio.RemoveObjectOptions{}); err != nil {
		return c.classify(ctx, rec, "delete", loc, err)
	}
	return nil
}

// Exists reports whether an object is at loc. A missing bucket is an error wrapping
// ErrBucketNotFound, not a false.
func (c *Client) Exists(ctx context.Context, loc Location) (bool, error) {
	if loc.Key == "" {
		return false, fmt.Errorf("cannot look up %s: the location has no object key", loc)
	}
	ctx, rec := withRecorder(ctx)
	_, err := c.stat(ctx, rec, loc)
	if err == nil {
		return true, nil
	}
	if !errdefs.IsNotFound(err) {
		return false, err
	}
	if err := c.notFound(ctx, loc, err); !errdefs.IsNotFound(err) {
		return false, err
	}
	return false, nil
}

// stat returns the object's metadata, with classified errors.
func (c *Client) stat(ctx context.Context, rec *netRecorder, loc Location) (*minio.ObjectInfo, error) {
	info, err := c.mc.StatObject(ctx, loc.Bucket, loc.Key, minio.StatObjectOptions{})
	if err != nil {
		return nil, c.classify(ctx, rec, "stat", loc, err)
	}
	return &info, nil
}
