package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/store"
)

// Run starts a managed job with the runtime's run handler.
func (s *service) Run(ctx context.Context, req *daemonv1.RunRequest) (*daemonv1.RunResponse, error) {
	if err := validateRun(req); err != nil {
		return nil, err
	}
	run, err := features.RunHandler.Get(req.Type)
	if err != nil {
		return nil, err
	}
	job, err := run(ctx, s.jobs, req)
	if err != nil {
		return nil, err
	}
	s.log.Info("job started", "jid", job.JID, "pid", job.PID, "log", job.Log)
	return &daemonv1.RunResponse{Job: s.jobProto(ctx, job)}, nil
}

// Manage adopts a running workload with the runtime's manage handler.
func (s *service) Manage(ctx context.Context, req *daemonv1.ManageRequest) (*daemonv1.ManageResponse, error) {
	if err := validateManage(req); err != nil {
		return nil, err
	}
	adopt, err := features.ManageHandler.Get(req.Type)
	if err != nil {
		return nil, err
	}
	job, err := adopt(ctx, s.jobs, req)
	if err != nil {
		return nil, err
	}
	return &daemonv1.ManageResponse{Job: s.jobProto(ctx, job)}, nil
}

// ListJobs lists every job, oldest first.
func (s *service) ListJobs(ctx context.Context, _ *daemonv1.ListJobsRequest) (*daemonv1.ListJobsResponse, error) {
	list, err := s.jobs.Store().ListJobs(ctx)
	if err != nil {
		return nil, err
	}
	resp := &daemonv1.ListJobsResponse{}
	for _, job := range list {
		resp.Jobs = append(resp.Jobs, s.jobProto(ctx, job))
	}
	return resp, nil
}

// GetJob describes one job.
func (s *service) GetJob(ctx context.Context, req *daemonv1.GetJobRequest) (*daemonv1.GetJobResponse, error) {
	if err := validateGetJob(req); err != nil {
		return nil, err
	}
	job, err := s.jobs.Get(ctx, req.Jid)
	if err != nil {
		return nil, err
	}
	return &daemonv1.GetJobResponse{Job: s.jobProto(ctx, job)}, nil
}

// KillJob signals each job; the jobs that could not be signalled are named in the error.
func (s *service) KillJob(ctx context.Context, req *daemonv1.KillJobRequest) (*daemonv1.KillJobResponse, error) {
	if err := validateKillJob(req); err != nil {
		return nil, err
	}
	sig := syscall.SIGKILL
	if req.Signal != 0 {
		sig = syscall.Signal(req.Signal)
	}
	resp := &daemonv1.KillJobResponse{}
	var failed []error
	for _, jid := range req.Jids {
		job, err := s.jobs.Signal(ctx, jid, sig)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		resp.Jobs = append(resp.Jobs, s.jobProto(ctx, job))
	}
	return resp, joinKinds(failed)
}

// DeleteJob forgets jobs and deletes their checkpoints' files; a running job only with force.
func (s *service) DeleteJob(ctx context.Context, req *daemonv1.DeleteJobRequest) (*daemonv1.DeleteJobResponse, error) {
	if err := validateDeleteJob(req); err != nil {
		return nil, err
	}
	var failed []error
	for _, jid := range req.Jids {
		if err := s.deleteJob(ctx, jid, req.Force); err != nil {
			failed = append(failed, err)
		}
	}
	return &daemonv1.DeleteJobResponse{}, joinKinds(failed)
}

func (s *service) deleteJob(ctx context.Context, jid string, force bool) error {
	unlock, err := s.jobs.Lock("job:"+jid, "job "+jid)
	if err != nil {
		return err
	}
	defer unlock()
	job, err := s.jobs.Get(ctx, jid)
	if err != nil {
		return err
	}
	if jobs.Running(job) {
		if !force {
			return errs.Precondition("job %s is running: kill it first (`cedana job kill %s`) or delete with --force", jid, jid)
		}
		if _, err := s.jobs.Signal(ctx, jid, syscall.SIGKILL); err != nil {
			return err
		}
	}
	list, err := s.jobs.Store().ListCheckpoints(ctx, jid)
	if err != nil {
		return err
	}
	for _, ck := range list {
		if err := s.removeCheckpoint(ctx, ck.Path); err != nil {
			return fmt.Errorf("delete checkpoint %s of job %s: %w", ck.Path, jid, err)
		}
	}
	if err := s.jobs.Store().DeleteJob(ctx, jid); err != nil {
		return err
	}
	s.jobs.Forget(jid)
	return nil
}

