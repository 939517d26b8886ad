package runc

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/runccli"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
)

// restoreSupervised restores the checkpoint with `runc restore` in the foreground, a child of
// the caller in a session of its own, as `runc run` runs a job (Run): runc copies the
// container's stdout and stderr to st.Supervise.Stdout (else the job's log, else /dev/null),
// passes signals on, waits for the container, deletes it once it has ended and exits with its
// exit code, which st.Supervise.Wait returns. The restore is done when runc writes its pid file
// (after CRIU has restored the container and runc recorded it running). If runc ends first, or
// ctx does, runc is killed and the container deleted.
func restoreSupervised(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
	d := req.GetDetails().GetRunc()
	out := st.Supervise.Stdout
	if out == nil && st.JobLog != "" {
		f, err := openJobLog(st.JobLog)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	dir, err := os.MkdirTemp("", "cedana-runc-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pidFile := filepath.Join(dir, "pid")
	args := append([]string{"restore", "--image-path", st.ImageDir, "--bundle", d.Bundle, "--pid-file", pidFile},
		runccli.RestoreFlags(req.Criu)...)
	lazy, lazyFlags, err := startLazy(ctx, env, st, req, resp)
	if err != nil {
		return err
	}
	args = append(args, lazyFlags...)
	start := time.Now()
	runc, err := runcshared.Invocation{Root: d.Root, CRIU: env.CRIU.Binary, Stdout: out, Args: append(args, d.Id)}.Start()
	if err != nil {
		lazy.Abort()
		return errs.Precondition("%w", err)
	}
	abort := func() {
		runc.KillAll()
		<-runc.Done()
		unmountLeft(d, st.ImageDir)
		forceDelete(ctx, d)
	}
	waitCtx, stop := lazy.Watch(ctx)
	pid, err := runc.WaitPID(waitCtx, pidFile)
	stop()
	adapters.Observe(resp.Stats, "criu_restore", start)
	if err != nil {
		abort()
		err = cmp.Or(lazy.Failed(), errs.Precondition("%w%s", err, criu.LogQuote(filepath.Join(st.ImageDir, checkpoint.RestoreLog))))
		lazy.Abort()
		return err
	}
	if err := lazy.Restored(pid); err != nil {
		abort()
		return err
	}
	st.Supervise.Wait, st.Supervise.Signal, st.Supervise.Abort = runc.Wait, runc.Signal, abort
	resp.Pid = int32(pid)
	st.Log.Info("restored runc container under runc in the foreground", "id", d.Id, "root", d.Root, "pid", pid, "bundle", d.Bundle)
	return nil
}

// forceDelete deletes container d, whatever its state, if runc has it: what a failed run or
// restore leaves.
func forceDelete(ctx context.Context, d *daemonv1.RuncDetails) {
	if runcshared.Exists(d.Root, d.Id) {
		_ = (runcshared.Invocation{Root: d.Root, Args: []string{"delete", "--force", d.Id}}).Run(context.WithoutCancel(ctx))
	}
}

// openJobLog opens a job's log to append to, creating it and its directory if need be.
func openJobLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, errs.Precondition("cannot create the log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, errs.Precondition("cannot open the job's log: %w", err)
	}
	return f, nil
}
