package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/explore"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
)

// InspectCheckpoint decodes a checkpoint's CRIU images: the catalog's checkpoint id, or the one at
// path (a directory, an archive or an s3:// object, fetched and unpacked into a temporary
// directory that is removed before answering).
func (s *service) InspectCheckpoint(ctx context.Context, req *daemonv1.InspectCheckpointRequest) (*daemonv1.InspectCheckpointResponse, error) {
	if err := validateInspectCheckpoint(req); err != nil {
		return nil, err
	}
	path := req.Path
	if req.Id != "" {
		ck, err := s.getCheckpoint(ctx, req.Id)
		if err != nil {
			return nil, err
		}
		path = ck.Path
	}
	dir, temporary, err := adapters.FetchImages(ctx, s.env, nil, path, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect checkpoint %s: %w", path, err)
	}
	if temporary {
		defer os.RemoveAll(dir)
	}
	res, err := explore.Dir(dir, req.Type)
	if err != nil {
		return nil, fmt.Errorf("inspect checkpoint %s: %w", path, err)
	}
	return &daemonv1.InspectCheckpointResponse{
		Path: path, Type: req.Type, Json: string(res.JSON),
		Truncated: res.Truncated, MaxEntries: explore.MaxEntries,
	}, nil
}

// validateInspectCheckpoint requires one of a checkpoint ID or an absolute path (or s3:// URL),
// and a known type.
func validateInspectCheckpoint(req *daemonv1.InspectCheckpointRequest) error {
	if err := noNUL(req); err != nil {
		return err
	}
	switch {
	case req.Id != "" && req.Path != "":
		return errs.Invalid("both a checkpoint ID and a path: give one of them")
	case req.Id != "":
		if err := requireCheckpointID(req.Id); err != nil {
			return err
		}
	case req.Path == "":
		return errs.Invalid("no checkpoint: give its ID (see `cedana checkpoint list`) or its path")
	default:
		_, remote, err := storage.ParseURL(req.Path)
		if err != nil {
			return errs.Invalid("checkpoint path: %w", err)
		}
		if !remote && !filepath.IsAbs(req.Path) {
			return errs.Invalid("checkpoint path %q is relative: give its absolute path or an s3:// URL", req.Path)
		}
	}
	return explore.CheckKind(req.Type)
}
