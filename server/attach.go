package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"connectrpc.com/connect"
	"github.com/fsnotify/fsnotify"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
)

// Attach learns of new output from inotify on the job's log and of the job's end from the jobs
// manager. attachRecheck is a backstop for a notice that never comes (an inotify queue
// overflow, a log on a filesystem that notifies nothing); attachPoll replaces the notices when
// the log cannot be watched (the inotify instances of the user are all in use).
const (
	attachRecheck = time.Second
	attachPoll    = 50 * time.Millisecond
)

// Attach follows a job's log until the job ends, then sends its exit code. A job that has already
// ended gets the tail of its log and its exit code.
func (s *service) Attach(ctx context.Context, req *daemonv1.AttachRequest, stream *connect.ServerStream[daemonv1.AttachResponse]) error {
	if err := validateAttach(req); err != nil {
		return err
	}
	job, err := s.jobs.Get(ctx, req.Jid)
	if err != nil {
		return err
	}
	if job.Log == "" {
		return errs.Precondition("job %s has no log to attach to (it was adopted, not started by cedana)", job.JID)
	}
	f, err := os.Open(job.Log)
	if err != nil {
		return errs.Precondition("open the log of job %s: %w", job.JID, err)
	}
	defer f.Close()

	if !jobs.Running(job) {
		if job, err = s.settled(ctx, job); err != nil {
			return err
		}
		tail, err := tailLines(f, int(req.TailLines))
		if err != nil {
			return err
		}
		if err := stream.Send(&daemonv1.AttachResponse{Output: tail}); err != nil {
			return err
		}
		return stream.Send(endOf(job))
	}
	// Watched before the first read: whatever is written after it is noticed.
	written, recheck, unwatch := watchLog(job.Log)
	defer unwatch()
	if !req.FromStart {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			return err
		}
	}
	// An empty first message sends the response headers: the client knows it is attached.
	if err := stream.Send(&daemonv1.AttachResponse{}); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := stream.Send(&daemonv1.AttachResponse{Output: bytes.Clone(buf[:n])}); err != nil {
				return err
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		// Nothing new: has the job ended? Read what it wrote last before saying so.
		ended := s.jobs.Ended()
		job, err = s.jobs.Get(ctx, job.JID)
		if err != nil {
			return err
		}
		if job.Status != store.JobRunning {
			if rest, _ := io.ReadAll(f); len(rest) > 0 {
				if err := stream.Send(&daemonv1.AttachResponse{Output: rest}); err != nil {
					return err
				}
			}
			return stream.Send(endOf(job))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return fmt.Errorf("%w: attach again once it is back (job %s keeps running)", errShuttingDown, job.JID)
		case <-written:
		case <-ended:
		case <-time.After(recheck):
		}
	}
}

// watchLog watches the log at path with inotify. It returns a channel that receives when the
// log changes (nil, which never receives, when it cannot be watched), how long to wait for a
// change before looking anyway, and the function that ends the watch.
func watchLog(path string) (written <-chan struct{}, recheck time.Duration, unwatch func()) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(path); err != nil {
			w.Close()
		}
	}
	if err != nil {
		return nil, attachPoll, func() {}
	}
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
			case _, ok := <-w.Errors: // an overflow: something may have changed
				if !ok {
					return
				}
			}
			select {
			case ch <- struct{}{}: // one pending notice stands for every change until it is taken
			default:
			}
		}
	}()
	return ch, attachRecheck, func() {
		w.Close()
		<-done
	}
}

// settled waits, briefly, until the end of a job whose process is gone is recorded: a job that
// has just exited is still "running" in the store until its watcher has its exit code.
func (s *service) settled(ctx context.Context, job store.Job) (store.Job, error) {
	limit := time.NewTimer(3 * time.Second)
	defer limit.Stop()
	for job.Status == store.JobRunning {
		ended := s.jobs.Ended()
		var err error
		if job, err = s.jobs.Get(ctx, job.JID); err != nil || job.Status != store.JobRunning {
			return job, err
		}
		select {
		case <-ctx.Done():
			return job, ctx.Err()
		case <-limit.C:
			return job, nil
		case <-ended:
		}
	}
	return job, nil
}

// endOf is the last message of an attach to job.
func endOf(job store.Job) *daemonv1.AttachResponse {
	end := &daemonv1.AttachResponse{Ended: true}
	if job.ExitCode != nil {
		code := int32(*job.ExitCode)
		end.ExitCode = &code
	} else {
		end.Detail = "its exit code is unknown: it ended while no cedana daemon was its parent"
	}
	return end
}

// tailLines returns the last n lines (20 when n <= 0) of f, reading at most 1 MiB.
func tailLines(f *os.File, n int) ([]byte, error) {
	if n <= 0 {
		n = 20
	}
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start := max(info.Size()-(1<<20), 0)
	data := make([]byte, info.Size()-start)
	if _, err := f.ReadAt(data, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	trimmed := bytes.TrimSuffix(data, []byte("\n"))
	for i := len(trimmed) - 1; i >= 0; i-- {
		if trimmed[i] == '\n' {
			if n--; n == 0 {
				return data[i+1:], nil
			}
		}
	}
	return data, nil
}

// WriteStdin forwards input to a job.
func (s *service) WriteStdin(ctx context.Context, req *daemonv1.WriteStdinRequest) (*daemonv1.WriteStdinResponse, error) {
	if err := validateWriteStdin(req); err != nil {
		return nil, err
	}
	if err := s.jobs.WriteStdin(ctx, req.Jid, req.Data); err != nil {
		return nil, err
	}
	return &daemonv1.WriteStdinResponse{}, nil
}
