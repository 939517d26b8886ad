package cli

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// MigrateCmd is `cedana migrate job <jid> | <runtime> ... --to HOST:PORT`: the daemon checkpoints
// the workload, leaving it stopped, streams the checkpoint to the destination daemon, which
// restores it, and kills it here only once it runs there.
type MigrateCmd struct {
	To             string   `required:"" help:"The destination daemon's TCP address (host:port); it needs the token (and TLS) of its config." placeholder:"HOST:PORT"`
	TokenFile      string   `name:"token-file" help:"File holding the destination's token (default: the token or token_file of this daemon's config)." placeholder:"FILE"`
	Lazy           bool     `help:"Restore lazily on the destination (restore --lazy), from its own copy of the images."`
	Compression    string   `help:"Codec of the streamed archive: tar (default), gzip, lz4, zlib or zstd." placeholder:"CODEC"`
	Stats          bool     `help:"Print the dump's phases and the downtime."`
	TCPEstablished bool     `name:"tcp-established" help:"Checkpoint established TCP connections."`
	FileLocks      bool     `help:"Checkpoint file locks."`
	ShellJob       bool     `help:"Allow a workload whose session or group leader is outside it."`
	External       []string `help:"External resource, in CRIU's --external syntax (repeatable)." placeholder:"RES" sep:"none"`

	Job JobTargetCmd `cmd:"" help:"Move a managed job; it keeps its JID on the destination."`

	kong.Plugins
}

// Run sends the migration built from the flags and the selected subcommand.
func (c *MigrateCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, _ config.Config, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.DumpCommand](kctx, "migrate")
	if err != nil {
		return err
	}
	dump := &daemonv1.DumpRequest{Type: kctx.Selected().Name}
	if err := leaf.FillDump(dump); err != nil {
		return err
	}
	req := &daemonv1.MigrateRequest{
		Type: dump.Type, Details: dump.Details, Jid: dump.Jid, To: c.To, Lazy: c.Lazy, Compression: c.Compression,
		Criu: &daemonv1.CriuOptions{TcpEstablished: c.TCPEstablished, FileLocks: c.FileLocks, ShellJob: c.ShellJob, External: c.External},
	}
	if c.TokenFile != "" {
		data, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		if req.Token = strings.TrimSpace(string(data)); req.Token == "" {
			return fmt.Errorf("--token-file %s is empty: it must hold the destination's token", c.TokenFile)
		}
	}
	resp, err := callWatched(ctx, g, env, client, func(id string) (*daemonv1.MigrateResponse, error) {
		req.OperationId = id
		return client.Migrate(ctx, req)
	})
	if err != nil {
		return err
	}
	what := fmt.Sprintf("PID %d", resp.GetRestore().GetPid())
	if resp.Jid != "" {
		what = fmt.Sprintf("job %s, %s", resp.Jid, what)
	}
	if err := printResult(env, g, resp, "Migrated to %s (%s there), downtime %s\n", resp.To, what, resp.GetDowntime().AsDuration()); err != nil {
		return err
	}
	if c.Stats && g.Output != "json" {
		fmt.Fprint(env.Stdout, "here (dump and send): ")
		printStats(env.Stdout, resp.Stats)
		if rs := resp.GetRestore().GetStats(); rs != nil {
			fmt.Fprint(env.Stdout, "there (receive and restore): ")
			printStats(env.Stdout, rs)
		}
	}
	return nil
}

// migrateCommands are the runtimes' dump subcommands, copied, for `cedana migrate <runtime>`.
func migrateCommands() kong.Plugins {
	var plugins kong.Plugins
	for _, cmd := range runtimeCommands(dumpCommands()) {
		v := reflect.ValueOf(cmd)
		fresh := reflect.New(v.Elem().Type())
		fresh.Elem().Set(v.Elem())
		plugins = append(plugins, fresh.Interface())
	}
	return plugins
}

// migrateHelp rewrites the help of `cedana migrate <runtime>`, whose commands are the runtime's
// dump subcommands (their help says "Checkpoint ..."), and says which runtimes cannot migrate.
func migrateHelp(k *kong.Kong) error {
	for _, node := range k.Model.Children {
		if node.Name != "migrate" {
			continue
		}
		for _, child := range node.Children {
			if child.Name == "job" {
				continue
			}
			child.Help = fmt.Sprintf("Move a %s workload, named as `cedana dump %s` names it.", child.Name, child.Name)
			if !features.Migrate.IsAvailable(child.Name) {
				child.Help += " Not yet: this runtime cannot migrate."
			}
		}
	}
	return nil
}
