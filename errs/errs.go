// Package errs is cedana's one vocabulary of failures: the kinds of github.com/containerd/errdefs,
// with constructors that keep the kind out of the message. Every package returns errors that wrap
// at most one kind (errdefs.ErrNotFound, errdefs.ErrInvalidArgument, ...) and tests them with
// errors.Is or errdefs.IsXxx; the daemon turns the kind into a Connect code in one place.
//
//	errs.NotFound("no process with PID %d", pid) // errors.Is(err, errdefs.ErrNotFound)
//
// A deadline that ran out is context.DeadlineExceeded, as in errdefs.
package errs

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
)

// kindError is an error of a kind whose message is its own: the kind is matched, not printed.
type kindError struct {
	kind error
	err  error
}

// Error is the message, without the kind.
func (e *kindError) Error() string { return e.err.Error() }

// Unwrap returns the kind first, so that errdefs.Resolve finds it before any kind of a cause.
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// New is an error of the given kind with fmt.Errorf's message and wrapping; a kind of a
// wrapped cause is hidden behind it for errdefs.Resolve, though errors.Is still finds it.
func New(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// Invalid is a bad request, wrapping errdefs.ErrInvalidArgument.
func Invalid(format string, args ...any) error {
	return New(errdefs.ErrInvalidArgument, format, args...)
}

// NotFound is a missing workload, job or checkpoint, wrapping errdefs.ErrNotFound.
func NotFound(format string, args ...any) error { return New(errdefs.ErrNotFound, format, args...) }

// Exists is a name already taken, wrapping errdefs.ErrAlreadyExists.
func Exists(format string, args ...any) error {
	return New(errdefs.ErrAlreadyExists, format, args...)
}

// Precondition is a request that the machine's state does not allow now, wrapping
// errdefs.ErrFailedPrecondition.
func Precondition(format string, args ...any) error {
	return New(errdefs.ErrFailedPrecondition, format, args...)
}

// Denied is a request refused for permissions, wrapping errdefs.ErrPermissionDenied.
func Denied(format string, args ...any) error {
	return New(errdefs.ErrPermissionDenied, format, args...)
}

// Timeout is a bounded wait that ran out, wrapping context.DeadlineExceeded (errdefs' kind of it).
func Timeout(format string, args ...any) error {
	return New(context.DeadlineExceeded, format, args...)
}

// Busy is a request that conflicts with one under way on the same workload, wrapping
// errdefs.ErrConflict: it may succeed once the other is done.
func Busy(format string, args ...any) error { return New(errdefs.ErrConflict, format, args...) }

// Unavailable is a service that cannot answer now, wrapping errdefs.ErrUnavailable.
func Unavailable(format string, args ...any) error {
	return New(errdefs.ErrUnavailable, format, args...)
}

// Unimplemented is something this binary cannot do, wrapping errdefs.ErrNotImplemented.
func Unimplemented(format string, args ...any) error {
	return New(errdefs.ErrNotImplemented, format, args...)
}

// rewordedError is an error said in other words.
type rewordedError struct {
	msg string
	err error
}

// Error is the message in other words.
func (e *rewordedError) Error() string { return e.msg }

// Unwrap is the error reworded.
func (e *rewordedError) Unwrap() error { return e.err }

// Reword says err in other words (fmt.Sprintf's), for a caller that can say better what went
// wrong: the kind, and everything else errors.Is and errors.As find, stay err's.
func Reword(err error, format string, args ...any) error {
	return &rewordedError{msg: fmt.Sprintf(format, args...), err: err}
}

// kindNames names each kind for metrics and logs, as Connect names the code it maps to, except
// busy (errdefs.ErrConflict), which Connect calls aborted.
var kindNames = map[error]string{
	errdefs.ErrInvalidArgument:    "invalid_argument",
	errdefs.ErrNotFound:           "not_found",
	errdefs.ErrAlreadyExists:      "already_exists",
	errdefs.ErrPermissionDenied:   "permission_denied",
	errdefs.ErrResourceExhausted:  "resource_exhausted",
	errdefs.ErrFailedPrecondition: "failed_precondition",
	errdefs.ErrNotModified:        "failed_precondition",
	errdefs.ErrConflict:           "busy",
	errdefs.ErrAborted:            "aborted",
	errdefs.ErrOutOfRange:         "out_of_range",
	errdefs.ErrNotImplemented:     "unimplemented",
	errdefs.ErrUnavailable:        "unavailable",
	errdefs.ErrDataLoss:           "data_loss",
	errdefs.ErrUnauthenticated:    "unauthenticated",
	context.DeadlineExceeded:      "deadline_exceeded",
	context.Canceled:              "canceled",
}

// KindName names err's kind (the outermost, as errdefs.Resolve finds it): "invalid_argument",
// "not_found", "busy", ...; "internal" for an error of no kind, "" for nil.
func KindName(err error) string {
	if err == nil {
		return ""
	}
	if name, ok := kindNames[errdefs.Resolve(err)]; ok {
		return name
	}
	return "internal"
}
