package server

import (
	"context"

	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
)

// Freeze holds the target stopped through its runtime's freezer, without checkpointing it.
func (s *service) Freeze(ctx context.Context, req *daemonv1.FreezeRequest) (*daemonv1.FreezeResponse, error) {
	return s.freeze(ctx, req.GetTarget(), false)
}

// Unfreeze lets the target run again through its runtime's freezer.
func (s *service) Unfreeze(ctx context.Context, req *daemonv1.UnfreezeRequest) (*daemonv1.UnfreezeResponse, error) {
	resp, err := s.freeze(ctx, req.GetTarget(), true)
	if err != nil {
		return nil, err
	}
	return &daemonv1.UnfreezeResponse{Method: resp.Method, Pids: resp.Pids, Detail: resp.Detail}, nil
}

// freeze freezes or thaws the target through its runtime's freezer.
func (s *service) freeze(ctx context.Context, t *daemonv1.Target, thaw bool) (*daemonv1.FreezeResponse, error) {
	rt, details, err := s.resolveTarget(ctx, t)
	if err != nil {
		return nil, err
	}
	freeze, err := features.FreezeHandler.Get(rt)
	if err != nil {
		return nil, err
	}
	resp, err := freeze(ctx, details, thaw)
	if err != nil {
		return nil, err
	}
	s.log.Info("freeze", "type", rt, "thaw", thaw, "method", resp.Method, "pids", resp.Pids)
	return resp, nil
}

// Query describes each target through its runtime, in the request's order.
func (s *service) Query(ctx context.Context, req *daemonv1.QueryRequest) (*daemonv1.QueryResponse, error) {
	if len(req.GetTargets()) == 0 {
		return nil, errs.Invalid("no workload to query: name at least one")
	}
	resp := &daemonv1.QueryResponse{}
	for _, t := range req.Targets {
		rt, details, err := s.resolveTarget(ctx, t)
		if err != nil {
			return nil, err
		}
		query, err := features.QueryHandler.Get(rt)
		if err != nil {
			return nil, err
		}
		w, err := query(ctx, details)
		if err != nil {
			return nil, err
		}
		w.Type = rt
		resp.Workloads = append(resp.Workloads, w)
	}
	return resp, nil
}

// resolveTarget is the runtime and details a target names: its own, or its running job's.
func (s *service) resolveTarget(ctx context.Context, t *daemonv1.Target) (string, *daemonv1.Details, error) {
	if t.GetJid() == "" {
		if t.GetType() == "" {
			return "", nil, chain.NoRuntime()
		}
		return t.Type, t.GetDetails(), nil
	}
	job, err := s.jobs.Get(ctx, t.Jid)
	if err != nil {
		return "", nil, err
	}
	if !jobs.Running(job) {
		return "", nil, errs.Precondition("job %s is not running (%s)", job.JID, job.Status)
	}
	return job.Type, jobDetails(job), nil
}
