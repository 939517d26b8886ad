// Command cedana checkpoints and restores processes and containers with CRIU. The same binary is the
// daemon (`cedana daemon start`), its client, and, called as cedana-runc, the Kubernetes runtime
// handler.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	_ "github.com/cedana/cedana/internal/startgc" // first: no collection while packages initialize

	"github.com/cedana/cedana/cli"
	"github.com/cedana/cedana/k8s"
	"github.com/cedana/cedana/k8s/runtimehandler"
	_ "github.com/cedana/cedana/runtimes/all" // the runtimes this build has
)

func main() {
	if filepath.Base(os.Args[0]) == k8s.WrapperName {
		// Called by containerd's runc shim as its runc (see cedana k8s setup).
		os.Exit(runtimehandler.Main(os.Args[1:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx)
	stop()
	os.Exit(code)
}