// ListCheckpoints lists the catalog, newest first.
func (s *service) ListCheckpoints(ctx context.Context, req *daemonv1.ListCheckpointsRequest) (*daemonv1.ListCheckpointsResponse, error) {
	if err := validateListCheckpoints(req); err != nil {
		return nil, err
	}
	if req.Jid != "" {
		if _, err := s.jobs.Get(ctx, req.Jid); err != nil {
			return nil, err
		}
	}
	list, err := s.jobs.Store().ListCheckpoints(ctx, req.Jid)
	if err != nil {
		return nil, err
	}
	resp := &daemonv1.ListCheckpointsResponse{}
	for _, ck := range list {
		resp.Checkpoints = append(resp.Checkpoints, checkpointProto(ck))
	}
	return resp, nil
}

// GetCheckpoint describes one checkpoint of the catalog.
func (s *service) GetCheckpoint(ctx context.Context, req *daemonv1.GetCheckpointRequest) (*daemonv1.GetCheckpointResponse, error) {
	if err := validateGetCheckpoint(req); err != nil {
		return nil, err
	}
	ck, err := s.getCheckpoint(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return &daemonv1.GetCheckpointResponse{Checkpoint: checkpointProto(ck)}, nil
}

// DeleteCheckpoint deletes a checkpoint's files, then its record.
func (s *service) DeleteCheckpoint(ctx context.Context, req *daemonv1.DeleteCheckpointRequest) (*daemonv1.DeleteCheckpointResponse, error) {
	if err := validateDeleteCheckpoint(req); err != nil {
		return nil, err
	}
	ck, err := s.getCheckpoint(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	if err := s.removeCheckpoint(ctx, ck.Path); err != nil {
		return nil, fmt.Errorf("delete checkpoint %s: %w", ck.Path, err)
	}
	if err := s.jobs.Store().DeleteCheckpoint(ctx, ck.ID); err != nil {
		return nil, err
	}
	return &daemonv1.DeleteCheckpointResponse{}, nil
}

func (s *service) getCheckpoint(ctx context.Context, id string) (store.Checkpoint, error) {
	ck, err := s.jobs.Store().GetCheckpoint(ctx, id)
	if errdefs.IsNotFound(err) {
		return ck, errs.Reword(err, "no checkpoint %s (see `cedana checkpoint list`)", id)
	}
	return ck, err
}

// lockJob makes a second dump or restore of job jid fail fast while one runs. (Two dumps of one
// tree, however they name it, are kept apart in withcriu.Dump: adapters.Env.Claim.)
func (s *service) lockJob(jid string) (func(), error) {
	return s.jobs.Lock("job:"+jid, "job "+jid)
}

// prepareJobDump points a dump of job jid at the job's workload and returns the job's record,
// for the checkpoint to carry.
func (s *service) prepareJobDump(ctx context.Context, req *daemonv1.DumpRequest) (*daemonv1.JobRecord, error) {
	job, err := s.jobs.Get(ctx, req.Jid)
	if err != nil {
		return nil, err
	}
	if !jobs.Running(job) {
		return nil, errs.Precondition("job %s is not running (%s): there is nothing to dump; restore it with `cedana restore job %s`", job.JID, job.Status, job.JID)
	}
	req.Type = job.Type
	req.Details = jobDetails(job)
	return s.jobRecord(job), nil
}

// knownJob reports whether the job a restore names is this daemon's; a job it does not know is
// one to take on from the checkpoint at req.Path, and without a path an error that says so.
func (s *service) knownJob(ctx context.Context, req *daemonv1.RestoreRequest) (bool, error) {
	_, err := s.jobs.Store().GetJob(ctx, req.Jid)
	switch {
	case err == nil:
		return true, nil
	case !errdefs.IsNotFound(err):
		return false, err
	case req.Path == "":
		return false, errs.Reword(err, "no job %s (see `cedana ps`); to take on a job another daemon dumped, give its checkpoint: `cedana restore job %s --path <checkpoint>`", req.Jid, req.Jid)
	}
	return false, nil
}

// prepareJobRestore points a restore of job jid at its latest checkpoint, unless a path is given,
// and returns the job's log.
func (s *service) prepareJobRestore(ctx context.Context, req *daemonv1.RestoreRequest) (string, error) {
	job, err := s.jobs.Get(ctx, req.Jid)
	if err != nil {
		return "", err
	}
	if jobs.Running(job) {
		return "", errs.Precondition("job %s is running (PID %d): kill it first (`cedana job kill %s`) to restore it", job.JID, job.PID, job.JID)
	}
	if job.Status == store.JobMigrated {
		return "", errs.Precondition("job %s was migrated to %s and runs there: restoring it here would run it twice; "+
			"to move it back, `cedana job delete %s` here, then `cedana migrate job %s --to <this daemon>` there", job.JID, job.MigratedTo, job.JID, job.JID)
	}
	req.Type = job.Type
	if req.Path == "" {
		ck, err := s.jobs.Store().LatestCheckpoint(ctx, job.JID)
		if errdefs.IsNotFound(err) {
			return "", errs.Reword(err, "job %s has no checkpoint to restore: dump it first (`cedana dump job %s`)", job.JID, job.JID)
		}
		if err != nil {
			return "", err
		}
		req.Path = ck.Path
	}
	return job.Log, nil
}

// recordCheckpoint adds a finished dump to the catalog under id, with the size it takes where it
// is stored, and removes it from the dump journal in the same transaction.
func (s *service) recordCheckpoint(ctx context.Context, id, jid string, resp *daemonv1.DumpResponse) error {
	meta, err := protojson.Marshal(resp.Checkpoint)
	if err != nil {
		return fmt.Errorf("record checkpoint: %w", err)
	}
	ck := store.Checkpoint{ID: id, JID: jid, Path: resp.Path, Type: resp.Checkpoint.GetType(), Size: resp.Stats.GetStoredBytes(), Metadata: meta}
	if err := s.jobs.Store().CommitDump(context.WithoutCancel(ctx), ck); err != nil {
		return fmt.Errorf("checkpoint %s is complete but could not be recorded in the catalog: %w; restore it with --path %s", resp.Path, err, resp.Path)
	}
	resp.CheckpointId = id
	return nil
}

// jobDetails is the job's runtime details, completed by its runtime with its current process.
func jobDetails(job store.Job) *daemonv1.Details {
	details := &daemonv1.Details{}
	if len(job.Details) > 0 {
		_ = protojson.Unmarshal(job.Details, details)
	}
	if complete, ok := features.JobDetails.Lookup(job.Type); ok {
		complete(details, job.PID)
	}
	return details
}

func (s *service) jobProto(ctx context.Context, job store.Job) *daemonv1.Job {
	j := &daemonv1.Job{
		Jid: job.JID, Type: job.Type, Pid: int32(job.PID), Status: string(job.Status), Log: job.Log,
		Details:   jobDetails(job),
		CreatedAt: timestamppb.New(job.CreatedAt), UpdatedAt: timestamppb.New(job.UpdatedAt),
		LazyPages: s.lazy.status(job.JID), MigratedTo: job.MigratedTo,
	}
	if job.ExitCode != nil {
		code := int32(*job.ExitCode)
		j.ExitCode = &code
	}
	if ck, err := s.jobs.Store().LatestCheckpoint(ctx, job.JID); err == nil {
		j.LatestCheckpoint = checkpointProto(ck)
	}
	return j
}

func checkpointProto(ck store.Checkpoint) *daemonv1.CheckpointEntry {
	e := &daemonv1.CheckpointEntry{Id: ck.ID, Jid: ck.JID, Path: ck.Path, Type: ck.Type, SizeBytes: ck.Size, CreatedAt: timestamppb.New(ck.CreatedAt)}
	if len(ck.Metadata) > 0 {
		meta := &daemonv1.Checkpoint{}
		if protojson.Unmarshal(ck.Metadata, meta) == nil {
			e.Checkpoint = meta
		}
	}
	return e
}

// joinKinds joins per-job errors; one error keeps its kind (and so its Connect code).
func joinKinds(failed []error) error {
	if len(failed) == 1 {
		return failed[0]
	}
	return errors.Join(failed...)
}

// removeCheckpoint deletes a checkpoint's files: a directory, an archive, or an s3:// object.
func (s *service) removeCheckpoint(ctx context.Context, path string) error {
	if loc, remote, _ := storage.ParseURL(path); remote {
		client, err := storage.New(s.env.S3)
		if err != nil {
			return err
		}
		return client.Delete(ctx, loc)
	}
	return os.RemoveAll(path)
}
