package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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
	return show(ctx, env, g, client.ListCheckpoints, &daemonv1.ListCheckpointsRequest{Jid: c.JID}, printCheckpointTable)
}

// printCheckpointTable writes one row per checkpoint under a header.
func printCheckpointTable(out io.Writer, resp *daemonv1.ListCheckpointsResponse) error {
	w := newTable(out, "ID", "JOB", "TYPE", "SIZE", "CREATED", "PATH")
	for _, e := range resp.GetCheckpoints() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n",
			e.GetId(), orDash(e.GetJid()), orDash(e.GetType()), humanSize(e.GetSizeBytes()),
			formatTime(e.GetCreatedAt()), orDash(e.GetPath()))
	}
	return w.Flush()
}

// CheckpointInspectCmd is `cedana checkpoint inspect <id> [-t ps|fd|mem|rss|sk]`.
type CheckpointInspectCmd struct {
	ID   string `arg:"" name:"id" optional:"" help:"Checkpoint ID (or --path)."`
	Path string `help:"Inspect the checkpoint at this directory, archive or s3:// URL instead." placeholder:"PATH"`
	Type string `short:"t" enum:"ps,fd,mem,rss,sk," default:"" help:"Decode the CRIU images (in the daemon): ps (process tree), fd (open files), mem (mappings), rss (resident pages), sk (sockets)."`
}

// Validate (called by kong) requires an ID or --path, and --type with --path.
func (c *CheckpointInspectCmd) Validate() error {
	switch {
	case c.ID == "" && c.Path == "":
		return errors.New(`expected "<id>" or --path: give a checkpoint ID (see ` + "`cedana checkpoint list`" + `) or its path`)
	case c.ID != "" && c.Path != "":
		return errors.New("both a checkpoint ID and --path: give one of them")
	case c.Path != "" && c.Type == "":
		return errors.New("--path needs --type (-t): only the images can be inspected by path")
	}
	return nil
}

// Run prints the record and the checkpoint's metadata, or the CheckpointEntry with --output json;
// with --type, what the daemon decoded of the images.
func (c *CheckpointInspectCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	if c.Type != "" {
		return c.inspectImages(ctx, g, env, client)
	}
	entry, err := getCheckpoint(ctx, client, c.ID)
	if err != nil {
		return err
	}
	return printAs(env, g, entry, printCheckpoint)
}

// printCheckpoint writes a catalog entry and its metadata as key/value lines.
func printCheckpoint(out io.Writer, e *daemonv1.CheckpointEntry) error {
	f := append(fields{{"id", e.GetId()}, {"job", orDash(e.GetJid())}}, entryFields(e, "")...)
	cp := e.GetCheckpoint()
	if cp == nil {
		return append(f, field{"metadata", "-"}).print(out)
	}
	return append(f, fields{
		{"name", orDash(cp.GetName())},
		{"pid", pidString(cp.GetPid())},
		{"pids", joinPIDs(cp.GetPids())},
		{"cmdline", orDash(strings.Join(cp.GetCmdline(), " "))},
		{"hostname", orDash(cp.GetHostname())},
		{"kernel", orDash(cp.GetKernel())},
		{"criu version", health.FormatCRIUVersion(cp.GetCriuVersion())},
		{"cedana version", orDash(cp.GetCedanaVersion())},
		{"options", formatOptions(cp.GetOptions())},
		{"details", formatDetails(cp.GetDetails())},
	}...).print(out)
}

// entryFields are a catalog entry's runtime, location, size and time, each key after prefix.
func entryFields(e *daemonv1.CheckpointEntry, prefix string) fields {
	return fields{
		{prefix + "type", orDash(e.GetType())},
		{prefix + "path", orDash(e.GetPath())},
		{prefix + "size", humanSize(e.GetSizeBytes())},
		{prefix + "created", formatTime(e.GetCreatedAt())},
	}
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
