package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// AttachCmd is `cedana attach <pid>`: attach to the managed job whose process has that PID.
type AttachCmd struct {
	PID int32 `arg:"" help:"PID of a managed job's process."`
}

// Run finds the job and attaches to it.
func (c *AttachCmd) Run(ctx context.Context, env Env, client daemonv1connect.DaemonServiceClient) error {
	list, err := client.ListJobs(ctx, &daemonv1.ListJobsRequest{})
	if err != nil {
		return err
	}
	for _, job := range list.Jobs {
		if job.Pid == c.PID && job.Status == "running" {
			return attach(ctx, env, client, job.Jid, false)
		}
	}
	return fmt.Errorf("no running managed job has PID %d (see `cedana ps`; `cedana manage --help` tells how to adopt a running workload)", c.PID)
}

// JobAttachCmd is `cedana job attach <jid>`.
type JobAttachCmd struct {
	JID string `arg:"" name:"jid" help:"Job to attach to."`
}

// Run attaches to the job.
func (c *JobAttachCmd) Run(ctx context.Context, env Env, client daemonv1connect.DaemonServiceClient) error {
	return attach(ctx, env, client, c.JID, false)
}

// attach streams job jid's output to stdout and forwards stdin to it until it ends, then returns
// its exit code as the command's own (exit code 1 with an explanation when it is unknown).
func attach(ctx context.Context, env Env, client daemonv1connect.DaemonServiceClient, jid string, fromStart bool) error {
	stream, err := client.Attach(ctx, &daemonv1.AttachRequest{Jid: jid, FromStart: fromStart})
	if err != nil {
		return err
	}
	defer stream.Close()
	if env.Stdin != nil {
		go forwardStdin(ctx, env.Stdin, client, jid)
	}
	for stream.Receive() {
		msg := stream.Msg()
		if len(msg.Output) > 0 {
			if _, err := env.Stdout.Write(msg.Output); err != nil {
				return err
			}
		}
		if !msg.Ended {
			continue
		}
		if msg.ExitCode != nil {
			return exitCode(*msg.ExitCode)
		}
		fmt.Fprintf(env.Stderr, "cedana: job %s ended; %s\n", jid, msg.Detail)
		return exitCode(1)
	}
	if err := stream.Err(); err != nil {
		return err
	}
	return errors.New("the daemon ended the stream before the job ended")
}

// forwardStdin sends what is read from in to the job, until in ends.
func forwardStdin(ctx context.Context, in io.Reader, client daemonv1connect.DaemonServiceClient, jid string) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := client.WriteStdin(ctx, &daemonv1.WriteStdinRequest{Jid: jid, Data: append([]byte(nil), buf[:n]...)}); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
