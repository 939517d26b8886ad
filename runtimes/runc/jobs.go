package runc

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
	"github.com/cedana/cedana/store"
)

// Run starts the container a RunRequest describes and records its init process as a managed
// job. The container's ID is the request's, else the job's ID.
//
// Without a terminal, the container runs under `runc run` in the foreground, a child of the
// daemon in a session of its own: runc waits for the container's init, reaps it, deletes the
// stopped container and exits with the init's exit code, which the daemon records as the job's.
// runc copies the container's stdout and stderr (pipes, which CRIU can checkpoint) into the
// job's log; its stdin is /dev/null. A container with a terminal runs under `runc run --detach`;
// its terminal's output goes to the job's log, and its exit code is not known.
func Run(ctx context.Context, m *jobs.Manager, req *daemonv1.RunRequest) (store.Job, error) {
	d := req.GetRunc()
	if d.GetBundle() == "" {
		return store.Job{}, errs.Invalid("give the container's --bundle")
	}
	spec, err := readBundle(d.Bundle)
	if err != nil {
		return store.Job{}, err
	}
	jid, logPath, err := m.NewJob(ctx, req.Jid, req.Log)
	if err != nil {
		return store.Job{}, err
	}
	d.Id = cmp.Or(d.Id, jid)
	d.Root = cmp.Or(d.Root, DefaultRoot)
	if runcshared.Exists(d.Root, d.Id) {
		return store.Job{}, errs.Exists("runc already has a container %q under %s: choose another --id", d.Id, d.Root)
	}
	if spec.Process != nil && spec.Process.Terminal {
		return runWithTerminal(ctx, m, jid, logPath, d)
	}
	out, err := openJobLog(logPath)
	if err != nil {
		return store.Job{}, err
	}
	defer out.Close()
	dir, err := os.MkdirTemp("", "cedana-runc-run-")
	if err != nil {
		return store.Job{}, err
	}
	defer os.RemoveAll(dir)
	pidFile := filepath.Join(dir, "pid")
	runc, err := runcshared.Invocation{
		Root: d.Root, Stdout: out,
		Args: []string{"run", "--bundle", d.Bundle, "--pid-file", pidFile, d.Id},
	}.Start()
	if err != nil {
		return store.Job{}, err
	}
	pid, err := runc.WaitPID(ctx, pidFile)
	if err != nil {
		forceDelete(ctx, d)
		return store.Job{}, errs.Precondition("%w", err)
	}
	details, err := protojson.Marshal(&daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: d.Id, Root: d.Root, Bundle: d.Bundle}})
	if err == nil {
		var job store.Job
		if job, err = m.AdoptWaiting(ctx, Name, jid, pid, details, logPath, runc.Wait); err == nil {
			return job, nil
		}
	}
	// Not recorded: a container no job owns must not stay behind. runc exits once it is deleted.
	forceDelete(ctx, d)
	_, _ = runc.Wait()
	return store.Job{}, fmt.Errorf("container %s was removed: %w", d.Id, err)
}

// runWithTerminal starts container d, whose spec asks for a terminal, with `runc run --detach`;
// the terminal's master goes to a log-copy helper that writes the job's log.
func runWithTerminal(ctx context.Context, m *jobs.Manager, jid, logPath string, d *daemonv1.RuncDetails) (store.Job, error) {
	console, err := newConsoleSocket(logPath)
	if err != nil {
		return store.Job{}, err
	}
	defer console.close()
	in := runcshared.Invocation{Root: d.Root, Args: []string{"run", "--detach", "--bundle", d.Bundle, "--console-socket", console.path, d.Id}}
	if err := in.Run(ctx); err != nil {
		return store.Job{}, errs.Precondition("%w", err)
	}
	if err := console.wait(ctx); err != nil {
		forceDelete(ctx, d)
		return store.Job{}, fmt.Errorf("container %s was removed: its terminal: %w", d.Id, err)
	}
	job, err := adopt(ctx, m, jid, logPath, d)
	if err != nil {
		forceDelete(ctx, d)
		return store.Job{}, fmt.Errorf("container %s was removed: %w", d.Id, err)
	}
	return job, nil
}

// Manage adopts the running container a ManageRequest names as a managed job; with upcoming, it
// first waits for runc to run a container of that ID.
func Manage(ctx context.Context, m *jobs.Manager, req *daemonv1.ManageRequest) (store.Job, error) {
	d := req.GetDetails().GetRunc()
	if d.GetId() == "" {
		return store.Job{}, errs.Invalid("no container to manage: give its ID")
	}
	d.Root = cmp.Or(d.Root, DefaultRoot)
	if req.Upcoming {
		if _, err := runcshared.WaitRunning(ctx, d.Root, d.Id, runcshared.UpcomingTimeout(req)); err != nil {
			return store.Job{}, err
		}
	}
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
	if d.Bundle != "" && filepath.Clean(d.Bundle) != filepath.Clean(c.Bundle()) {
		return store.Job{}, errs.Invalid("container %s runs from bundle %s, not %s: drop --bundle or correct it", d.Id, c.Bundle(), d.Bundle)
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
