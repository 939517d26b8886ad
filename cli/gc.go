package cli

import (
	"os"
	"runtime/debug"
)

// commandGCPercent is the collector's target while a short command runs. A command's heap stays a
// few MiB, and the first collection, due at 4 MiB with Go's default of 100, would cost a CLI call
// more CPU than parsing its command line. The daemon and the helpers go back to the default.
const commandGCPercent = 400

// gcPercent is the collector's target before quietGC raised it; 0 while unchanged.
var gcPercent int

// quietGC raises the collector's target for a short command, unless GOGC is set.
func quietGC() {
	if os.Getenv("GOGC") == "" {
		gcPercent = debug.SetGCPercent(commandGCPercent)
	}
}

// restoreGC gives a long-running command (the daemon, a helper) the collector's usual target.
func restoreGC() {
	if gcPercent != 0 {
		debug.SetGCPercent(gcPercent)
	}
}
