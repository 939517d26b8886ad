// Package cli is cedana's command line, built with kong. Runtime subcommands (`dump process`, ...)
// come from the features table; every command except `daemon start`, `check`, `features` and `k8s`
// is a Connect client of the daemon.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/k8s"
	"github.com/cedana/cedana/version"
)

// Globals are the flags every command takes.
type Globals struct {
	Address   string `help:"Daemon address: a unix socket path, or host:port with --protocol tcp (default /run/cedana.sock; env CEDANA_ADDRESS)." placeholder:"ADDR"`
	Protocol  string `help:"Daemon protocol: unix or tcp (env CEDANA_PROTOCOL)." enum:"unix,tcp," default:""`
	ConfigDir string `help:"Directory holding config.json (default /etc/cedana; env CEDANA_CONFIG_DIR)." type:"path" placeholder:"DIR"`
	// ConfigJSON is Cedana's --config.
	ConfigJSON  string `name:"config" help:"Configuration JSON merged over config.json's for this command (CEDANA_* variables still win)." placeholder:"JSON"`
	MergeConfig bool   `help:"Write the configuration (config.json, --config, CEDANA_* variables, --address, --protocol) back into config.json."`
	Output      string `help:"Output format: text or json." enum:"text,json" default:"text" short:"o"`

	Version kong.VersionFlag `help:"Print the version and exit."`
}

// CLI is the whole grammar.
type CLI struct {
	Globals

	Daemon     DaemonCmd     `cmd:"" help:"Run or query the cedana daemon."`
	Run        RunCmd        `cmd:"" help:"Start a workload as a managed job (its flags may also follow the program's words)."`
	Exec       ExecCmd       `cmd:"" help:"Start a program as a managed job (same as run process)."`
	Manage     ManageCmd     `cmd:"" help:"Adopt a running workload as a managed job."`
	Ps         PsCmd         `cmd:"" help:"List managed jobs (same as job list)."`
	Job        JobCmd        `cmd:"" help:"Inspect and control managed jobs."`
	Kill       JobKillCmd    `cmd:"" help:"Signal jobs (same as job kill)."`
	Delete     JobDeleteCmd  `cmd:"" help:"Forget jobs and delete their checkpoints (same as job delete)."`
	Attach     AttachCmd     `cmd:"" help:"Attach to the managed job whose process has this PID."`
	Dump       DumpCmd       `cmd:"" help:"Checkpoint a workload."`
	Restore    RestoreCmd    `cmd:"" help:"Restore a workload from a checkpoint."`
	Migrate    MigrateCmd    `cmd:"" help:"Move a running workload or job to another daemon, its checkpoint streamed there."`
	Checkpoint CheckpointCmd `cmd:"" help:"List, inspect and delete recorded checkpoints."`
	Freeze     FreezeCmd     `cmd:"" help:"Hold a workload stopped without checkpointing it."`
	Unfreeze   UnfreezeCmd   `cmd:"" help:"Let a frozen or stopped workload run again."`
	Query      QueryCmd      `cmd:"" help:"Describe workloads as cedana sees them: processes, state, runtime details."`
	Check      CheckCmd      `cmd:"" help:"Check that this machine can checkpoint and restore (in-process, no daemon needed)."`
	Features   FeaturesCmd   `cmd:"" help:"List the features of this binary and the runtimes that provide them."`
	Version    VersionCmd    `cmd:"" help:"Print the version, commit, Go and CRIU versions and the runtimes compiled in (no daemon needed)."`
	K8s        K8sCmd        `cmd:"" name:"k8s" help:"Set up a Kubernetes node for cedana (as root on the node, no daemon needed)."`
	ConfigCmd  ConfigCmd     `cmd:"" name:"config" help:"Show the configuration in effect."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script: cedana completion bash|zsh|fish."`
	Internal   InternalCmd   `cmd:"" hidden:"" help:"Commands cedana runs itself."`
	Complete   CompleteCmd   `cmd:"" name:"__complete" hidden:"" help:"Complete a command line (called by the completion scripts)."`
}

