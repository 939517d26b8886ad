package cli

import (
	"context"
	"fmt"

	"github.com/cedana/cedana/config"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/health"
)

// CheckCmd is `cedana check`: the health report of this binary on this machine, without a daemon.
type CheckCmd struct{}

// Run prints the report; the exit code is 1 when it lists problems.
func (c *CheckCmd) Run(ctx context.Context, g *Globals, cfg config.Config, env Env) error {
	return printHealth(env, g.Output, health.Report(ctx, cfg.CRIU.BinaryPath))
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
		if err := w.Flush(); err != nil {
			return err
		}
		for _, e := range r.Errors {
			fmt.Fprintf(env.Stdout, "problem: %s\n", e)
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
