package cli

import (
	"context"
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// RestoreCmd is `cedana restore <runtime> --path <checkpoint>`.
type RestoreCmd struct {
	Path           string   `help:"Checkpoint directory to restore." type:"path" required:"" placeholder:"DIR"`
	TCPEstablished bool     `name:"tcp-established" help:"Restore established TCP connections (on by default when the dump had them)."`
	FileLocks      bool     `help:"Restore file locks (on by default when the dump had them)."`
	ShellJob       bool     `help:"Restore as a shell job (on by default when the dump was one)."`
	External       []string `help:"External resource, in CRIU's --inherit-fd/--external syntax (repeatable)." placeholder:"RES" sep:"none"`

	kong.Plugins
}

// Run sends the restore built from the common flags and the selected runtime's subcommand.
func (c *RestoreCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, ok := selected[features.RestoreCommand](kctx)
	if !ok {
		return fmt.Errorf("%q is not a restore subcommand", kctx.Command())
	}
	req := &daemonv1.RestoreRequest{
		Type: kctx.Selected().Name,
		Path: c.Path,
		Criu: &daemonv1.CriuOptions{
			TcpEstablished: c.TCPEstablished,
			FileLocks:      c.FileLocks,
			ShellJob:       c.ShellJob,
			External:       c.External,
		},
	}
	if err := leaf.FillRestore(req); err != nil {
		return err
	}
	resp, err := client.Restore(ctx, req)
	if err != nil {
		return err
	}
	return printResult(env, g, resp, "Restored, PID: %d\n", resp.Pid)
}
