// Package process is cedana's runtime for plain Linux process trees: `cedana dump process <PID>`
// and `cedana restore process --path <checkpoint>`.
package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
	"github.com/cedana/cedana/withcriu"
)

// Name is the runtime's name, the request type it serves.
const Name = features.Process

// DumpCmd is `cedana dump process`.
type DumpCmd struct {
	PID int32 `arg:"" help:"PID of the root of the process tree to checkpoint."`
}

// FillDump implements features.DumpCommand.
func (c *DumpCmd) FillDump(req *daemonv1.DumpRequest) error {
	req.Details = &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: c.PID}}
	return nil
}

// RestoreCmd is `cedana restore process`.
type RestoreCmd struct{}

// FillRestore implements features.RestoreCommand.
func (c *RestoreCmd) FillRestore(*daemonv1.RestoreRequest) error { return nil }

var (
	_ features.DumpCommand    = (*DumpCmd)(nil)
	_ features.RestoreCommand = (*RestoreCmd)(nil)
)

// DumpMiddleware is the process runtime's part of a dump: check the PID, describe the tree, and
// detect a shell job.
var DumpMiddleware = adapters.Middleware[adapters.DumpHandler]{CheckDumpPID, DescribeTree}

// RestoreMiddleware is the process runtime's part of a restore.
var RestoreMiddleware = adapters.Middleware[adapters.RestoreHandler]{RefuseOut, adapters.WaitForFreePIDs}

// RefuseOut refuses an output file (--out) for the restored tree: CRIU restores its open files as
// they were, so its output goes where it went when it was dumped.
func RefuseOut(next adapters.RestoreHandler) adapters.RestoreHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		if req.Log != "" {
			return errs.Invalid("--out: a restored process tree writes where it wrote when it was dumped (its files are restored as they were): drop --out")
		}
		return next(ctx, env, st, req, resp)
	}
}

// CheckDumpPID refuses a PID that does not exist, is a zombie, is PID 1 or is the daemon itself,
// before anything touches the process.
func CheckDumpPID(next adapters.DumpHandler) adapters.DumpHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
		pid := int(req.GetDetails().GetProcess().GetPid())
		switch {
		case pid <= 0:
			return false, errs.Invalid("no PID to dump: give the PID of a running process")
		case pid == 1:
			return false, errs.Invalid("refusing to dump PID 1, the init process of this PID namespace")
		case pid == env.DaemonPID:
			return false, errs.Invalid("refusing to dump PID %d: it is the cedana daemon itself", pid)
		}
		proc, err := sysinfo.ReadStat(pid)
		if errors.Is(err, fs.ErrNotExist) {
			return false, errs.NotFound("no process with PID %d", pid)
		}
		if err != nil {
			return false, fmt.Errorf("read process %d: %w", pid, err)
		}
		if proc.State == 'Z' || proc.State == 'X' {
			return false, errs.Precondition("process %d (%s) has exited and is waiting to be reaped; there is nothing to dump", pid, proc.Comm)
		}
		tree := sysinfo.Tree(pid)
		if slices.Contains(tree, env.DaemonPID) {
			return false, errs.Invalid("refusing to dump PID %d: the cedana daemon is part of its tree", pid)
		}
		if p, ok := outsideSession(tree); ok {
			return false, errs.Precondition("process %d is in a session whose leader is outside this PID namespace (session ID 0), "+
				"which CRIU cannot checkpoint: start the workload in its own session (setsid, or `cedana run process`)", p)
		}
		return next(ctx, env, st, req, resp)
	}
}

// DescribeTree records the tree's PIDs and command line in the checkpoint and turns on CRIU's
// shell-job mode when the tree has a controlling terminal or its session or process group leader
// lies outside the tree (a process started from a shell without setsid): CRIU refuses such a tree
// otherwise.
func DescribeTree(next adapters.DumpHandler) adapters.DumpHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
		pid := int(req.GetDetails().GetProcess().GetPid())
		tree := adapters.RecordTree(resp.Checkpoint, pid)
		if !req.Criu.ShellJob && needsShellJob(tree) {
			st.Log.Info("dumping as a shell job: the tree has a terminal or a session/group leader outside it", "pid", pid)
			req.Criu.ShellJob = true
		}
		return next(ctx, env, st, req, resp)
	}
}

// outsideSession returns the first process of tree whose session leader lies outside our PID
// namespace (the kernel reports its session ID as 0), as happens to processes started by a
// container's or VM's init that never called setsid.
func outsideSession(tree []int) (int, bool) {
	for _, pid := range tree {
		if st, err := sysinfo.ReadStat(pid); err == nil && st.SID == 0 {
			return pid, true
		}
	}
	return 0, false
}

// needsShellJob reports whether CRIU must dump tree in shell-job mode.
func needsShellJob(tree []int) bool {
	for _, pid := range tree {
		st, err := sysinfo.ReadStat(pid)
		if err != nil {
			continue
		}
		if st.TTY != 0 || !slices.Contains(tree, st.SID) || !slices.Contains(tree, st.PGID) {
			return true
		}
	}
	return false
}

// Check reports the process runtime usable: it needs nothing beyond CRIU.
func Check(context.Context) (string, error) {
	return "needs only CRIU", nil
}

func init() {
	features.Register(features.Runtime{
		Name:     Name,
		BuildTag: "runtimes.process",
		Dump: features.Dump{
			Command:    features.Subcommand(Name, "Checkpoint a process tree by the PID of its root.", &DumpCmd{}),
			Middleware: DumpMiddleware,
			Handler:    withcriu.Dump,
			Migrates:   true,
		},
		Restore: features.Restore{
			Command:    features.Subcommand(Name, "Restore a process tree from a checkpoint (--path).", &RestoreCmd{}),
			Middleware: RestoreMiddleware,
			Handler:    withcriu.Restore,
			Streams:    true,
			Lazy:       true,
		},
		Health: Check,
		Run: features.Run{
			Command: features.Subcommand(Name, "Start a program as a managed job.", &RunCmd{}),
			Handler: Run,
		},
		Manage: features.Manage{
			Command: features.Subcommand(Name, "Adopt a running process tree as a managed job.", &ManageCmd{}),
			Handler: Manage,
		},
		NoServer:   RunInProcess,
		JobDetails: JobDetails,
		Freeze: features.Freeze{
			Freeze:   features.Subcommand(Name, "Stop a process tree (its own cgroup's freezer, else SIGSTOP).", &FreezeCmd{}),
			Unfreeze: features.Subcommand(Name, "Let a frozen or stopped process tree run again.", &FreezeCmd{}),
			Handler:  Freeze,
		},
		Query: features.Query{
			Command: features.Subcommand(Name, "Describe process trees by their roots' PIDs.", &QueryCmd{}),
			Handler: Query,
		},
		SelfTest: SelfTest,
		Helpers:  []features.Helper{counter},
	})
}
