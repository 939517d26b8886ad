package features

import (
	"context"
	"fmt"
	"os/exec"
)

// HelperVerb is the hidden CLI command that runs a helper: `cedana internal <helper> [args...]`.
const HelperVerb = "internal"

// Helper is a small program a runtime starts as a process of its own, run from the cedana binary:
// for work that must go on while no daemon runs, such as copying a container's output to its log.
// A runtime declares its helpers (Runtime.Helpers) and starts one with its Command method.
type Helper struct {
	// Name is the helper's name on the command line, unique among helpers.
	Name string
	// Main runs the helper with its arguments and standard streams; its error is the process's.
	Main func(ctx context.Context, args []string, stdio Stdio) error
}

// helpers holds the declared helpers by name (not by runtime: two runtimes may start one helper).
var helpers = New[Helper]("helpers", "programs runtimes start as processes of the cedana binary")

// LookupHelper returns the declared helper called name.
func LookupHelper(name string) (Helper, bool) {
	return helpers.Lookup(name)
}

// Command returns the command that runs the helper with args in a new process of this binary;
// the caller sets its stdio and process attributes and starts it. The helper must have been
// declared, for the new process to find it.
func (h Helper) Command(args ...string) (*exec.Cmd, error) {
	if _, ok := LookupHelper(h.Name); !ok {
		return nil, fmt.Errorf("helper %q is not declared: add it to its runtime's Helpers", h.Name)
	}
	// /proc/self/exe is this binary in any mount namespace, also after a daemon re-executed
	// itself from its image into the host's (daemon start --host-mount-ns), where the path
	// os.Executable reports names another file or none.
	return exec.Command("/proc/self/exe", append([]string{HelperVerb, h.Name}, args...)...), nil
}
