package runtimehandler

import (
	"strings"
)

// invocation is a runc command line as the shim gives it: runc's global flags, then a command
// and its arguments.
type invocation struct {
	// globals are the global flags as given, passed on unchanged to every runc we run.
	globals []string
	// root, log and logFormat are the values of --root, --log and --log-format ("" when absent).
	root, log, logFormat string
	// command is runc's command (create, start, ...), "" when there is none.
	command string
	// args are the command's arguments.
	args []string
}

// runc's global flags (runc 1.1): those that take a value, and booleans.
var (
	globalValueFlags = map[string]bool{"root": true, "log": true, "log-format": true, "criu": true, "rootless": true}
	globalBoolFlags  = map[string]bool{"debug": true, "systemd-cgroup": true}
)

// parseInvocation splits args into runc's global flags, the command and its arguments. ok is
// false for a command line it does not understand (an unknown flag, --help, --version): the
// handler then passes it to runc as it is.
func parseInvocation(args []string) (inv invocation, ok bool) {
	values, rest, ok := parseFlags(args, globalValueFlags, globalBoolFlags, true)
	if !ok {
		return invocation{}, false
	}
	inv.globals = args[:len(args)-len(rest)]
	inv.root, inv.log, inv.logFormat = values["root"], values["log"], values["log-format"]
	if len(rest) > 0 {
		inv.command, inv.args = rest[0], rest[1:]
	}
	return inv, true
}

// createFlags are the arguments of `runc create` that the handler needs.
type createFlags struct {
	id, bundle, pidFile, consoleSocket string
	noPivot                            bool
}

// The flags of `runc create` (runc 1.1), by their long names; -b is --bundle.
var (
	createValueFlags = map[string]bool{"bundle": true, "b": true, "console-socket": true, "pid-file": true, "preserve-fds": true}
	createBoolFlags  = map[string]bool{"no-pivot": true, "no-new-keyring": true}
)

// parseCreate reads the arguments of `runc create`. ok is false for what it does not understand
// (an unknown flag, no or several container IDs, preserved file descriptors a restore cannot
// take): the handler then lets runc run it.
func parseCreate(args []string) (c createFlags, ok bool) {
	values, rest, ok := parseFlags(args, createValueFlags, createBoolFlags, false)
	if !ok || len(rest) != 1 || rest[0] == "" {
		return createFlags{}, false
	}
	if fds := values["preserve-fds"]; fds != "" && fds != "0" {
		return createFlags{}, false
	}
	c.id = rest[0]
	c.bundle = values["bundle"]
	if b := values["b"]; b != "" {
		c.bundle = b
	}
	c.pidFile, c.consoleSocket = values["pid-file"], values["console-socket"]
	c.noPivot = values["no-pivot"] == "true"
	return c, true
}

// parseFlags reads flags in urfave/cli's syntax (-name or --name, a value as the next argument or
// after "="), and returns the flags' values (a boolean flag's is "true", or what "=" set it to)
// and the other arguments. With stopAtArg it stops at the first argument that is not a flag (the
// global flags, before the command); without, flags and arguments may mix (a command's). Every
// argument after "--" is not a flag. ok is false for an unknown flag or a value flag without its
// value.
func parseFlags(args []string, valueFlags, boolFlags map[string]bool, stopAtArg bool) (values map[string]string, rest []string, ok bool) {
	values = map[string]string{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return values, append(rest, args[i+1:]...), true
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if stopAtArg {
				return values, args[i:], true
			}
			rest = append(rest, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		switch {
		case valueFlags[name] && hasValue:
			values[name] = value
		case valueFlags[name] && i+1 < len(args):
			i++
			values[name] = args[i]
		case boolFlags[name] && hasValue:
			values[name] = value
		case boolFlags[name]:
			values[name] = "true"
		default:
			return nil, nil, false
		}
	}
	return values, rest, true
}
