// Package runc is cedana's runtime for runc containers: `cedana dump runc <id>`, `cedana restore
// runc`, `cedana run runc` and `cedana manage runc`.
//
// A dump goes through the daemon's own CRIU connection like any other: this package reads the
// container's state with libcontainer and adds what runc itself would pass to CRIU for it (the
// rootfs as root, bind mounts, masked paths and devices as external mounts, namespaces the spec
// points at as external namespaces, the cgroup freezer, pty handling), plus the files `runc
// restore` expects beside the images. The restore and the start of a container drive the host's
// runc binary, because only runc keeps its own state (`runc list`, `runc kill`, `runc delete`)
// consistent with the container it restores or starts.
package runc

import (
	"context"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
	"github.com/cedana/cedana/withcriu"
)

// Name is the runtime's name, the request type it serves.
const Name = features.Runc

// DefaultRoot is runc's own default state directory.
const DefaultRoot = runcshared.DefaultRoot

// DumpMiddleware is the runc runtime's part of a dump: the container's dump, after which the
// stopped container is deleted from runc, as `runc checkpoint` does.
var DumpMiddleware = adapters.Middleware[adapters.DumpHandler]{runcshared.ContainerDump{DeleteAfter: true}.Adapter}

// Check reports whether the runc runtime can be used: it needs the host's runc.
func Check(ctx context.Context) (string, error) {
	return runcshared.Version(ctx)
}

// DumpCmd is `cedana dump runc <id>`.
type DumpCmd struct {
	ID   string `arg:"" name:"id" help:"ID of the running container to checkpoint."`
	Root string `help:"runc's state directory (runc --root)." default:"/run/runc" placeholder:"DIR"`
}

// FillDump implements features.DumpCommand.
func (c *DumpCmd) FillDump(req *daemonv1.DumpRequest) error {
	req.Details = &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: c.ID, Root: c.Root}}
	return nil
}

// RestoreCmd is `cedana restore runc --path <checkpoint> [--id <id>] [--bundle <dir>]`.
type RestoreCmd struct {
	ID     string `name:"id" help:"ID of the restored container (default: the dumped container's)." placeholder:"ID"`
	Bundle string `help:"Bundle (config.json and rootfs) to restore into (default: the dumped container's)." type:"path" placeholder:"DIR"`
	Root   string `help:"runc's state directory (runc --root) (default: the dumped container's, else /run/runc)." placeholder:"DIR"`
	Detach bool   `help:"Leave the restored container under runc (runc restore --detach), as a plain restore does; its exit code is then unknown."`
}

// FillRestore implements features.RestoreCommand.
func (c *RestoreCmd) FillRestore(req *daemonv1.RestoreRequest) error {
	req.Details = &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: c.ID, Root: c.Root, Bundle: c.Bundle, Detach: c.Detach}}
	return nil
}

// RunCmd is `cedana run runc --bundle <dir> [--id <id>]`.
type RunCmd struct {
	ID     string `name:"id" help:"ID of the new container (default: the job's ID)." placeholder:"ID"`
	Bundle string `required:"" help:"Bundle directory: config.json and the rootfs it names." type:"path" placeholder:"DIR"`
	Root   string `help:"runc's state directory (runc --root)." default:"/run/runc" placeholder:"DIR"`
	Detach bool   `help:"With --no-server: leave the container running under runc and return. Through the daemon, accepted: the container always runs detached from this command."`
}

// FillRun implements features.RunCommand.
func (c *RunCmd) FillRun(req *daemonv1.RunRequest) error {
	req.Runc = &daemonv1.RuncDetails{Id: c.ID, Root: c.Root, Bundle: c.Bundle, Detach: c.Detach}
	return nil
}

// ManageCmd is `cedana manage runc <id>`.
type ManageCmd struct {
	ID     string `arg:"" name:"id" help:"ID of the running container to adopt."`
	Root   string `help:"runc's state directory (runc --root)." default:"/run/runc" placeholder:"DIR"`
	Bundle string `help:"The container's bundle: checked against runc's record of it." type:"path" placeholder:"DIR"`
}

// FillManage implements features.ManageCommand.
func (c *ManageCmd) FillManage(req *daemonv1.ManageRequest) error {
	req.Details = &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: c.ID, Root: c.Root, Bundle: c.Bundle}}
	return nil
}

var (
	_ features.DumpCommand    = (*DumpCmd)(nil)
	_ features.RestoreCommand = (*RestoreCmd)(nil)
	_ features.RunCommand     = (*RunCmd)(nil)
	_ features.ManageCommand  = (*ManageCmd)(nil)
)

func init() {
	features.Register(features.Runtime{
		Name:     Name,
		BuildTag: "runtimes.runc",
		Dump: features.Dump{
			Command:    features.Subcommand(Name, "Checkpoint a running runc container by its ID.", &DumpCmd{}),
			Middleware: DumpMiddleware,
			Handler:    withcriu.Dump,
		},
		Restore: features.Restore{
			Command:    features.Subcommand(Name, "Restore a runc container from a checkpoint (--path); runc then runs it.", &RestoreCmd{}),
			Middleware: RestoreMiddleware,
			Handler:    RestoreWithRunc,
			Lazy:       true,
		},
		Health: Check,
		Run: features.Run{
			Command: features.Subcommand(Name, "Start a runc container from a bundle as a managed job.", &RunCmd{}),
			Handler: Run,
		},
		Manage: features.Manage{
			Command: features.Subcommand(Name, "Adopt a running runc container as a managed job.", &ManageCmd{}),
			Handler: Manage,
		},
		NoServer: RunInProcess,
		Helpers:  []features.Helper{logCopy},
		Freeze: features.Freeze{
			Freeze:   features.Subcommand(Name, "Pause a runc container (as runc pause).", &FreezeCmd{}),
			Unfreeze: features.Subcommand(Name, "Resume a paused runc container (as runc resume).", &FreezeCmd{}),
			Handler:  Freeze,
		},
		Query: features.Query{
			Command: features.Subcommand(Name, "Describe runc containers by their IDs.", &QueryCmd{}),
			Handler: Query,
		},
	})
}
