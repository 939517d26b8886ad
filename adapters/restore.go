package adapters

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
)

// TimeRestore measures the whole restore into resp.Stats.Total.
func TimeRestore(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		defer timeTotal(&resp.Stats)()
		return next(ctx, env, st, req, resp)
	}
}

// ValidateRestoreRequest requires a checkpoint path (a local path or a valid s3:// URL) and fills
// empty option and detail messages. It looks at nothing but the request; LocateCheckpoint, next,
// checks that a local checkpoint exists.
func ValidateRestoreRequest(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		if req.Path == "" {
			return errs.Invalid("no checkpoint to restore: pass --path <checkpoint directory>")
		}
		if strings.ContainsRune(req.Path, 0) {
			return errs.Invalid("checkpoint path %q contains a NUL byte", req.Path)
		}
		if _, _, err := storage.ParseURL(req.Path); err != nil {
			return errs.Invalid("%w", err)
		}
		OrNew(&req.Criu)
		OrNew(&req.Details)
		return next(ctx, env, st, req, resp)
	}
}

// LocateCheckpoint makes a local checkpoint path absolute and requires an existing checkpoint
// directory or archive there; an s3:// URL passes as it is.
func LocateCheckpoint(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		if storage.IsURL(req.Path) || st.Receive != nil {
			return next(ctx, env, st, req, resp)
		}
		path, err := filepath.Abs(req.Path)
		if err != nil {
			return errs.Invalid("checkpoint path %q: %w", req.Path, err)
		}
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return errs.NotFound("checkpoint %s does not exist", path)
		case err != nil:
			return errs.Precondition("cannot read checkpoint %s: %w", path, unwrapPath(err))
		case !info.IsDir() && !info.Mode().IsRegular():
			return errs.Invalid("%s is neither a checkpoint directory nor a checkpoint archive", path)
		}
		req.Path = path
		return next(ctx, env, st, req, resp)
	}
}

// ReadCheckpointMetadata loads checkpoint.json from the images (st.ImageDir, or else req.Path)
// into resp.Checkpoint, takes the runtime type from it when the request has none (and refuses a
// different one), and adds the options the dump used to those of the request.
func ReadCheckpointMetadata(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		if st.ImageDir == "" {
			st.ImageDir = req.Path
		}
		ck, err := checkpoint.Read(st.ImageDir)
		if err != nil {
			if errors.Is(err, checkpoint.ErrNotCheckpoint) {
				return errs.Invalid("%w", err)
			}
			return err
		}
		switch {
		case req.Type == "":
			req.Type = ck.Type
		case req.Type != ck.Type:
			return errs.Invalid("checkpoint %s was made by the %s runtime, not %s: restore it with `cedana restore %s`", req.Path, ck.Type, req.Type, ck.Type)
		}
		if req.Criu == nil {
			req.Criu = &daemonv1.CriuOptions{}
		}
		mergeRestoreOptions(req.Criu, ck.Options)
		resp.Checkpoint = ck
		if st.Checked != nil {
			if err := st.Checked(ck, &st); err != nil {
				return err
			}
		}
		return next(ctx, env, st, req, resp)
	}
}

// mergeRestoreOptions turns on in into the options the dump recorded, which the restore needs too.
func mergeRestoreOptions(into, dumped *daemonv1.CriuOptions) {
	if dumped == nil {
		return
	}
	into.TcpEstablished = into.TcpEstablished || dumped.TcpEstablished
	into.FileLocks = into.FileLocks || dumped.FileLocks
	into.ShellJob = into.ShellJob || dumped.ShellJob
	for _, ext := range dumped.External {
		if !slices.Contains(into.External, ext) {
			into.External = append(into.External, ext)
		}
	}
}
