package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/minio/minio-go/v7"

	"github.com/cedana/cedana/errs"
)

// Sentinel errors; match them with errors.Is. The errors returned by Client carry a complete
// message of their own and wrap a kind (errdefs') and the underlying cause: a missing object is
// errdefs.ErrNotFound ("no checkpoint at s3://..."); the sentinels below say more, and have kinds
// of their own; any other answer of the server is errdefs.ErrFailedPrecondition.
var (
	// ErrBucketNotFound means the bucket does not exist (a failed precondition, so that a
	// missing bucket is never taken for a missing object).
	ErrBucketNotFound = errs.Precondition("bucket does not exist")
	// ErrCredentials means the server rejected the credentials or denied access (a failed
	// precondition: the daemon's configuration).
	ErrCredentials = errs.Precondition("S3 rejected the credentials")
	// ErrUnreachable means the endpoint could not be reached (DNS, connection, TLS, timeout);
	// its kind is errdefs.ErrUnavailable.
	ErrUnreachable = errs.Unavailable("cannot reach S3 endpoint")
)

// Error is the type of the errors Client returns for failed requests: a message meant for
// users, a kind (one of the sentinel errors, or an errdefs kind) and the underlying cause. (A
// call cut short by its context returns the context's error, wrapped.)
type Error struct {
	msg   string
	kind  error
	cause error
}

// Error returns the message.
func (e *Error) Error() string { return e.msg }

// Unwrap returns the kind and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var wrapped []error
	if e.kind != nil {
		wrapped = append(wrapped, e.kind)
	}
	if e.cause != nil {
		wrapped = append(wrapped, e.cause)
	}
	return wrapped
}

func newError(kind, cause error, format string, args ...any) error {
	return &Error{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// credentialCodes are the S3 error codes that mean the credentials are wrong, expired or
// not allowed to do what was asked.
var credentialCodes = map[string]bool{
	"InvalidAccessKeyId":          true,
	"SignatureDoesNotMatch":       true,
	"AccessDenied":                true,
	"InvalidToken":                true,
	"ExpiredToken":                true,
	"TokenRefreshRequired":        true,
	"InvalidSecurity":             true,
	"AccountProblem":              true,
	"AllAccessDisabled":           true,
	"MissingSecurityHeader":       true,
	"InvalidClientTokenId":        true,
	"UnrecognizedClientException": true,
	"XAdminUserNotFound":          true, // versitygw: unknown access key
}

// classify turns an error of a minio call made for op ("upload to", "open", ...) on loc into
// an *Error with an actionable message. ctx is the call's context and rec the transport
// failures seen while making it.
func (c *Client) classify(ctx context.Context, rec *netRecorder, op string, loc Location, err error) error {
	if err == nil {
		return nil
	}
	var own *Error
	if errors.As(err, &own) {
		return err
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchBucket:
		return c.bucketMissing(loc.Bucket, err)
	case resp.Code == minio.NoSuchKey || resp.Code == "NotFound":
		return newError(errdefs.ErrNotFound, err, "no checkpoint at %s", loc)
	case resp.Code == "RequestTimeTooSkewed":
		return newError(errdefs.ErrFailedPrecondition, err, "S3 endpoint %s refused the request because this machine's clock is off (%s); synchronize the clock (NTP)",
			c.endpoint, detail(resp))
	case credentialCodes[resp.Code] || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		detail := detail(resp)
		if c.anonymous {
			return newError(ErrCredentials, err,
				"S3 denied anonymous access to %s on %s (%s); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or storage.s3.access_key/secret_key)",
				loc, c.endpoint, detail)
		}
		if resp.Code == "AccessDenied" {
			return newError(ErrCredentials, err,
				"S3 rejected the credentials or denied access to %s on %s (%s); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or storage.s3.access_key/secret_key) and the key's permissions",
				loc, c.endpoint, detail)
		}
		return newError(ErrCredentials, err,
			"S3 rejected the credentials for %s (%s); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or storage.s3.access_key/secret_key)",
			c.endpoint, detail)
	case resp.Code != "" || resp.StatusCode != 0:
		return newError(errdefs.ErrFailedPrecondition, err, "%s %s failed: %s", op, loc, detail(resp))
	}

	// Not an answer from the server: a transport failure, or the context ending.
	if stalled := (*stallError)(nil); errors.As(context.Cause(ctx), &stalled) {
		return newError(ErrUnreachable, err, "S3 endpoint %s stopped responding during %s %s: it took no data and sent no answer for %v; check that the server is running and reachable",
			c.endpoint, op, loc, stalled.after)
	}
	netErr := rec.last()
	if netErr == nil && !isContextErr(err) {
		var ue *url.Error
		if errors.As(err, &ue) {
			netErr = err
		}
	}
	switch {
	case netErr != nil && !rec.answered():
		return newError(ErrUnreachable, err, "cannot reach S3 endpoint %s: %s; check storage.s3.endpoint%s",
			c.endpoint, describeNetErr(netErr), c.schemeHint(netErr))
	case netErr != nil && ctx.Err() == nil:
		return newError(ErrUnreachable, err, "lost the connection to S3 endpoint %s during %s %s: %s",
			c.endpoint, op, loc, describeNetErr(netErr))
	case errors.Is(err, context.DeadlineExceeded) && rec.attempted() && !rec.answered():
		return newError(ErrUnreachable, err,
			"cannot reach S3 endpoint %s: no answer before the deadline; check storage.s3.endpoint", c.endpoint)
	case isContextErr(err):
		return fmt.Errorf("%s %s: %w", op, loc, err)
	}
	return errs.Precondition("%s %s: %w", op, loc, err)
}

// detail formats the code and message of a server's error answer.
func detail(resp minio.ErrorResponse) string {
	switch {
	case resp.Code == "":
		return resp.Message
	case resp.Message == "" || resp.Message == resp.Code:
		return resp.Code
	}
	return resp.Code + ": " + resp.Message
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// describeNetErr strips the "Get "http://...":" decoration of a *url.Error, which repeats the
// endpoint and shows internal request URLs.
func describeNetErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	return err.Error()
}

// schemeHint suggests the likely fix when http and https are mixed up.
func (c *Client) schemeHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return " (the server speaks plain http: set storage.s3.insecure or use an http:// endpoint URL)"
	case c.insecure && (strings.Contains(msg, "malformed HTTP response") || strings.Contains(msg, "connection reset")):
		return " (if the server speaks https, unset storage.s3.insecure)"
	}
	return ""
}

