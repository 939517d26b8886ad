package server

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/features"
)

// errShuttingDown ends the streams that a stopping daemon would otherwise wait for.
var errShuttingDown = errors.New("the cedana daemon is shutting down")

// codes maps the kinds of failure to Connect codes; the first match wins.
var codes = []struct {
	kind error
	code connect.Code
}{
	{features.ErrUnavailable, connect.CodeUnimplemented},
	{adapters.ErrInvalidArgument, connect.CodeInvalidArgument},
	{adapters.ErrNotFound, connect.CodeNotFound},
	{adapters.ErrAlreadyExists, connect.CodeAlreadyExists},
	{adapters.ErrFailedPrecondition, connect.CodeFailedPrecondition},
	{adapters.ErrPermissionDenied, connect.CodePermissionDenied},
	{adapters.ErrDeadlineExceeded, connect.CodeDeadlineExceeded},
	{adapters.ErrBusy, connect.CodeAborted},
	{errShuttingDown, connect.CodeUnavailable},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
	{context.Canceled, connect.CodeCanceled},
}

// toConnect is the one place where errors become Connect errors.
func toConnect(err error) *connect.Error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	for _, c := range codes {
		if errors.Is(err, c.kind) {
			return connect.NewError(c.code, err)
		}
	}
	return connect.NewError(connect.CodeInternal, err)
}
