package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"

	"github.com/cedana/cedana/config"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/health"
)

// CheckCmd is `cedana check`: the health report of this binary on this machine, without a daemon.
type CheckCmd struct {
	Full bool `help:"Also dump and restore a tiny process, step by step (spawn, dump, restore, verify, cleanup)."`
}

// Run prints the report; the exit code is 1 when it lists problems.
func (c *CheckCmd) Run(ctx context.Context, g *Globals, cfg config.Config, env Env) error {
	r := health.Report(ctx, cfg.CRIU.BinaryPath)
	if c.Full {
		log := config.Log{Level: "error", Format: cfg.Log.Format}.Logger(env.Stderr) // the report says what is wrong
		health.AddFull(ctx, r, chain.NewEnv(ctx, cfg, log), adapters.State{Log: log})
	}
	return printHealth(env, g.Output, r)
}

func printHealth(env Env, output string, r *daemonv1.HealthCheckResponse) error {
	if output == "json" {
		if err := printJSON(env.Stdout, r); err != nil {
			return err
		}
	} else {
		w := newTable(env.Stdout)
		fmt.Fprintf(w, "cedana\t%s\n", r.Version)
		fmt.Fprintf(w, "kernel\t%s\n", r.Kernel)
		fmt.Fprintf(w, "criu\t%s (%s)\n", orDash(r.CriuPath), health.FormatCRIUVersion(r.CriuVersion))
		check := "ok: " + r.CriuCheck
		if !r.CriuCheckOk {
			check = "FAILED"
		}
		fmt.Fprintf(w, "criu check\t%s\n", check)
		if r.LazyRestore != "" {
			fmt.Fprintf(w, "lazy restore\t%s\n", r.LazyRestore)
		}
		if r.ImageStreaming != "" {
			fmt.Fprintf(w, "image streaming\t%s\n", r.ImageStreaming)
		}
		for _, rt := range r.Runtimes {
			state := "usable"
			switch {
			case !rt.CompiledIn:
				state = "absent"
			case !rt.Usable:
				state = "unusable"
			}
			fmt.Fprintf(w, "runtime %s\t%s\t%s\n", rt.Name, state, rt.Detail)
		}
		for _, s := range r.Steps {
			state := "ok"
			if !s.Ok {
				state = "FAILED"
			}
			fmt.Fprintf(w, "step %s\t%s\t%s\t%s\n", s.Name, state, s.Took.AsDuration().Round(time.Millisecond), s.Detail)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		for _, e := range r.Errors {
			fmt.Fprintf(env.Stdout, "problem: %s\n", e)
		}
		for _, e := range r.Warnings {
			fmt.Fprintf(env.Stdout, "warning: %s\n", e)
		}
	}
	if len(r.Errors) > 0 {
		return exitCode(1)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
