package runc

import (
	"cmp"
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
	"github.com/cedana/cedana/store"
)

// Run starts the container a RunRequest describes with `runc run --detach` and records its init
// process as a managed job. Its stdout and stderr go, through a pipe, to the job's log; its stdin
// is /dev/null.
func Run(ctx context.Context, m *jobs.Manager, req *daemonv1.RunRequest) (store.Job, error) {
	d := req.GetRunc()
	if d.GetId() == "" || d.GetBundle() == "" {
		return store.Job{}, errs.Invalid("give the container's --id and --bundle")
	}
	d.Root = cmp.Or(d.Root, DefaultRoot)
	spec, err := readBundle(d.Bundle)
	if err != nil {
		return store.Job{}, err
	}
	if runcshared.Exists(d.Root, d.Id) {
		return store.Job{}, errs.Exists("runc already has a container %q under %s: choose another --id", d.Id, d.Root)
	}
	jid, logPath, err := m.NewJob(ctx, req.Jid, req.Log)
	if err != nil {
		return store.Job{}, err
	}
	in := runcshared.Invocation{Root: d.Root, Args: []string{"run", "--detach", "--bundle", d.Bundle}}
	if spec.Process != nil && spec.Process.Terminal {
		// The terminal's output is the job's log.
		console, err := newConsoleSocket(logPath)
		if err != nil {
			return store.Job{}, err
		}
		defer console.close()
		in.Args = append(in.Args, "--console-socket", console.path, d.Id)
		if err := in.Run(ctx); err != nil {
			return store.Job{}, errs.Precondition("%w", err)
		}
		if err := console.wait(ctx); err != nil {
			return store.Job{}, fmt.Errorf("container %s runs, but its terminal: %w", d.Id, err)
		}
		return adopt(ctx, m, jid, logPath, d)
	}
	if in.Stdout, err = logPipe(logPath); err != nil {
		return store.Job{}, err
	}
	in.Args = append(in.Args, d.Id)
	err = in.Run(ctx)
	in.Stdout.Close() // the container holds its own copy
	if err != nil {
		return store.Job{}, errs.Precondition("%w", err)
	}
	return adopt(ctx, m, jid, logPath, d)
}

// Manage adopts the running container a ManageRequest names as a managed job.
func Manage(ctx context.Context, m *jobs.Manager, req *daemonv1.ManageRequest) (store.Job, error) {
	d := req.GetDetails().GetRunc()
	if d == nil {
		return store.Job{}, errs.Invalid("no container to manage: give its ID")
	}
	d.Root = cmp.Or(d.Root, DefaultRoot)
	return adopt(ctx, m, req.Jid, "", d)
}

// adopt records running container d as job jid.
func adopt(ctx context.Context, m *jobs.Manager, jid, logPath string, d *daemonv1.RuncDetails) (store.Job, error) {
	c, err := runcshared.Load(d.Root, d.Id)
	if err != nil {
		return store.Job{}, err
	}
	if err := c.RequireRunning(); err != nil {
		return store.Job{}, err
	}
	d.Bundle = c.Bundle()
	details, err := protojson.Marshal(&daemonv1.Details{Runc: d})
	if err != nil {
		return store.Job{}, err
	}
	job, err := m.Adopt(ctx, Name, jid, c.PID(), details, logPath)
	if err != nil {
		return store.Job{}, fmt.Errorf("container %s runs, but: %w", d.Id, err)
	}
	return job, nil
}