// netRecorder collects what happened at the transport level during one Client call; it
// travels to the transport in the request context.
type netRecorder struct {
	mu       sync.Mutex
	err      error
	tries    int
	answers  int
	inflight int       // round trips under way
	progress time.Time // when one last started, sent request body bytes or ended
	uploadID string    // the multipart upload the call's requests named, if any
	given    bool      // the call gave up: its further requests fail at once
}

type recorderKey struct{}

// withRecorder returns ctx carrying a new recorder, which replaces any ctx carried already.
func withRecorder(ctx context.Context) (context.Context, *netRecorder) {
	rec := &netRecorder{}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

func (r *netRecorder) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if err == nil {
		r.answers++
		return
	}
	// A request cut short by the caller's context says nothing about the endpoint.
	if !isContextErr(err) {
		r.err = err
	}
}

func (r *netRecorder) last() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *netRecorder) answered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answers > 0
}

func (r *netRecorder) attempted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries > 0
}

// begin notes a round trip starting; it fails when the call has given up.
func (r *netRecorder) begin(req *http.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.given {
		return errGivenUp
	}
	r.inflight++
	r.progress = time.Now()
	if id := req.URL.Query().Get("uploadId"); id != "" {
		r.uploadID = id
	}
	return nil
}

// end notes a round trip ending.
func (r *netRecorder) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	r.progress = time.Now()
}

// sent notes request body bytes taken by the transport.
func (r *netRecorder) sent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = time.Now()
}

// stalledFor is how long round trips have been under way without progress; 0 when none is.
func (r *netRecorder) stalledFor(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight == 0 {
		return 0
	}
	return now.Sub(r.progress)
}

// giveUp makes the call's further round trips fail at once, including those minio-go makes
// after a failure with a context of its own (it aborts the multipart upload).
func (r *netRecorder) giveUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.given = true
}

// upload is the multipart upload ID the call's requests named, or "".
func (r *netRecorder) upload() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploadID
}

// errGivenUp fails the round trips of a call that gave up.
var errGivenUp = errors.New("the S3 call was given up")

// recordingTransport reports every round trip's outcome to the netRecorder of its request,
// and its progress: the start, each read of the request body, the end.
type recordingTransport struct{ base http.RoundTripper }

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, ok := req.Context().Value(recorderKey{}).(*netRecorder)
	if !ok {
		return t.base.RoundTrip(req)
	}
	if err := rec.begin(req); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
		req.Body = &progressBody{ReadCloser: req.Body, rec: rec}
	}
	resp, err := t.base.RoundTrip(req)
	rec.end()
	rec.record(err)
	return resp, err
}

// progressBody reports each read of a request body to rec.
type progressBody struct {
	io.ReadCloser
	rec *netRecorder
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.rec.sent()
	}
	return n, err
}
