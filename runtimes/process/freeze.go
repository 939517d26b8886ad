package process

import (
	"context"
	"fmt"
	"os"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/proctree"
)

// FreezeCmd is `cedana freeze process <pid>` and `cedana unfreeze process <pid>`.
type FreezeCmd struct {
	PID int32 `arg:"" help:"PID of the root of the process tree."`
}

// Targets implements features.TargetCommand.
func (c *FreezeCmd) Targets() ([]*daemonv1.Details, error) {
	return []*daemonv1.Details{{Process: &daemonv1.ProcessDetails{Pid: c.PID}}}, nil
}

// QueryCmd is `cedana query process <pid>...`.
type QueryCmd struct {
	PIDs []int32 `arg:"" name:"pid" help:"PIDs of the roots of the process trees."`
}

// Targets implements features.TargetCommand.
func (c *QueryCmd) Targets() ([]*daemonv1.Details, error) {
	out := make([]*daemonv1.Details, len(c.PIDs))
	for i, pid := range c.PIDs {
		out[i] = &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: pid}}
	}
	return out, nil
}

var (
	_ features.TargetCommand = (*FreezeCmd)(nil)
	_ features.TargetCommand = (*QueryCmd)(nil)
)

// Freeze holds a process tree stopped (thaw false) or lets it run again: with its own cgroup v2
// freezer when it has one, with SIGSTOP/SIGCONT otherwise.
func Freeze(ctx context.Context, d *daemonv1.Details, thaw bool) (*daemonv1.FreezeResponse, error) {
	pid := int(d.GetProcess().GetPid())
	var res proctree.Result
	var err error
	if thaw {
		res, err = proctree.Thaw(pid, os.Getpid())
	} else {
		res, err = proctree.Freeze(ctx, pid, os.Getpid())
	}
	if err != nil {
		return nil, err
	}
	return &daemonv1.FreezeResponse{Method: res.Method, Pids: res.PIDs, Detail: res.Detail}, nil
}

// Query describes a process tree.
func Query(_ context.Context, d *daemonv1.Details) (*daemonv1.Workload, error) {
	pid := d.GetProcess().GetPid()
	procs := proctree.Describe(int(pid))
	if len(procs) == 0 {
		return nil, errs.NotFound("no process with PID %d", pid)
	}
	return &daemonv1.Workload{Id: fmt.Sprint(pid), Pid: pid, Status: proctree.Status(procs), Processes: procs}, nil
}
