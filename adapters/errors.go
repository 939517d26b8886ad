package adapters

import (
	"errors"
	"fmt"
)

// Kinds of failure. Every error a chain returns should wrap at most one; the daemon maps them to
// Connect codes in one place. Use the constructors below so messages are not cluttered by the kind.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
)

type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func newKind(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// Invalid is a bad request: fmt.Errorf semantics, wrapping ErrInvalidArgument.
func Invalid(format string, args ...any) error { return newKind(ErrInvalidArgument, format, args...) }

// NotFound is a missing workload or checkpoint, wrapping ErrNotFound.
func NotFound(format string, args ...any) error { return newKind(ErrNotFound, format, args...) }

// Exists is a name already taken, wrapping ErrAlreadyExists.
func Exists(format string, args ...any) error { return newKind(ErrAlreadyExists, format, args...) }

// Precondition is a request that the machine's state does not allow now, wrapping ErrFailedPrecondition.
func Precondition(format string, args ...any) error {
	return newKind(ErrFailedPrecondition, format, args...)
}

// Denied is a request refused for permissions, wrapping ErrPermissionDenied.
func Denied(format string, args ...any) error { return newKind(ErrPermissionDenied, format, args...) }

// Timeout is a bounded wait that ran out, wrapping ErrDeadlineExceeded.
func Timeout(format string, args ...any) error { return newKind(ErrDeadlineExceeded, format, args...) }

// ErrBusy is wrapped by Busy.
var ErrBusy = errors.New("busy")

// Busy is a request that conflicts with one under way on the same workload, wrapping ErrBusy.
func Busy(format string, args ...any) error { return newKind(ErrBusy, format, args...) }
