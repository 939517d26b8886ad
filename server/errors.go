package server

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"github.com/containerd/errdefs"

	"github.com/cedana/cedana/errs"
)

// errShuttingDown ends the streams that a stopping daemon would otherwise wait for.
var errShuttingDown = errs.Unavailable("the cedana daemon is shutting down")

// codes maps the kinds of failure (package errs, errdefs) to Connect codes. A kind missing here,
// and an error of no kind, is internal.
var codes = map[error]connect.Code{
	errdefs.ErrInvalidArgument:    connect.CodeInvalidArgument,
	errdefs.ErrNotFound:           connect.CodeNotFound,
	errdefs.ErrAlreadyExists:      connect.CodeAlreadyExists,
	errdefs.ErrPermissionDenied:   connect.CodePermissionDenied,
	errdefs.ErrResourceExhausted:  connect.CodeResourceExhausted,
	errdefs.ErrFailedPrecondition: connect.CodeFailedPrecondition,
	errdefs.ErrNotModified:        connect.CodeFailedPrecondition,
	errdefs.ErrConflict:           connect.CodeAborted, // busy: another operation on the workload is under way
	errdefs.ErrAborted:            connect.CodeAborted,
	errdefs.ErrOutOfRange:         connect.CodeOutOfRange,
	errdefs.ErrNotImplemented:     connect.CodeUnimplemented, // a runtime this binary lacks
	errdefs.ErrUnavailable:        connect.CodeUnavailable,
	errdefs.ErrDataLoss:           connect.CodeDataLoss,
	errdefs.ErrUnauthenticated:    connect.CodeUnauthenticated,
	context.DeadlineExceeded:      connect.CodeDeadlineExceeded,
	context.Canceled:              connect.CodeCanceled,
}

// toConnect is the one place where errors become Connect errors. The kind is the outermost one
// in err's chain (errdefs.Resolve), so that a call site that gives its error a kind decides it
// even when the cause it wraps has another.
func toConnect(err error) *connect.Error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	if code, ok := codes[errdefs.Resolve(err)]; ok {
		return connect.NewError(code, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// errorInterceptor turns chain errors into Connect errors in one place, for unary and streaming
// calls, and logs failures.
type errorInterceptor struct{ log *slog.Logger }

func (e errorInterceptor) fail(procedure string, err error) error {
	cerr := toConnect(err)
	e.log.Warn("request failed", "procedure", procedure, "code", cerr.Code().String(), "error", cerr.Message())
	return cerr
}

// WrapUnary implements connect.Interceptor.
func (e errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, e.fail(req.Spec().Procedure, err)
		}
		return resp, nil
	}
}

// WrapStreamingClient implements connect.Interceptor; the daemon makes no client calls.
func (e errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (e errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return e.fail(conn.Spec().Procedure, err)
		}
		return nil
	}
}
