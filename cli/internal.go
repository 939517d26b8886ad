package cli

import (
	"context"
	"fmt"

	"github.com/cedana/cedana/features"
	"github.com/cedana/cedana/internal/startgc"
)

// InternalCmd is `cedana internal <helper> [args...]`: the helpers runtimes declare and start as
// processes of their own (features.Helper). It is hidden from help.
type InternalCmd struct {
	Helper string   `arg:"" help:"Helper to run."`
	Args   []string `arg:"" optional:"" passthrough:"" help:"Its arguments."`
}

// Run runs the helper with the command's stdio.
func (c *InternalCmd) Run(ctx context.Context, env Env) error {
	startgc.Restore()
	h, ok := features.LookupHelper(c.Helper)
	if !ok {
		return fmt.Errorf("no helper %q in this cedana binary", c.Helper)
	}
	return h.Main(ctx, c.Args, features.Stdio{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr})
}
