package features

import (
	"context"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// Freezer holds the workload details names stopped without checkpointing it (thaw false), or
// lets it run again (thaw true), and says how.
type Freezer func(ctx context.Context, details *daemonv1.Details, thaw bool) (*daemonv1.FreezeResponse, error)

// Querier describes the workload details names, as cedana sees it.
type Querier func(ctx context.Context, details *daemonv1.Details) (*daemonv1.Workload, error)

// Freeze is a runtime's `cedana freeze <runtime>` and `cedana unfreeze <runtime>`: their
// subcommands and the daemon's handler (all three, or none).
type Freeze struct {
	// Freeze is the `cedana freeze <runtime>` subcommand; it implements TargetCommand.
	Freeze Command
	// Unfreeze is the `cedana unfreeze <runtime>` subcommand; it implements TargetCommand.
	Unfreeze Command
	// Handler freezes and thaws in the daemon.
	Handler Freezer
}

// Query is a runtime's `cedana query <runtime>`: its subcommand and the daemon's handler (both,
// or neither).
type Query struct {
	// Command is the `cedana query <runtime>` subcommand; it implements TargetCommand.
	Command Command
	// Handler describes one workload in the daemon.
	Handler Querier
}

// TargetCommand is implemented by a runtime's subcommands of freeze, unfreeze and query: the
// workloads they name, in the runtime's own terms.
type TargetCommand interface {
	Targets() ([]*daemonv1.Details, error)
}

var (
	// FreezeCmd is each runtime's `cedana freeze <runtime>` subcommand (a TargetCommand).
	FreezeCmd = New[Command]("freeze-cmd", "`cedana freeze <runtime>` subcommand")
	// UnfreezeCmd is each runtime's `cedana unfreeze <runtime>` subcommand (a TargetCommand).
	UnfreezeCmd = New[Command]("unfreeze-cmd", "`cedana unfreeze <runtime>` subcommand")
	// FreezeHandler holds a workload stopped, or lets it run again.
	FreezeHandler = New[Freezer]("freeze-handler", "`cedana freeze`/`unfreeze`: hold a workload stopped without checkpointing it")
	// QueryCmd is each runtime's `cedana query <runtime>` subcommand (a TargetCommand).
	QueryCmd = New[Command]("query-cmd", "`cedana query <runtime>` subcommand")
	// QueryHandler describes a workload: its processes, state and runtime details.
	QueryHandler = New[Querier]("query-handler", "`cedana query`: describe a workload's processes and state")
)
