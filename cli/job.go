package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// PsCmd is `cedana ps`: the managed jobs, as `cedana job list` prints them.
type PsCmd = JobListCmd

// JobCmd is `cedana job ...`: inspect and control managed jobs.
type JobCmd struct {
	List    JobListCmd    `cmd:"" aliases:"ls" help:"List managed jobs (same as ps)."`
	Inspect JobInspectCmd `cmd:"" help:"Show everything known about a job."`
	Kill    JobKillCmd    `cmd:"" help:"Signal jobs (SIGKILL unless --signal)."`
	Delete  JobDeleteCmd  `cmd:"" aliases:"rm" help:"Forget jobs and delete their checkpoints."`
	Attach  JobAttachCmd  `cmd:"" help:"Stream a job's output and forward stdin to it; exit with its exit code."`
}

// JobListCmd is `cedana job list [--jid J]...`, also `cedana ps`.
type JobListCmd struct {
	JIDs []string `name:"jid" help:"Only this job (repeatable)." placeholder:"JID"`
}

// Run prints the job table, or the ListJobsResponse with --output json.
func (c *JobListCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	resp, err := client.ListJobs(ctx, &daemonv1.ListJobsRequest{})
	if err != nil {
		return err
	}
	if len(c.JIDs) > 0 {
		resp.Jobs = slices.DeleteFunc(resp.Jobs, func(j *daemonv1.Job) bool { return !slices.Contains(c.JIDs, j.GetJid()) })
	}
	return printAs(env, g, resp, printJobTable)
}

// printJobTable writes one row per job under a header, the header alone when there are none.
func printJobTable(out io.Writer, resp *daemonv1.ListJobsResponse) error {
	w := newTable(out, "JOB", "TYPE", "PID", "STATUS", "CHECKPOINT", "SIZE", "LOG")
	for _, j := range resp.GetJobs() {
		path, size := "-", "-"
		if cp := j.GetLatestCheckpoint(); cp != nil {
			path, size = orDash(cp.GetPath()), humanSize(cp.GetSizeBytes())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			j.GetJid(), orDash(j.GetType()), pidString(j.GetPid()), jobStatus(j), path, size, orDash(j.GetLog()))
	}
	return w.Flush()
}

// JobInspectCmd is `cedana job inspect <jid>`.
type JobInspectCmd struct {
	JID string `arg:"" name:"jid" help:"Job ID."`
}

// Run prints the job's fields, one per line, or the Job with --output json.
func (c *JobInspectCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	resp, err := client.GetJob(ctx, &daemonv1.GetJobRequest{Jid: c.JID})
	if err != nil {
		return err
	}
	job := resp.GetJob()
	if job == nil {
		return fmt.Errorf("daemon returned no job for %q", c.JID)
	}
	return printAs(env, g, job, printJob)
}

// printJob writes every field of a job as key/value lines.
func printJob(out io.Writer, j *daemonv1.Job) error {
	exit := "-"
	if j.ExitCode != nil {
		exit = strconv.Itoa(int(j.GetExitCode()))
	}
	f := fields{
		{"jid", j.GetJid()},
		{"type", orDash(j.GetType())},
		{"pid", pidString(j.GetPid())},
		{"status", jobStatus(j)},
		{"exit code", exit},
		{"lazy pages", orDash(j.GetLazyPages())},
		{"log", orDash(j.GetLog())},
		{"details", formatDetails(j.GetDetails())},
		{"created", formatTime(j.GetCreatedAt())},
		{"updated", formatTime(j.GetUpdatedAt())},
	}
	cp := j.GetLatestCheckpoint()
	if cp == nil {
		return append(f, field{"latest checkpoint", "-"}).print(out)
	}
	f = append(f, field{"latest checkpoint", orDash(cp.GetId())})
	return append(f, entryFields(cp, "  ")...).print(out)
}

// JobKillCmd is `cedana job kill <jid>... [--signal SIG]`, also `cedana kill`.
type JobKillCmd struct {
	JIDs   []string `arg:"" optional:"" name:"jid" help:"Job IDs."`
	All    bool     `short:"a" help:"Signal every running job."`
	Signal string   `short:"s" default:"KILL" help:"Signal to send, by name (TERM, SIGTERM) or number (default KILL)." placeholder:"SIG"`

	signal unix.Signal
}

// Validate parses --signal, so that a bad one is a usage error found before the daemon is called.
func (c *JobKillCmd) Validate() error {
	sig, err := parseSignal(c.Signal)
	if err != nil {
		return fmt.Errorf("--signal: %w", err)
	}
	c.signal = sig
	return checkSelection(c.JIDs, c.All)
}

