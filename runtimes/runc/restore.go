package runc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/runccli"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
)

// RestoreMiddleware is the runc runtime's part of a restore.
var RestoreMiddleware = adapters.Middleware[adapters.RestoreHandler]{ResolveRestore}

// ResolveRestore settles the ID, bundle and root of the restored container (the request's, else
// the dumped container's) and refuses, before anything runs, a bundle without config.json or
// rootfs and an ID runc already has.
func ResolveRestore(next adapters.RestoreHandler) adapters.RestoreHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		dumped := resp.GetCheckpoint().GetDetails().GetRunc()
		d := adapters.OrNew(&adapters.OrNew(&req.Details).Runc)
		d.Id = cmp.Or(d.Id, dumped.GetId())
		d.Bundle = cmp.Or(d.Bundle, dumped.GetBundle())
		d.Root = cmp.Or(d.Root, dumped.GetRoot(), DefaultRoot)
		if err := runccli.RefuseRestoreOptions(req.Criu); err != nil {
			return err
		}
		if d.Id == "" {
			return errs.Invalid("no container ID to restore under: pass --id")
		}
		if d.Bundle == "" {
			return errs.Invalid("no bundle to restore into: pass --bundle")
		}
		if !filepath.IsAbs(d.Bundle) {
			return errs.Invalid("bundle %q is not an absolute path", d.Bundle)
		}
		if _, err := readBundle(d.Bundle); err != nil {
			return err
		}
		if runcshared.Exists(d.Root, d.Id) {
			if err := freeStoppedJobContainer(ctx, req.Jid, d); err != nil {
				return err
			}
		}
		return next(ctx, env, st, req, resp)
	}
}

// freeStoppedJobContainer deletes the stopped container a job's restore finds under its ID (the
// job was killed, so runc lists it stopped) and refuses any other container in the way.
func freeStoppedJobContainer(ctx context.Context, jid string, d *daemonv1.RuncDetails) error {
	inUse := errs.Exists("runc already has a container %q under %s: delete it (`runc --root %s delete %s`) or restore with another --id",
		d.Id, d.Root, d.Root, d.Id)
	if jid == "" {
		return inUse
	}
	c, err := runcshared.Load(d.Root, d.Id)
	if err != nil || c.Status() != libcontainer.Stopped {
		return inUse
	}
	if err := (runcshared.Invocation{Root: d.Root, Args: []string{"delete", d.Id}}).Run(ctx); err != nil {
		return fmt.Errorf("delete job %s's stopped container %s: %w", jid, d.Id, err)
	}
	return nil
}

// readBundle reads a bundle's config.json and checks that its rootfs exists.
func readBundle(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.NotFound("bundle %s has no config.json: pass the --bundle directory that holds the container's config.json and rootfs", bundle)
	}
	if err != nil {
		return nil, errs.Precondition("read the bundle's config.json: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, errs.Invalid("bundle %s: config.json is not an OCI runtime spec: %w", bundle, err)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, errs.Invalid("bundle %s: config.json names no root filesystem (root.path)", bundle)
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return nil, errs.NotFound("bundle %s has no rootfs at %s: restore needs the container's root filesystem there", bundle, rootfs)
	}
	return &spec, nil
}

// RestoreWithRunc restores the checkpoint with runc and answers with the container's init PID.
// Asked to supervise (st.Supervise: a job's restore, --no-server) and unless details.runc.detach
// or a terminal, runc restores in the foreground (restoreSupervised), which reports the exit code;
// else `runc restore --detach` leaves runc owning the container as if it had restored it itself
// (a terminal container's exit code is then unknown). A job's restored container writes its output
// into the job's log again.
func RestoreWithRunc(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
	d := req.GetDetails().GetRunc()
	spec, err := readBundle(d.Bundle)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(st.ImageDir, runcshared.DescriptorsFile)); err != nil {
		return errs.Invalid("checkpoint has no %s: it was not made from a runc container", runcshared.DescriptorsFile)
	}
	terminal := spec.Process != nil && spec.Process.Terminal
	if st.Supervise != nil && !d.Detach && !terminal {
		return restoreSupervised(ctx, env, st, req, resp)
	}
	if st.JobLog == "" && req.Log != "" {
		return errs.Invalid("--out: a container restored with --detach (or with a terminal) keeps runc's stdio, /dev/null here: drop --out or --detach")
	}
	args := []string{"restore", "--detach", "--image-path", st.ImageDir, "--bundle", d.Bundle}
	var console *consoleSocket
	if terminal {
		// The container's terminal comes back with a new master, which runc sends here.
		if console, err = newConsoleSocket(cmp.Or(st.JobLog, os.DevNull)); err != nil {
			return err
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
	}
	args = append(args, runccli.RestoreFlags(req.Criu)...)
	in := runcshared.Invocation{Root: d.Root, CRIU: env.CRIU.Binary}
	if st.JobLog != "" && console == nil {
		if in.Stdout, err = logPipe(st.JobLog); err != nil {
			return err
		}
		defer in.Stdout.Close()
	}
	lazy, lazyFlags, err := startLazy(ctx, env, st, req, resp)
	if err != nil {
		return err
	}
	in.Args = append(append(args, lazyFlags...), d.Id)
	start := time.Now()
	runCtx, stop := lazy.Watch(ctx)
	err = in.Run(runCtx)
	stop()
	adapters.Observe(resp.Stats, "criu_restore", start)
	if err != nil {
		unmountLeft(d, st.ImageDir)
		forceDelete(ctx, d)
		err = cmp.Or(lazy.Failed(), errs.Precondition("%w%s", err, criu.LogQuote(filepath.Join(st.ImageDir, checkpoint.RestoreLog))))
		lazy.Abort()
		return err
	}
	if console != nil {
		if err := console.wait(ctx); err != nil {
			st.Log.Warn("restored, but the container's terminal was not received: its output is lost", "id", d.Id, "error", err)
		}
	}
	c, err := runcshared.Load(d.Root, d.Id)
	if err != nil {
		if lazy != nil { // without its PID, the tree cannot be watched: it must not run on
			forceDelete(ctx, d)
			lazy.Abort()
		}
		return fmt.Errorf("runc restored container %s but its state cannot be read: %w", d.Id, err)
	}
	resp.Pid = int32(c.PID())
	if err := lazy.Restored(c.PID()); err != nil {
		forceDelete(ctx, d)
		return err
	}
	st.Log.Info("restored runc container", "id", d.Id, "root", d.Root, "pid", c.PID(), "bundle", d.Bundle)
	return nil
}

// logPipe returns the write end of a pipe whose output is appended to the file at path until
// every writer has closed it. Container stdio must not be a host file (CRIU cannot dump a file
// from a mount outside the container), so a pipe stands between the container and its log.
func logPipe(path string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := startLogCopy(r, path); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// startLogCopy starts the log-copy helper, in its own session, reading from in and appending to
// the file at path, so that what a container writes reaches its log while the daemon restarts.
// The caller may close its copy of in.
func startLogCopy(in *os.File, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return errs.Precondition("cannot create the log directory: %w", err)
	}
	cmd, err := logCopy.Command(path)
	if err != nil {
		return err
	}
	cmd.Stdin = in
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the log copier: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
