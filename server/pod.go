package server

import (
	"context"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// PrepareRestore makes one container's entry of a pod checkpoint available as local images.
func (s *service) PrepareRestore(context.Context, *daemonv1.PrepareRestoreRequest) (*daemonv1.PrepareRestoreResponse, error) {
	return nil, errs.Unimplemented("pod checkpoints are not implemented yet")
}
