// Package runtimehandler is cedana's CRI runtime handler: the cedana binary that containerd's runc
// shim runs in runc's place, through the symlink k8s.WrapperName (the runtime's BinaryName). Every
// runc command passes through to the host's runc.
package runtimehandler

import (
	"fmt"
	"io"
	"os"
	"os/exec"
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
	return become(runc, args, stderr)
}

// become replaces this process with runc and args: the shim then talks to runc itself, with the
// same PID, stdio and environment.
func become(runc string, args []string, stderr io.Writer) int {
	err := syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(stderr, "%s: run %s: %v\n", k8s.WrapperName, runc, err)
	return 1
}
