// Package startgc raises the garbage collector's target while the other packages' init functions
// run. Their allocations (descriptors, regular expressions, registries) pass Go's first target of
// 4 MiB, and a collection during start-up costs a short command several milliseconds. Package
// main imports it first; the import path sorts before the heavy dependencies', so Go initializes
// it before them. A long-running command (the daemon, a helper) calls Restore.
package startgc

import (
	"os"
	"runtime/debug"
)

// CommandPercent is the collector's target while a short command runs: its heap stays a few MiB.
const CommandPercent = 400

// previous is the collector's target before init raised it; 0 while unchanged.
var previous int

func init() { raise(os.Getenv) }

// raise sets CommandPercent unless GOGC is set.
func raise(getenv func(string) string) {
	if getenv("GOGC") == "" {
		previous = debug.SetGCPercent(CommandPercent)
	}
}

// Restore gives a long-running command the collector's usual target (GOGC's, or Go's default).
func Restore() {
	if previous != 0 {
		debug.SetGCPercent(previous)
		previous = 0
	}
}
