package cli

import (
	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// verbCommands are the subcommands of one verb: the registered ones by runtime name.
type verbCommands struct {
	feature *features.Feature[features.Command]
}

func dumpCommands() verbCommands    { return verbCommands{features.DumpCmd} }
func restoreCommands() verbCommands { return verbCommands{features.RestoreCmd} }

// runtimeCommands lists, for kong.Plugins, each runtime's subcommand of a verb, and a placeholder
// for each known runtime this binary lacks, so that `cedana dump runc` says how to get it.
func runtimeCommands(v verbCommands) kong.Plugins {
	var plugins kong.Plugins
	for _, name := range features.Runtimes() {
		cmd, ok := v.feature.Lookup(name)
		if !ok {
			cmd = placeholder(name)
		}
		plugins = append(plugins, cmd)
	}
	return plugins
}

// missingRuntimeCmd stands for a runtime that is not compiled in: it takes any arguments and
// answers with the error that says how to build a binary that has the runtime.
type missingRuntimeCmd struct {
	Args []string `arg:"" optional:"" passthrough:"" help:"Ignored."`

	runtime string
}

var (
	_ features.DumpCommand    = (*missingRuntimeCmd)(nil)
	_ features.RestoreCommand = (*missingRuntimeCmd)(nil)
	_ features.RunCommand     = (*missingRuntimeCmd)(nil)
	_ features.ManageCommand  = (*missingRuntimeCmd)(nil)
)

func (c *missingRuntimeCmd) err() error {
	return &features.NotCompiledInError{Runtime: c.runtime, Feature: "cli"}
}

// FillDump implements features.DumpCommand by failing.
func (c *missingRuntimeCmd) FillDump(*daemonv1.DumpRequest) error { return c.err() }

// FillRestore implements features.RestoreCommand by failing.
func (c *missingRuntimeCmd) FillRestore(*daemonv1.RestoreRequest) error { return c.err() }

// placeholder is the subcommand that stands for runtime, which this binary lacks.
func placeholder(runtime string) any {
	return features.Subcommand(runtime, "("+features.Absence(runtime)+")", &missingRuntimeCmd{runtime: runtime})
}

// FillRun implements features.RunCommand by failing.
func (c *missingRuntimeCmd) FillRun(*daemonv1.RunRequest) error { return c.err() }

// FillManage implements features.ManageCommand by failing.
func (c *missingRuntimeCmd) FillManage(*daemonv1.ManageRequest) error { return c.err() }
