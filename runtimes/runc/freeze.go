package runc

import (
	"cmp"
	"context"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
)

// FreezeCmd is `cedana freeze runc <id>` and `cedana unfreeze runc <id>`.
type FreezeCmd struct {
	ID   string `arg:"" name:"id" help:"ID of the container."`
	Root string `help:"runc's state directory (runc --root)." default:"/run/runc" placeholder:"DIR"`
}

// Targets implements features.TargetCommand.
func (c *FreezeCmd) Targets() ([]*daemonv1.Details, error) {
	return []*daemonv1.Details{{Runc: &daemonv1.RuncDetails{Id: c.ID, Root: c.Root}}}, nil
}

// QueryCmd is `cedana query runc <id>...`.
type QueryCmd struct {
	IDs  []string `arg:"" name:"id" help:"IDs of the containers."`
	Root string   `help:"runc's state directory (runc --root)." default:"/run/runc" placeholder:"DIR"`
}

// Targets implements features.TargetCommand.
func (c *QueryCmd) Targets() ([]*daemonv1.Details, error) {
	out := make([]*daemonv1.Details, len(c.IDs))
	for i, id := range c.IDs {
		out[i] = &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: id, Root: c.Root}}
	}
	return out, nil
}

var (
	_ features.TargetCommand = (*FreezeCmd)(nil)
	_ features.TargetCommand = (*QueryCmd)(nil)
)

// Freeze pauses or resumes a runc container, as `runc pause` and `runc resume` do.
func Freeze(_ context.Context, d *daemonv1.Details, thaw bool) (*daemonv1.FreezeResponse, error) {
	return runcshared.Freeze(cmp.Or(d.GetRunc().GetRoot(), DefaultRoot), d.GetRunc().GetId(), thaw)
}

// Query describes a runc container.
func Query(_ context.Context, d *daemonv1.Details) (*daemonv1.Workload, error) {
	return runcshared.Query(cmp.Or(d.GetRunc().GetRoot(), DefaultRoot), d.GetRunc().GetId())
}
