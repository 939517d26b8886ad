package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// FreezeCmd is `cedana freeze <runtime> ...`: hold a workload stopped without checkpointing it.
type FreezeCmd struct {
	Job JobTargetCmd `cmd:"" help:"Freeze a managed job's workload."`

	kong.Plugins
}

// UnfreezeCmd is `cedana unfreeze <runtime> ...`: let a frozen or stopped workload run again.
type UnfreezeCmd struct {
	Job JobTargetCmd `cmd:"" help:"Let a managed job's workload run again."`

	kong.Plugins
}

// QueryCmd is `cedana query <runtime> ...`: describe workloads as cedana sees them.
type QueryCmd struct {
	kong.Plugins
}

// Run freezes the selected workload.
func (c *FreezeCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	target, err := selectedTarget(kctx, "freeze")
	if err != nil {
		return err
	}
	resp, err := client.Freeze(ctx, &daemonv1.FreezeRequest{Target: target})
	if err != nil {
		return err
	}
	return printResult(env, g, resp, "Frozen (%s%s): PID %s\n", resp.Method, detail(resp.Detail), joinPIDs(resp.Pids))
}

// Run lets the selected workload run again.
func (c *UnfreezeCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	target, err := selectedTarget(kctx, "unfreeze")
	if err != nil {
		return err
	}
	resp, err := client.Unfreeze(ctx, &daemonv1.UnfreezeRequest{Target: target})
	if err != nil {
		return err
	}
	return printResult(env, g, resp, "Unfrozen (%s%s): PID %s\n", resp.Method, detail(resp.Detail), joinPIDs(resp.Pids))
}

// Run describes the named workloads.
func (c *QueryCmd) Run(ctx context.Context, kctx *kong.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	leaf, err := selected[features.TargetCommand](kctx, "query")
	if err != nil {
		return err
	}
	details, err := leaf.Targets()
	if err != nil {
		return err
	}
	req := &daemonv1.QueryRequest{}
	for _, d := range details {
		req.Targets = append(req.Targets, &daemonv1.Target{Type: kctx.Selected().Name, Details: d})
	}
	return show(ctx, env, g, client.Query, req, printWorkloads)
}

// selectedTarget is the workload the selected subcommand of verb names: a job, or a runtime's.
func selectedTarget(kctx *kong.Context, verb string) (*daemonv1.Target, error) {
	if job, err := selected[*JobTargetCmd](kctx, verb); err == nil {
		return &daemonv1.Target{Jid: job.JID}, nil
	}
	leaf, err := selected[features.TargetCommand](kctx, verb)
	if err != nil {
		return nil, err
	}
	details, err := leaf.Targets()
	if err != nil {
		return nil, err
	}
	if len(details) != 1 {
		return nil, fmt.Errorf("%s takes one workload, not %d", verb, len(details))
	}
	return &daemonv1.Target{Type: kctx.Selected().Name, Details: details[0]}, nil
}

// printWorkloads writes one table row per process of each workload.
func printWorkloads(out io.Writer, resp *daemonv1.QueryResponse) error {
	w := newTable(out, "TYPE", "ID", "STATUS", "PID", "PPID", "STATE", "COMMAND", "BUNDLE", "NAMESPACE")
	for _, wl := range resp.Workloads {
		for i, p := range wl.Processes {
			typ, id, status, bundle, ns := wl.Type, wl.Id, wl.Status, orDash(wl.Bundle), orDash(wl.Namespace)
			if i > 0 {
				typ, id, status, bundle, ns = "", "", "", "", ""
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", typ, id, status, p.Pid, p.Ppid, p.State, orDash(strings.Join(p.Cmdline, " ")), bundle, ns)
		}
		if len(wl.Processes) == 0 {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t-\t-\t-\t%s\t%s\n", wl.Type, wl.Id, wl.Status, wl.Pid, orDash(wl.Bundle), orDash(wl.Namespace))
		}
	}
	return w.Flush()
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

var (
	_ features.TargetCommand = (*missingRuntimeCmd)(nil)
	_ features.DumpCommand   = (*JobTargetCmd)(nil)
)

// Targets implements features.TargetCommand by failing.
func (c *missingRuntimeCmd) Targets() ([]*daemonv1.Details, error) { return nil, c.err() }
