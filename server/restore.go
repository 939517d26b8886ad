package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// Restore runs the restore chain and reaps the restored tree when it exits: it is the daemon's
// child. A job's restore makes the job run again under its JID; with new_job, the restored
// workload becomes a new job. Either is watched for its exit code: the runtime may leave the
// workload under a supervisor that reports it (adapters.Supervision), else the daemon learns it
// when the workload is its child.
func (s *service) Restore(ctx context.Context, req *daemonv1.RestoreRequest) (*daemonv1.RestoreResponse, error) {
	resp, err := s.restoreFrom(ctx, req, nil)
	s.metrics.Restore(req.Type, resp.GetStats(), err) // the type is the checkpoint's once its metadata is read
	return resp, err
}

// restoreFrom is Restore, but for its metrics; in, when set, is the checkpoint's archive, which
// req.Path then only names (a migration's stream).
func (s *service) restoreFrom(ctx context.Context, req *daemonv1.RestoreRequest, in io.Reader) (*daemonv1.RestoreResponse, error) {
	if err := validateRestore(req); err != nil {
		return nil, err
	}
	st := adapters.State{Log: s.log.With("op", "restore", "path", req.Path), Receive: in}
	var newJID string
	var took *takeover
	switch {
	case req.Jid != "":
		unlock, err := s.lockJob(req.Jid)
		if err != nil {
			return nil, err
		}
		defer unlock()
		known, err := s.knownJob(ctx, req)
		if err != nil {
			return nil, err
		}
		if known {
			if st.JobLog, err = s.prepareJobRestore(ctx, req); err != nil {
				return nil, err
			}
		} else {
			took = &takeover{s: s, ctx: ctx, jid: req.Jid, path: req.Path}
			defer took.close()
			st.Checked = took.check
		}
		st.Supervise = &adapters.Supervision{}
	case req.NewJob:
		var err error
		if newJID, st.JobLog, err = s.jobs.NewJob(ctx, "", req.Log); err != nil {
			return nil, err
		}
		if err := touch(st.JobLog); err != nil {
			return nil, err
		}
		st.Supervise = &adapters.Supervision{}
	}
	resp := &daemonv1.RestoreResponse{}
	st.Lazy = lazyState(req)
	if req.Jid != "" {
		s.lazy.forget(req.Jid)
	}
	st.Progress = s.progress.start(req.OperationId)
	defer s.progress.finish(req.OperationId, st.Progress)
	if err := chain.Restore()(ctx, s.env, st, req, resp); err != nil {
		if st.Lazy != nil && st.Lazy.Done != nil { // its lazy-pages server died during the restore
			s.lazy.track(s, req.Jid, st.JobLog, resp.Pid, st.Lazy)
		}
		return nil, err
	}
	if err := s.recordRestored(ctx, st, req, resp, newJID, took); err != nil {
		if st.Supervise != nil && st.Supervise.Abort != nil {
			st.Supervise.Abort() // unrecorded, it would run on with nobody to learn of its end
		}
		return nil, err
	}
	if st.Lazy != nil && st.Lazy.Done != nil {
		s.lazy.track(s, resp.Jid, st.JobLog, resp.Pid, st.Lazy)
	}
	st.Log.Info("restored", "pid", resp.Pid, "jid", resp.Jid, "took", resp.Stats.GetTotal().AsDuration())
	return resp, nil
}

// recordRestored records the restored workload on its job (the request's, taken on from the
// checkpoint when took is set, or the new job newJID) and sets resp.Jid; a restore outside jobs
// only has its tree reaped when it is the daemon's child.
func (s *service) recordRestored(ctx context.Context, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse, newJID string, took *takeover) error {
	var wait func() (int, error)
	if st.Supervise != nil {
		wait = st.Supervise.Wait
	}
	switch {
	case took != nil:
		if err := took.record(ctx, int(resp.Pid), wait); err != nil {
			return fmt.Errorf("restored PID %d but could not record it as job %s: %w", resp.Pid, req.Jid, err)
		}
		resp.Jid = req.Jid
	case req.Jid != "":
		if _, err := s.jobs.Restored(ctx, req.Jid, int(resp.Pid), wait); err != nil {
			return fmt.Errorf("restored PID %d but could not record it on job %s: %w", resp.Pid, req.Jid, err)
		}
		resp.Jid = req.Jid
	case newJID != "":
		details, err := protojson.Marshal(req.GetDetails())
		if err != nil {
			return err
		}
		typ := resp.GetCheckpoint().GetType()
		if typ == "" {
			typ = req.Type
		}
		if _, err := s.jobs.RestoredAsNew(ctx, typ, newJID, int(resp.Pid), details, st.JobLog, wait); err != nil {
			return fmt.Errorf("restored PID %d but could not record it as job %s: %w", resp.Pid, newJID, err)
		}
		resp.Jid = newJID
	case resp.Pid > 0 && sysinfo.IsChild(int(resp.Pid)):
		go s.reap(int(resp.Pid)) // else a container runtime owns it
	}
	return nil
}

// touch creates the file at path if it does not exist, so that a new job's log can be attached
// to before its workload writes anything.
func touch(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return errs.Precondition("cannot create the log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create the job's log %s: %w", path, err)
	}
	return f.Close()
}

// reap waits for a restored process so that it does not linger as a zombie once it exits.
func (s *service) reap(pid int) {
	proc, err := os.FindProcess(pid)
	if err != nil {
		s.log.Warn("cannot wait for restored process", "pid", pid, "error", err)
		return
	}
	state, err := proc.Wait()
	if err != nil {
		s.log.Warn("cannot wait for restored process", "pid", pid, "error", err)
		return
	}
	s.log.Info("restored process exited", "pid", pid, "status", state.String())
}
