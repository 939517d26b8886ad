package errs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"

	"github.com/cedana/cedana/errs"
)

func TestConstructors(t *testing.T) {
	cause := errors.New("cause")
	tests := []struct {
		name string
		make func(format string, args ...any) error
		kind error
	}{
		{"Invalid", errs.Invalid, errdefs.ErrInvalidArgument},
		{"NotFound", errs.NotFound, errdefs.ErrNotFound},
		{"Exists", errs.Exists, errdefs.ErrAlreadyExists},
		{"Precondition", errs.Precondition, errdefs.ErrFailedPrecondition},
		{"Denied", errs.Denied, errdefs.ErrPermissionDenied},
		{"Timeout", errs.Timeout, context.DeadlineExceeded},
		{"Busy", errs.Busy, errdefs.ErrConflict},
		{"Unavailable", errs.Unavailable, errdefs.ErrUnavailable},
		{"Unimplemented", errs.Unimplemented, errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.make("thing %s: %w", "x", cause)
			assert.Equal(t, "thing x: cause", err.Error(), "the kind does not clutter the message")
			assert.ErrorIs(t, err, tt.kind)
			assert.ErrorIs(t, err, cause, "wrapped errors stay reachable")
			assert.Equal(t, tt.kind, errdefs.Resolve(fmt.Errorf("outer: %w", err)), "the kind resolves through wrapping")
			for _, other := range tests {
				if !errors.Is(other.kind, tt.kind) {
					assert.NotErrorIs(t, err, other.kind)
				}
			}
		})
	}
}

// TestOuterKindWins: a kind given to an error that wraps another kind is the one errdefs.Resolve
// finds, so that a call site decides what its failure is.
func TestOuterKindWins(t *testing.T) {
	inner := errs.NotFound("no such object")
	err := errs.Precondition("cannot use the bucket: %w", inner)
	assert.Equal(t, errdefs.ErrFailedPrecondition, errdefs.Resolve(err))
	assert.ErrorIs(t, err, errdefs.ErrNotFound, "the inner kind is still reachable")
	assert.Equal(t, errdefs.ErrNotFound, errdefs.Resolve(fmt.Errorf("context: %w", inner)))
}

func TestReword(t *testing.T) {
	inner := fmt.Errorf("job %q: %w", "x", errdefs.ErrNotFound)
	err := errs.Reword(inner, "no job %s (see `cedana ps`)", "x")
	assert.Equal(t, "no job x (see `cedana ps`)", err.Error())
	assert.ErrorIs(t, err, inner)
	assert.Equal(t, errdefs.ErrNotFound, errdefs.Resolve(err), "the kind is the reworded error's")
}

func TestKindName(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errs.Invalid("bad"), "invalid_argument"},
		{errs.NotFound("gone"), "not_found"},
		{errs.Busy("taken"), "busy"},
		{errs.Timeout("slow"), "deadline_exceeded"},
		{fmt.Errorf("wrapped: %w", errs.Unimplemented("no")), "unimplemented"},
		{errs.Precondition("outer: %w", errs.NotFound("inner")), "failed_precondition"},
		{context.Canceled, "canceled"},
		{errors.New("no kind"), "internal"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, errs.KindName(tt.err), "%v", tt.err)
	}
}