// Run signals the jobs and prints one line per job, or the KillJobResponse with --output json.
func (c *JobKillCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	if c.signal == 0 {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	if c.All {
		jids, err := selectJobs(ctx, client, func(j *daemonv1.Job) bool { return j.GetStatus() == "running" })
		if err != nil {
			return err
		}
		c.JIDs = jids
	}
	resp := &daemonv1.KillJobResponse{}
	if len(c.JIDs) > 0 { // none with --all and no running job
		var err error
		if resp, err = client.KillJob(ctx, &daemonv1.KillJobRequest{Jids: c.JIDs, Signal: int32(c.signal)}); err != nil {
			return err
		}
	}
	if g.Output == "json" {
		return printJSON(env.Stdout, resp)
	}
	jids := c.JIDs
	if jobs := resp.GetJobs(); len(jobs) > 0 {
		jids = make([]string, len(jobs))
		for i, j := range jobs {
			jids[i] = j.GetJid()
		}
	}
	for _, jid := range jids {
		if c.signal == unix.SIGKILL {
			fmt.Fprintf(env.Stdout, "Killed %s\n", jid)
		} else {
			fmt.Fprintf(env.Stdout, "Signalled %s with %s\n", jid, signalName(c.signal))
		}
	}
	return nil
}

// JobDeleteCmd is `cedana job delete <jid>... [--force]`, also `cedana delete`.
type JobDeleteCmd struct {
	JIDs  []string `arg:"" optional:"" name:"jid" help:"Job IDs."`
	All   bool     `short:"a" help:"Delete every halted job; with --force every job."`
	Force bool     `short:"f" help:"Delete running jobs too, killing them first."`
}

// Validate requires job IDs or --all.
func (c *JobDeleteCmd) Validate() error { return checkSelection(c.JIDs, c.All) }

// Run deletes the jobs and prints one line per job, or the DeleteJobResponse with --output json.
func (c *JobDeleteCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	if c.All {
		jids, err := selectJobs(ctx, client, func(j *daemonv1.Job) bool { return c.Force || j.GetStatus() != "running" })
		if err != nil {
			return err
		}
		c.JIDs = jids
	}
	resp := &daemonv1.DeleteJobResponse{}
	if len(c.JIDs) > 0 { // none with --all and no job to delete
		var err error
		if resp, err = client.DeleteJob(ctx, &daemonv1.DeleteJobRequest{Jids: c.JIDs, Force: c.Force}); err != nil {
			return err
		}
	}
	if g.Output == "json" {
		return printJSON(env.Stdout, resp)
	}
	for _, jid := range c.JIDs {
		fmt.Fprintf(env.Stdout, "Deleted %s\n", jid)
	}
	return nil
}

// jobStatus renders a job's status: "running", "halted (exit N)" when the exit code is known,
// "halted" otherwise; "migrated (to host:port)" for a job moved to another daemon.
func jobStatus(j *daemonv1.Job) string {
	status := j.GetStatus()
	var notes []string
	if status == "" {
		status = "halted"
	}
	if to := j.GetMigratedTo(); to != "" {
		notes = append(notes, "to "+to)
	}
	if j.ExitCode != nil && status != "running" {
		notes = append(notes, fmt.Sprintf("exit %d", j.GetExitCode()))
	}
	switch lazy := j.GetLazyPages(); {
	case strings.HasPrefix(lazy, "failed"):
		notes = append(notes, "lazy pages failed")
	case lazy != "":
		notes = append(notes, "lazy pages loading")
	}
	if len(notes) == 0 {
		return status
	}
	return fmt.Sprintf("%s (%s)", status, strings.Join(notes, "; "))
}

// maxSignal is the highest Linux signal number (SIGRTMAX).
const maxSignal = 64

// parseSignal reads a signal by name, with or without the SIG prefix and in any case ("TERM",
// "sigterm"), or by number ("15").
func parseSignal(s string) (unix.Signal, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal number %d out of range 1-%d", n, maxSignal)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// signalName is "SIGTERM" for a named signal, "signal N" for the others.
func signalName(sig unix.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// humanSize renders a byte count in B, KiB, MiB or GiB, with one decimal above bytes.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / unit
	for _, suffix := range []string{"KiB", "MiB"} {
		// Move up once the rounded value would print as 1024.0.
		if v < unit-0.05 {
			return fmt.Sprintf("%.1f %s", v, suffix)
		}
		v /= unit
	}
	return fmt.Sprintf("%.1f GiB", v)
}

// formatTime renders a timestamp in local time, "-" when unset.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().In(time.Local).Format("2006-01-02 15:04:05")
}

// pidString renders a PID, "-" when unknown.
func pidString(pid int32) string {
	if pid <= 0 {
		return "-"
	}
	return strconv.Itoa(int(pid))
}

// formatDetails renders the runtime-specific description of a workload, whichever runtime gave
// it: "<runtime> field=value ...", in the order of the message's fields.
func formatDetails(d *daemonv1.Details) string {
	var parts []string
	for _, set := range setFields(d.ProtoReflect()) {
		words := []string{string(set.fd.Name())}
		if set.fd.Message() != nil {
			for _, f := range setFields(set.v.Message()) {
				words = append(words, fmt.Sprintf("%s=%s", f.fd.Name(), formatValue(f.fd, f.v)))
			}
		}
		parts = append(parts, strings.Join(words, " "))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// setField is a field that a message has set, and its value.
type setField struct {
	fd protoreflect.FieldDescriptor
	v  protoreflect.Value
}

// setFields lists the fields m has set, in the order the message declares them.
func setFields(m protoreflect.Message) []setField {
	var out []setField
	if !m.IsValid() {
		return nil
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); m.Has(fd) {
			out = append(out, setField{fd, m.Get(fd)})
		}
	}
	return out
}

// formatValue renders a scalar or a list of scalars.
func formatValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if !fd.IsList() {
		return fmt.Sprint(v.Interface())
	}
	items := make([]string, v.List().Len())
	for i := range items {
		items[i] = fmt.Sprint(v.List().Get(i).Interface())
	}
	return "[" + strings.Join(items, ",") + "]"
}
