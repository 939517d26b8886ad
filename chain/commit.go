package chain

import (
	"context"
	"strings"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// CommitImage hands a dump's image and rootfs_only to the runtime's features.DumpCommit, which
// takes them into its details, and refuses them for a runtime that cannot commit an image: before
// the checkpoint directory is made and anything of the workload is touched. A `dump job` reaches
// it with the job's runtime, so that a flag never applies to a job that cannot honour it.
func CommitImage(next adapters.DumpHandler) adapters.DumpHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
		if err := takeCommit(req); err != nil {
			return false, err
		}
		return next(ctx, env, st, req, resp)
	}
}

// takeCommit is CommitImage's work on the request alone.
func takeCommit(req *daemonv1.DumpRequest) error {
	if req.Image == "" && !req.RootfsOnly {
		return nil
	}
	if req.Image == "" {
		return errs.Invalid("--rootfs-only commits the workload's writable layer as an image: give it a name with --image REF")
	}
	commit, ok := features.DumpCommit.Lookup(req.Type)
	if !ok {
		what := req.Type + " workloads"
		if req.Jid != "" {
			what = "job " + req.Jid + " is a " + req.Type + " job, and " + req.Type + " workloads"
		}
		can := "no runtime of this binary"
		if names := features.DumpCommit.Names(); len(names) > 0 {
			can = "only " + strings.Join(names, ", ")
		}
		return errs.Invalid("%s have no image to commit (%s can: see `cedana features`): drop --image and --rootfs-only", what, can)
	}
	return commit(req)
}
