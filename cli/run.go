package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// RunCmd is `cedana run <runtime> ...`.
type RunCmd struct {
	JID      string `name:"jid" help:"Job ID (default: generated)." placeholder:"JID"`
	Out      string `help:"File for the workload's stdout and stderr (default /var/log/cedana/<jid>.log)." type:"path" placeholder:"FILE"`
	PIDFile  string `name:"pid-file" help:"Write the workload's PID to this file." type:"path" placeholder:"FILE"`
	Attach   bool   `help:"Stay attached: stream the job's output, forward stdin, exit with its exit code."`
	NoServer bool   `name:"no-server" help:"Run the workload as this command's child, without a daemon or a job; exit with its exit code."`

	kong.Plugins
}

// Run starts the job through the daemon.
func (c *RunCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.RunCommand](kctx, "run")
	if err != nil {
		return err
	}
	req := &daemonv1.RunRequest{Type: kctx.Selected().Name, Jid: c.JID, Log: c.Out}
	if err := leaf.FillRun(req); err != nil {
		return err
	}
	if c.NoServer {
		return runInProcess(ctx, env, req)
	}
	resp, err := client.Run(ctx, req)
	if err != nil {
		return err
	}
	if c.PIDFile != "" {
		if err := os.WriteFile(c.PIDFile, []byte(strconv.Itoa(int(resp.Job.Pid))+"\n"), 0o644); err != nil {
			return fmt.Errorf("write --pid-file: %w", err)
		}
	}
	if c.Attach {
		return attach(ctx, env, client, resp.Job.Jid, true)
	}
	return printResult(env, g, resp.Job, "Running managed %s PID %d (job %s, log %s)\n", resp.Job.Type, resp.Job.Pid, resp.Job.Jid, resp.Job.Log)
}

// ManageCmd is `cedana manage <runtime> ...`.
type ManageCmd struct {
	JID string `name:"jid" help:"Job ID (default: generated)." placeholder:"JID"`

	kong.Plugins
}

// Run adopts the workload through the daemon.
func (c *ManageCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.ManageCommand](kctx, "manage")
	if err != nil {
		return err
	}
	req := &daemonv1.ManageRequest{Type: kctx.Selected().Name, Jid: c.JID}
	if err := leaf.FillManage(req); err != nil {
		return err
	}
	resp, err := client.Manage(ctx, req)
	if err != nil {
		return err
	}
	return printResult(env, g, resp.Job, "Managing PID %d as job %s\n", resp.Job.Pid, resp.Job.Jid)
}
