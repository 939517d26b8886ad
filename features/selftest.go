package features

import (
	"context"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// SelfTester starts a tiny workload of the runtime, with its files in dir, for `cedana check
// --full` to dump and restore through the runtime's chains.
type SelfTester func(ctx context.Context, dir string) (SelfTestWorkload, error)

// SelfTestWorkload is the tiny workload a SelfTester started.
type SelfTestWorkload interface {
	// Details names the workload in a dump request.
	Details() *daemonv1.Details
	// Dumped is called once the dump has written the checkpoint and ended the workload.
	Dumped(ctx context.Context) error
	// Verify checks that the restored workload, whose root is pid, runs on from where it was
	// dumped; it says what it saw.
	Verify(ctx context.Context, pid int32) (string, error)
	// Stop kills and reaps the workload: the first one, or the restored one whose root is
	// restored (0 when nothing was restored).
	Stop(restored int32) error
}

// SelfTest is the runtimes that can dump and restore a tiny workload of their own.
var SelfTest = New[SelfTester]("self-test", "`cedana check --full`: dump and restore a tiny workload")
