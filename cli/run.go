package cli

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/alecthomas/kong"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/internal/atomicfile"
)

// RunFlags are the flags of `cedana run <runtime>` and `cedana exec`. Like Cedana's, they may also
// follow the program's words (see parseArgs).
type RunFlags struct {
	JID        string `name:"jid" help:"Job ID (default: generated)." placeholder:"JID"`
	Out        string `help:"File for the workload's stdout and stderr (default /var/log/cedana/<jid>.log)." type:"path" placeholder:"FILE"`
	PIDFile    string `name:"pid-file" help:"Write the workload's PID to this file." type:"path" placeholder:"FILE"`
	Attach     bool   `help:"Stay attached: stream the job's output, forward stdin, exit with its exit code."`
	Attachable bool   `help:"Accepted for Cedana's syntax, harmless: every job can be attached to (cedana job attach)."`
	NoServer   bool   `name:"no-server" help:"Run the workload as this command's child, without a daemon or a job; exit with its exit code."`
}

// RunCmd is `cedana run <runtime> ...`.
type RunCmd struct {
	RunFlags `embed:""`

	kong.Plugins
}

// Run starts the job through the daemon.
func (c *RunCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.RunCommand](kctx, "run")
	if err != nil {
		return err
	}
	return c.start(ctx, kctx.Selected().Name, leaf, g, env, client)
}

// ExecCmd is `cedana exec <program> [args...]`, Cedana's short form of `cedana run process`.
type ExecCmd struct {
	RunFlags `embed:""`

	// Plugins holds the process runtime's `run` arguments, embedded (see execArgs).
	kong.Plugins
}

// Run starts the program as `cedana run process` does.
func (c *ExecCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, ok := c.Plugins[0].(features.RunCommand)
	if !ok {
		return fmt.Errorf("exec: %T is not a run command", c.Plugins[0]) // a programming mistake
	}
	return c.start(ctx, features.Process, leaf, g, env, client)
}

// execArgs are the arguments of the process runtime's `run` subcommand, for kong.Plugins to embed
// in `exec`, or the placeholder that says the runtime is missing.
func execArgs() kong.Plugins {
	cmd, ok := features.RunCmd.Lookup(features.Process)
	if !ok {
		return kong.Plugins{&missingRuntimeCmd{runtime: features.Process}}
	}
	// features.Subcommand's struct holds the leaf as its one field.
	return kong.Plugins{reflect.ValueOf(cmd).Elem().Field(0).Addr().Interface()}
}

// start runs the workload leaf describes: through the daemon, or as this command's child.
func (c *RunFlags) start(ctx context.Context, runtime string, leaf features.RunCommand, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	req := &daemonv1.RunRequest{Type: runtime, Jid: c.JID, Log: c.Out}
	if err := leaf.FillRun(req); err != nil {
		return err
	}
	if c.NoServer {
		return runInProcess(ctx, env, req, c.PIDFile)
	}
	resp, err := client.Run(ctx, req)
	if err != nil {
		return err
	}
	if err := writePIDFile(c.PIDFile, "job", int(resp.Job.Pid)); err != nil {
		return err
	}
	if c.Attach {
		return attach(ctx, env, client, resp.Job.Jid, true)
	}
	return printResult(env, g, resp.Job, "Running managed %s PID %d (job %s, log %s)\n", resp.Job.Type, resp.Job.Pid, resp.Job.Jid, resp.Job.Log)
}

// writePIDFile writes a workload's PID to path, when set, atomically and synced
// (atomicfile.Write): a job's with a newline, a restored tree's without (as runc writes
// it); what names the PID in the error ("job", "restored").
func writePIDFile(path, what string, pid int) error {
	if path == "" {
		return nil
	}
	data := strconv.Itoa(pid)
	if what == "job" {
		data += "\n"
	}
	if err := atomicfile.Write(path, []byte(data), 0o644); err != nil {
		return fmt.Errorf("%s PID %d, but cannot write --pid-file %s: %w", what, pid, path, err)
	}
	return nil
}

// ManageCmd is `cedana manage <runtime> ...`.
type ManageCmd struct {
	JID             string        `name:"jid" help:"Job ID (default: generated)." placeholder:"JID"`
	Upcoming        bool          `help:"Wait for a container of this ID to appear, then adopt it (containers only)."`
	UpcomingTimeout time.Duration `name:"upcoming-timeout" help:"How long --upcoming waits." default:"1m" placeholder:"DURATION"`
	PIDFile         string        `name:"pid-file" help:"Write the adopted workload's PID to this file." type:"path" placeholder:"FILE"`

	kong.Plugins
}

// Run adopts the workload through the daemon.
func (c *ManageCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.ManageCommand](kctx, "manage")
	if err != nil {
		return err
	}
	req := &daemonv1.ManageRequest{Type: kctx.Selected().Name, Jid: c.JID, Upcoming: c.Upcoming}
	if c.Upcoming {
		req.UpcomingTimeout = durationpb.New(c.UpcomingTimeout)
	}
	if err := leaf.FillManage(req); err != nil {
		return err
	}
	resp, err := client.Manage(ctx, req)
	if err != nil {
		return err
	}
	if err := writePIDFile(c.PIDFile, "job", int(resp.Job.Pid)); err != nil {
		return err
	}
	return printResult(env, g, resp.Job, "Managing PID %d as job %s\n", resp.Job.Pid, resp.Job.Jid)
}
