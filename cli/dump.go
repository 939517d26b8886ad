package cli

import (
	"context"
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// DumpCmd is `cedana dump <runtime> ...`: the flags every runtime shares, and the runtimes'
// subcommands.
type DumpCmd struct {
	Dir            string   `help:"Parent directory of the checkpoint, or s3://bucket/prefix (default: the daemon's checkpoint.dir)." placeholder:"DIR"`
	Compression    string   `help:"none (a directory; a plain tar for s3://), tar, gzip, lz4, zlib or zstd (one archive); default: the daemon's checkpoint.compression." placeholder:"CODEC"`
	Stats          bool     `help:"Print how long each phase took and the sizes."`
	Name           string   `help:"Name of the checkpoint directory (default dump-<runtime>-<unix ns>)." placeholder:"NAME"`
	LeaveRunning   *bool    `negatable:"" help:"Leave the workload running after the dump (default: criu.leave_running)."`
	TCPEstablished bool     `name:"tcp-established" help:"Checkpoint established TCP connections."`
	FileLocks      bool     `help:"Checkpoint file locks."`
	ShellJob       bool     `help:"Allow a workload whose session or group leader is outside it (detected for a process tree)."`
	External       []string `help:"External resource, in CRIU's --external syntax (repeatable)." placeholder:"RES" sep:"none"`
	LinkRemap      bool     `help:"Checkpoint open files that were deleted, by link-remapping them."`
	SkipInFlight   bool     `help:"Skip TCP connections still being set up instead of failing."`

	Job DumpJobCmd `cmd:"" help:"Checkpoint a managed job and record the checkpoint against it."`
	Pod PodCmd     `cmd:"" help:"Checkpoint a Kubernetes pod's containers, frozen together, into one pod checkpoint."`

	kong.Plugins
}

// JobTargetCmd is `cedana dump job <jid>` and `cedana restore job <jid>`: the daemon takes the runtime
// and its details from the job.
type JobTargetCmd struct {
	JID string `arg:"" name:"jid" help:"The job's ID."`
}

var (
	_ features.DumpCommand    = (*JobTargetCmd)(nil)
	_ features.DumpCommand    = (*DumpJobCmd)(nil)
	_ features.RestoreCommand = (*JobTargetCmd)(nil)
)

// FillDump implements features.DumpCommand.
func (c *JobTargetCmd) FillDump(req *daemonv1.DumpRequest) error {
	req.Type, req.Jid = "", c.JID
	return nil
}

// DumpJobCmd is `cedana dump job <jid> [--image REF [--rootfs-only]]`. The daemon refuses the
// image flags for a job whose runtime cannot commit an image (features.DumpCommit), before it
// touches the job.
type DumpJobCmd struct {
	JobTargetCmd
	Image      string `help:"Also commit the job's writable layer as this image, if its runtime can (dump-commit in cedana features)." placeholder:"REF"`
	RootfsOnly bool   `name:"rootfs-only" help:"Only commit the writable layer (--image): no CRIU dump, the job runs on, no checkpoint of the job."`
}

// FillDump implements features.DumpCommand.
func (c *DumpJobCmd) FillDump(req *daemonv1.DumpRequest) error {
	if err := c.JobTargetCmd.FillDump(req); err != nil {
		return err
	}
	req.Image, req.RootfsOnly = c.Image, c.RootfsOnly
	return nil
}

// FillRestore implements features.RestoreCommand.
func (c *JobTargetCmd) FillRestore(req *daemonv1.RestoreRequest) error {
	req.Type, req.Jid = "", c.JID
	return nil
}

// Run sends the dump built from the common flags and the selected runtime's subcommand.
func (c *DumpCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, cfg config.Config, env Env, client daemonv1connect.DaemonServiceClient) error {
	if pod, err := selected[*PodCmd](kctx, "dump"); err == nil {
		return c.runPod(ctx, pod, g, cfg, env, client)
	}
	leaf, err := selected[features.DumpCommand](kctx, "dump")
	if err != nil {
		return err
	}
	dir, err := localOrRemote(c.Dir)
	if err != nil {
		return err
	}
	req := &daemonv1.DumpRequest{
		Type:        kctx.Selected().Name,
		Dir:         dir,
		Name:        c.Name,
		Compression: c.Compression,
		Criu:        c.criuOptions(cfg),
	}
	if err := leaf.FillDump(req); err != nil {
		return err
	}
	resp, err := callWatched(ctx, g, env, client, func(id string) (*daemonv1.DumpResponse, error) {
		req.OperationId = id
		return client.Dump(ctx, req)
	})
	if err != nil {
		return err
	}
	if err := printResult(env, g, resp, "Dumped to %s\n", resp.Path); err != nil {
		return err
	}
	if c.Stats && g.Output != "json" {
		printStats(env.Stdout, resp.Stats)
	}
	return nil
}

// criuOptions are the CRIU options the flags ask for, with cfg's defaults for those not given.
func (c *DumpCmd) criuOptions(cfg config.Config) *daemonv1.CriuOptions {
	leave := cfg.CRIU.LeaveRunning
	if c.LeaveRunning != nil {
		leave = *c.LeaveRunning
	}
	return &daemonv1.CriuOptions{
		LeaveRunning:   leave,
		TcpEstablished: c.TCPEstablished,
		FileLocks:      c.FileLocks,
		ShellJob:       c.ShellJob,
		External:       c.External,
		LinkRemap:      c.LinkRemap,
		SkipInFlight:   c.SkipInFlight,
	}
}

// selected returns the selected subcommand of verb as a T, the interface its subcommands implement.
func selected[T any](kctx *kong.Context, verb string) (T, error) {
	if node := kctx.Selected(); node != nil {
		if v, ok := node.Target.Addr().Interface().(T); ok {
			return v, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("%q is not a %s subcommand", kctx.Command(), verb)
}
