// Package runtimehandler is cedana's CRI runtime handler: the cedana binary that containerd's runc
// shim runs in runc's place, through the symlink k8s.WrapperName (the runtime's BinaryName).
//
// `create` of an app container whose spec has the annotation k8s.RestoreAnnotation restores the
// container from its entry of that pod checkpoint instead (the daemon's PrepareRestore, then
// `runc restore --detach`), and the runtime's following `start` of it is a no-op. Every other
// command, and `create` without the annotation, passes through to the host's runc.
package runtimehandler

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/cedana/cedana/k8s"
)

// Main runs the handler with runc's arguments (without the program name), as the shim gave them,
// and returns the exit code when it does not become runc.
func Main(args []string, stderr io.Writer) int {
	runc, err := exec.LookPath("runc")
	if err != nil {
		fmt.Fprintf(stderr, "%s: the host's runc is needed: %v\n", k8s.WrapperName, err)
		return 1
	}
	inv, ok := parseInvocation(args)
	if !ok {
		return become(runc, args, stderr)
	}
	switch inv.command {
	case "create":
		c, ok := parseCreate(inv.args)
		if !ok {
			break
		}
		if c.bundle == "" {
			c.bundle, _ = os.Getwd() // runc's default
		}
		if t, restoring := restoreTargetOf(c.bundle); restoring {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return restore(ctx, runc, inv, c, t, stderr)
		}
	case "start":
		if len(inv.args) == 1 && startRestored(runc, inv, inv.args[0]) {
			return 0
		}
	}
	return become(runc, args, stderr)
}

// become replaces this process with runc and args: the shim then talks to runc itself, with the
// same PID, stdio and environment.
func become(runc string, args []string, stderr io.Writer) int {
	err := syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(stderr, "%s: run %s: %v\n", k8s.WrapperName, runc, err)
	return 1
}
