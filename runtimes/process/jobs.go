package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
)

// RunCmd is `cedana run process <path> [args...]`.
type RunCmd struct {
	Path string   `arg:"" help:"Program to run (looked up in PATH)."`
	Args []string `arg:"" optional:"" passthrough:"" help:"Its arguments."`
}

// FillRun implements features.RunCommand; the workload runs in the client's working directory.
func (c *RunCmd) FillRun(req *daemonv1.RunRequest) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	req.Process = &daemonv1.ProcessRun{Path: c.Path, Args: c.Args, WorkingDir: wd, Env: os.Environ()}
	return nil
}

// ManageCmd is `cedana manage process <PID>`.
type ManageCmd struct {
	PID int32 `arg:"" help:"PID of the running process to adopt."`
}

// FillManage implements features.ManageCommand.
func (c *ManageCmd) FillManage(req *daemonv1.ManageRequest) error {
	req.Details = &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: c.PID}}
	return nil
}

var (
	_ features.RunCommand    = (*RunCmd)(nil)
	_ features.ManageCommand = (*ManageCmd)(nil)
)

// Run starts the process a RunRequest describes as a managed job (a new JID when none is given),
// with stdout and stderr appended to the job's log, in its own session.
func Run(ctx context.Context, m *jobs.Manager, req *daemonv1.RunRequest) (store.Job, error) {
	p := req.GetProcess()
	if p.GetPath() == "" {
		return store.Job{}, errs.Invalid("nothing to run: give the program's path")
	}
	jid, logPath, err := m.NewJob(ctx, req.Jid, req.Log)
	if err != nil {
		return store.Job{}, err
	}
	bin, err := exec.LookPath(p.Path)
	if err != nil {
		return store.Job{}, errs.NotFound("cannot run %s: %w", p.Path, errors.Unwrap(err))
	}
	cmd := exec.Command(bin, p.Args...)
	cmd.Args[0] = p.Path
	cmd.Dir = p.WorkingDir
	cmd.Env = p.Env
	return m.Start(ctx, jobs.Command{Type: Name, JID: jid, Log: logPath, Cmd: cmd})
}

// RunInProcess starts the process a RunRequest describes as a child of this process, with stdio:
// `cedana run process --no-server`.
func RunInProcess(req *daemonv1.RunRequest, stdio features.Stdio) (*os.Process, error) {
	p := req.GetProcess()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir, cmd.Env = p.WorkingDir, p.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot run %s: %w", p.Path, errors.Unwrap(err))
	}
	return cmd.Process, nil
}

// JobDetails points a process job's details at its current PID: a dump of the job dumps the tree
// rooted there.
func JobDetails(details *daemonv1.Details, pid int) {
	details.Process = &daemonv1.ProcessDetails{Pid: int32(pid)}
}

// Manage adopts the running process a ManageRequest names.
func Manage(ctx context.Context, m *jobs.Manager, req *daemonv1.ManageRequest) (store.Job, error) {
	if req.Upcoming {
		return store.Job{}, errs.Invalid("--upcoming waits for a container to appear by its ID, and a process has none: start it, then manage its PID")
	}
	pid := req.GetDetails().GetProcess().GetPid()
	if pid <= 0 {
		return store.Job{}, errs.Invalid("no PID to manage: give the PID of a running process")
	}
	details, err := protojson.Marshal(req.Details)
	if err != nil {
		return store.Job{}, err
	}
	return m.Adopt(ctx, Name, req.Jid, int(pid), details, "")
}