// Env is what commands get besides their flags.
type Env struct {
	// Stdin is forwarded to jobs by attach; nil forwards nothing.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// Main runs the command line args and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) (code int) {
	cli := &CLI{}
	// kong exits after --help and --version; turn that into a return instead.
	defer func() {
		if r := recover(); r != nil {
			exit, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(exit)
		}
	}()
	kctx, globals, err := parseCommandLine(cli, env, args)
	if err != nil {
		var parseErr *kong.ParseError
		if errors.As(err, &parseErr) {
			fmt.Fprintf(env.Stderr, "cedana: error: %v\n", err)
			return parseErr.ExitCode()
		}
		fmt.Fprintf(env.Stderr, "cedana: error: %v\n", err)
		return 2
	}
	loaded, err := loadConfig(globals, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "cedana: error: %v\n", err)
		return 2
	}
	if kctx.Command() != "daemon start" { // the daemon logs them
		for _, w := range loaded.Warnings {
			fmt.Fprintf(env.Stderr, "cedana: warning: %s\n", w)
		}
	}
	cfg := loaded.Config
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(cfg, loaded, env, globals)
	if err := kctx.BindToProvider(func() (daemonv1connect.DaemonServiceClient, error) {
		return NewClient(cfg)
	}); err != nil {
		panic(fmt.Sprintf("cli: the client provider's signature: %v", err)) // a programming mistake
	}
	if err := kctx.Run(); err != nil {
		var exit exitCode
		if errors.As(err, &exit) {
			return int(exit)
		}
		fmt.Fprintf(env.Stderr, "cedana: error: %s\n", describe(err, cfg))
		return 1
	}
	return 0
}

// newParser builds the whole grammar, with every runtime's subcommands and placeholders for the
// runtimes this binary lacks.
func newParser(cli *CLI, env Env) (*kong.Kong, error) {
	fillPlugins(cli)
	return kong.New(cli, parserOptions(env)...)
}

// fillPlugins mounts every runtime's subcommands, and placeholders for the runtimes this binary
// lacks, under the verbs of cli.
func fillPlugins(cli *CLI) {
	cli.Dump.Plugins = runtimeCommands(dumpCommands())
	cli.Dump.Pod.Plugins = podDumpFlags()
	cli.Restore.Plugins = runtimeCommands(restoreCommands())
	cli.Migrate.Plugins = migrateCommands()
	cli.Run.Plugins = runtimeCommands(verbCommands{features.RunCmd})
	cli.Manage.Plugins = runtimeCommands(verbCommands{features.ManageCmd})
	cli.Freeze.Plugins = runtimeCommands(verbCommands{features.FreezeCmd})
	cli.Unfreeze.Plugins = runtimeCommands(verbCommands{features.UnfreezeCmd})
	cli.Query.Plugins = runtimeCommands(verbCommands{features.QueryCmd})
	cli.Exec.Plugins = execArgs()
}

// parserOptions are kong's options for cedana's grammar, whole or pruned to one command.
func parserOptions(env Env) []kong.Option {
	return []kong.Option{
		kong.Name("cedana"),
		kong.Description("Checkpoint and restore processes and containers with CRIU."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": version.Version, "k8sContainerdConfig": k8s.DefaultContainerdConfig, "k8sBinDir": k8s.DefaultBinDir},
		kong.Writers(env.Stdout, env.Stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.PostBuild(migrateHelp),
	}
}

// loadConfig reads the configuration, applies the global flags on top, and with --merge-config
// writes it into config.json.
func loadConfig(g *Globals, env Env) (config.Loaded, error) {
	l, err := config.LoadWith(config.Options{Dir: g.ConfigDir, Getenv: env.Getenv, JSON: g.ConfigJSON})
	if err != nil {
		return l, err
	}
	if g.Address != "" {
		l.Config.Address, l.Sources["address"] = g.Address, config.SourceFlag
	}
	if g.Protocol != "" {
		l.Config.Protocol, l.Sources["protocol"] = g.Protocol, config.SourceFlag
	}
	if err := l.Config.Validate(); err != nil {
		return l, err
	}
	if g.MergeConfig {
		mode, err := l.WriteFile(l.Config)
		if err != nil {
			return l, err
		}
		fmt.Fprintf(env.Stderr, "cedana: wrote the configuration into %s (mode %04o)\n", l.File, mode)
	}
	return l, nil
}

// exitCode is returned by a command that has printed its own failure and only needs an exit code.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// describe turns an error into the one line the user sees.
func describe(err error, cfg config.Config) string {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return err.Error()
	}
	if cerr.Code() == connect.CodeUnavailable && errors.Is(err, fs.ErrPermission) {
		return fmt.Sprintf("permission denied on the cedana daemon's socket %s: the daemon accepts root (and members of the groups in its auth.allowed_groups): "+
			"run as root, or ask an administrator to let a group of yours in", cfg.Address)
	}
	if cerr.Code() == connect.CodeUnavailable && !connect.IsWireError(cerr) && isDialError(cerr) {
		return fmt.Sprintf("cannot reach the cedana daemon at %s (%s): is it running? Start it with `cedana daemon start`, or point --address/CEDANA_ADDRESS at it", cfg.Address, cfg.Protocol)
	}
	return cerr.Message()
}

// isDialError tells a client's failure to reach the daemon; an unavailable error the daemon sent
// (a containerd or an S3 endpoint it could not reach) is a wire error, told by the caller.
func isDialError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "dial") || strings.Contains(msg, "connect: ") || strings.Contains(msg, "no such file")
}

// Run is a convenience for main: Main with the process's own stdio and environment.
func Run(ctx context.Context) int {
	return Main(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
}
