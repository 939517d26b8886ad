// Package chain assembles the dump and restore chains: the common adapters, then the runtime's
// middleware and handler from the features, resolved when a request comes. The daemon's handlers
// and the in-process commands (--no-server) build their chains, and the Env they run in, here.
package chain

import (
	"context"
	"strings"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// DumpChecks are the adapters every dump starts with, outermost first: they look at nothing but
// the request (the daemon's fuzz targets run them alone).
func DumpChecks() adapters.Middleware[adapters.DumpHandler] {
	return adapters.Middleware[adapters.DumpHandler]{
		adapters.TimeDump,
		adapters.FillDumpDefaults,
		adapters.ValidateDumpRequest,
	}
}

// RestoreChecks are the adapters every restore starts with, outermost first: they look at
// nothing but the request.
func RestoreChecks() adapters.Middleware[adapters.RestoreHandler] {
	return adapters.Middleware[adapters.RestoreHandler]{
		adapters.TimeRestore,
		adapters.ValidateRestoreRequest,
		adapters.CheckLazy(lazyRuntime),
	}
}

// lazyRuntime refuses a lazy restore through a runtime that cannot restore lazily.
func lazyRuntime(runtime string) error {
	if features.RestoreLazy.IsAvailable(runtime) {
		return nil
	}
	if err := features.CheckKnown(runtime); err != nil {
		return errs.Invalid("--lazy: %v", err)
	}
	why := ""
	if reason := features.NotLazy(runtime); reason != "" {
		why = ": " + reason
	}
	return errs.Invalid("--lazy: the %s runtime cannot restore lazily%s (runtimes that can: %s); restore without --lazy",
		runtime, why, strings.Join(features.RestoreLazy.Names(), ", "))
}

// commonDump are the adapters every dump goes through before the runtime's own.
func commonDump() adapters.Middleware[adapters.DumpHandler] {
	return append(DumpChecks(),
		CommitImage,
		adapters.PrepareDumpDir,
		adapters.CompressCheckpoint,
		adapters.WriteDumpMetadata,
	)
}

// commonRestore are the adapters every restore goes through before the runtime's own.
func commonRestore() adapters.Middleware[adapters.RestoreHandler] {
	return append(RestoreChecks(),
		adapters.LocateCheckpoint,
		adapters.FetchCheckpoint,
		adapters.ReadCheckpointMetadata,
	)
}

// Dump resolves, now, the runtime's dump middleware and handler and wraps them in the common
// adapters. A runtime this binary lacks is an error wrapping features.ErrUnavailable.
func Dump(runtime string) (adapters.DumpHandler, error) {
	if runtime == "" {
		return nil, NoRuntime()
	}
	return build(runtime, commonDump(), features.DumpMiddleware, features.DumpHandler)
}

// NoRuntime refuses a request that names no runtime, listing the runtimes this binary has.
func NoRuntime() error {
	names := features.Declared()
	if len(names) == 0 {
		return errs.Invalid("the request names no runtime: set type (this binary has no runtime; see `cedana features`)")
	}
	return errs.Invalid("the request names no runtime: set type to one of %s", strings.Join(names, ", "))
}

// Restore is the restore chain: the common adapters, then the runtime named by the request or,
// failing that, by the checkpoint's metadata, resolved once the metadata has been read.
func Restore() adapters.RestoreHandler {
	return adapters.RestoreHandler(restoreWithRuntime).With(commonRestore()...)
}

// restoreWithRuntime runs the runtime's restore middleware and handler.
func restoreWithRuntime(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
	h, err := build(req.Type, nil, features.RestoreMiddleware, features.RestoreHandler)
	if err != nil {
		return err
	}
	if req.Lazy {
		if err := lazyRuntime(req.Type); err != nil {
			return err
		}
	}
	if st.RestoreStream.Pending() && !features.RestoreStream.IsAvailable(req.Type) {
		// This runtime's restore reads files (its own CRIU, through its own runtime).
		if err := st.RestoreStream.Extract("the " + req.Type + " runtime's restore reads image files"); err != nil {
			return errs.Invalid("checkpoint %s cannot be read: %w", req.Path, err)
		}
	}
	return h(ctx, env, st, req, resp)
}

// build wraps runtime's handler in the common adapters, then in its own middleware, if it has any.
func build[H any](runtime string, common adapters.Middleware[H],
	middleware *features.Feature[adapters.Middleware[H]], handler *features.Feature[H],
) (H, error) {
	h, err := handler.Get(runtime)
	if err != nil {
		return h, err
	}
	chain := append(adapters.Middleware[H]{}, common...)
	if m, ok := middleware.Lookup(runtime); ok {
		chain = append(chain, m...)
	}
	return adapters.Wrap(h, chain...), nil
}
