package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// RestoreCmd is `cedana restore <runtime> --path <checkpoint>`.
type RestoreCmd struct {
	Path           string   `help:"Checkpoint to restore: a directory, an archive, or s3://bucket/key (for a job: its latest by default; for a job this daemon does not know, one of its checkpoints, to take it on)." placeholder:"PATH"`
	Stats          bool     `help:"Print how long each phase took and the sizes."`
	TCPEstablished bool     `name:"tcp-established" help:"Restore established TCP connections (on by default when the dump had them)."`
	FileLocks      bool     `help:"Restore file locks (on by default when the dump had them)."`
	ShellJob       bool     `help:"Restore as a shell job (on by default when the dump was one)."`
	External       []string `help:"External resource, in CRIU's --inherit-fd/--external syntax (repeatable)." placeholder:"RES" sep:"none"`
	PIDFile        string   `name:"pid-file" help:"Write the restored root PID to this file (atomically)." type:"path" placeholder:"FILE"`
	LeaveStopped   bool     `help:"Leave the restored tree stopped; cedana unfreeze resumes it (process trees)."`
	TCPClose       bool     `name:"tcp-close" help:"Close the checkpoint's established TCP connections instead of restoring them (process trees)."`
	LinkRemap      bool     `help:"Harmless here: files link-remapped at dump time are restored without it."`

	Attach     bool   `help:"Stay attached to the restored job (a new one unless restore job): stream its output, exit with its exit code."`
	Attachable bool   `help:"Record the restored workload as a new job (cedana attach follows it) and return."`
	Out        string `help:"File for the restored workload's output; makes it a new job (with --no-server: this command's output)." type:"path" placeholder:"FILE"`
	NoServer   bool   `name:"no-server" help:"Restore in this process, without a daemon; wait for the workload and exit with its exit code."`
	Lazy       bool   `help:"Return as soon as the tree runs; its memory is served on demand (userfaultfd) by CRIU's lazy-pages server, which the daemon runs until every page is back (processes and runc containers; see cedana check)."`

	Job JobTargetCmd `cmd:"" help:"Restore a managed job (from its latest checkpoint unless --path); it runs again under its JID. A job another daemon dumped is taken on from its checkpoint (--path)."`

	kong.Plugins
}

// Run sends the restore built from the common flags and the selected runtime's subcommand.
func (c *RestoreCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, cfg config.Config, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.RestoreCommand](kctx, "restore")
	if err != nil {
		return err
	}
	path, err := localOrRemote(c.Path)
	if err != nil {
		return err
	}
	req := &daemonv1.RestoreRequest{
		Type: kctx.Selected().Name,
		Path: path,
		Criu: &daemonv1.CriuOptions{
			TcpEstablished: c.TCPEstablished,
			FileLocks:      c.FileLocks,
			ShellJob:       c.ShellJob,
			External:       c.External,
			LeaveStopped:   c.LeaveStopped,
			TcpClose:       c.TCPClose,
		},
	}
	if err := leaf.FillRestore(req); err != nil {
		return err
	}
	if req.Path == "" && req.Jid == "" {
		return errors.New("no checkpoint to restore: pass --path <checkpoint directory>")
	}
	if req.Jid != "" && c.Out != "" {
		return errors.New("--out: a restored job writes to its own log (cedana job inspect shows it): drop --out")
	}
	req.Log = c.Out
	req.Lazy = c.Lazy
	if c.NoServer {
		if req.Jid != "" || c.Attachable {
			return errors.New("--no-server restores a checkpoint by --path, in this process; jobs are the daemon's")
		}
		if c.Lazy {
			return errors.New("--lazy needs the daemon, which runs the lazy-pages server until every page is back: drop --no-server")
		}
		return restoreInProcess(ctx, cfg, env, req, c.PIDFile)
	}
	req.NewJob = req.Jid == "" && (c.Attach || c.Attachable || c.Out != "")
	resp, err := callWatched(ctx, g, env, client, func(id string) (*daemonv1.RestoreResponse, error) {
		req.OperationId = id
		return client.Restore(ctx, req)
	})
	if err != nil {
		return err
	}
	if err := writePIDFile(c.PIDFile, "restored", int(resp.Pid)); err != nil {
		return err
	}
	if c.Attach {
		fmt.Fprintf(env.Stderr, "Restored, PID: %d (job %s)\n", resp.Pid, resp.Jid)
		return attach(ctx, env, client, resp.Jid, false)
	}
	format, args := "Restored, PID: %d\n", []any{resp.Pid}
	if req.NewJob {
		format, args = "Restored, PID: %d (job %s)\n", []any{resp.Pid, resp.Jid}
	}
	if err := printResult(env, g, resp, format, args...); err != nil {
		return err
	}
	if c.Stats && g.Output != "json" {
		printStats(env.Stdout, resp.Stats)
	}
	return nil
}
