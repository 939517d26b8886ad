// Command cedana checkpoints and restores processes and containers with CRIU. The same binary is the
// daemon (`cedana daemon start`) and its client.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cedana/cedana/cli"
	_ "github.com/cedana/cedana/runtimes/all" // the runtimes this build has
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx)
	stop()
	os.Exit(code)
}
