package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/health"
)

// CheckpointCmd is `cedana checkpoint ...`: the daemon's catalog of recorded checkpoints.
type CheckpointCmd struct {
	List    CheckpointListCmd    `cmd:"" aliases:"ls" help:"List recorded checkpoints."`
	Inspect CheckpointInspectCmd `cmd:"" help:"Show a checkpoint's record and metadata."`
	Delete  CheckpointDeleteCmd  `cmd:"" aliases:"rm" help:"Delete a checkpoint's files and its record."`
}

// CheckpointListCmd is `cedana checkpoint list [--jid J]`.
type CheckpointListCmd struct {
	JID string `name:"jid" help:"Only the checkpoints of this job." placeholder:"JID"`
}

// Run prints the checkpoint table, or the ListCheckpointsResponse with --output json.
func (c *CheckpointListCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	resp, err := client.ListCheckpoints(ctx, &daemonv1.ListCheckpointsRequest{Jid: c.JID})
	if err != nil {
		return err
	}
	if g.Output == "json" {
		return printJSON(env.Stdout, resp)
	}
	return printCheckpointTable(env.Stdout, resp.GetCheckpoints())
}

// printCheckpointTable writes one row per checkpoint under a header.
func printCheckpointTable(out io.Writer, entries []*daemonv1.CheckpointEntry) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tJOB\tTYPE\tSIZE\tCREATED\tPATH")
	for _, e := range entries {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n",
			e.GetId(), orDash(e.GetJid()), orDash(e.GetType()), humanSize(e.GetSizeBytes()),
			formatTime(e.GetCreatedAt()), orDash(e.GetPath()))
	}
	return w.Flush()
}

// CheckpointInspectCmd is `cedana checkpoint inspect <id>`.
type CheckpointInspectCmd struct {
	ID string `arg:"" name:"id" help:"Checkpoint ID."`
}

// Run prints the record and the checkpoint's metadata, or the CheckpointEntry with --output json.
func (c *CheckpointInspectCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	entry, err := getCheckpoint(ctx, client, c.ID)
	if err != nil {
		return err
	}
	if g.Output == "json" {
		return printJSON(env.Stdout, entry)
	}
	return printCheckpoint(env.Stdout, entry)
}

// printCheckpoint writes a catalog entry and its metadata as key/value lines.
func printCheckpoint(out io.Writer, e *daemonv1.CheckpointEntry) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "id\t%s\n", e.GetId())
	fmt.Fprintf(w, "job\t%s\n", orDash(e.GetJid()))
	fmt.Fprintf(w, "type\t%s\n", orDash(e.GetType()))
	fmt.Fprintf(w, "path\t%s\n", orDash(e.GetPath()))
	fmt.Fprintf(w, "size\t%s\n", humanSize(e.GetSizeBytes()))
	fmt.Fprintf(w, "created\t%s\n", formatTime(e.GetCreatedAt()))
	if cp := e.GetCheckpoint(); cp != nil {
		fmt.Fprintf(w, "name\t%s\n", orDash(cp.GetName()))
		fmt.Fprintf(w, "pid\t%s\n", pidString(cp.GetPid()))
		fmt.Fprintf(w, "pids\t%s\n", joinPIDs(cp.GetPids()))
		fmt.Fprintf(w, "cmdline\t%s\n", orDash(strings.Join(cp.GetCmdline(), " ")))
		fmt.Fprintf(w, "hostname\t%s\n", orDash(cp.GetHostname()))
		fmt.Fprintf(w, "kernel\t%s\n", orDash(cp.GetKernel()))
		fmt.Fprintf(w, "criu version\t%s\n", health.FormatCRIUVersion(cp.GetCriuVersion()))
		fmt.Fprintf(w, "cedana version\t%s\n", orDash(cp.GetCedanaVersion()))
		fmt.Fprintf(w, "options\t%s\n", formatOptions(cp.GetOptions()))
		fmt.Fprintf(w, "details\t%s\n", formatDetails(cp.GetDetails()))
	} else {
		fmt.Fprintf(w, "metadata\t-\n")
	}
	return w.Flush()
}

// CheckpointDeleteCmd is `cedana checkpoint delete <id>`.
type CheckpointDeleteCmd struct {
	ID string `arg:"" name:"id" help:"Checkpoint ID."`
}

// Run looks the checkpoint up (to name its path), deletes it, and prints what went; with --output
// json it prints the deleted CheckpointEntry.
func (c *CheckpointDeleteCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	entry, err := getCheckpoint(ctx, client, c.ID)
	if err != nil {
		return err
	}
	if _, err := client.DeleteCheckpoint(ctx, &daemonv1.DeleteCheckpointRequest{Id: c.ID}); err != nil {
		return err
	}
	return printResult(env, g, entry, "Deleted checkpoint %s (%s)\n", c.ID, orDash(entry.GetPath()))
}

// getCheckpoint fetches one catalog entry.
func getCheckpoint(ctx context.Context, client daemonv1connect.DaemonServiceClient, id string) (*daemonv1.CheckpointEntry, error) {
	resp, err := client.GetCheckpoint(ctx, &daemonv1.GetCheckpointRequest{Id: id})
	if err != nil {
		return nil, err
	}
	entry := resp.GetCheckpoint()
	if entry == nil {
		return nil, fmt.Errorf("daemon returned no checkpoint for %q", id)
	}
	return entry, nil
}

// formatOptions lists the CRIU options that were set, "none" when none were.
func formatOptions(o *daemonv1.CriuOptions) string {
	var opts []string
	if o.GetLeaveRunning() {
		opts = append(opts, "leave-running")
	}
	if o.GetTcpEstablished() {
		opts = append(opts, "tcp-established")
	}
	if o.GetFileLocks() {
		opts = append(opts, "file-locks")
	}
	if o.GetShellJob() {
		opts = append(opts, "shell-job")
	}
	if o.GetLinkRemap() {
		opts = append(opts, "link-remap")
	}
	for _, ext := range o.GetExternal() {
		opts = append(opts, "external="+ext)
	}
	if len(opts) == 0 {
		return "none"
	}
	return strings.Join(opts, ", ")
}

// joinPIDs renders a PID list, "-" when empty.
func joinPIDs(pids []int32) string {
	if len(pids) == 0 {
		return "-"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, " ")
}
