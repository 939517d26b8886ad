package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/health"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/metrics"
	"github.com/cedana/cedana/store"
)

// service implements DaemonService.
type service struct {
	cfg      config.Config
	env      *adapters.Env
	log      *slog.Logger
	jobs     *jobs.Manager
	metrics  *metrics.Metrics
	progress progressBoard
	lazy     lazyBoard
	// stopping is closed when the daemon starts to shut down: streams that would outlast it end.
	stopping <-chan struct{}

	// background runs the settling of dumps whose CRIU outlived the previous daemon, until
	// backgroundCtx is cancelled by stopBackground.
	background     sync.WaitGroup
	backgroundCtx  context.Context
	stopBackground context.CancelFunc
}

var _ daemonv1connect.DaemonServiceHandler = (*service)(nil)

// newService opens the state database, takes up the jobs recorded in it, settles the dumps a
// previous daemon left unfinished, and resolves CRIU. The daemon shuts down when ctx is done.
func newService(ctx context.Context, cfg config.Config, log *slog.Logger) (*service, error) {
	st, err := store.Open(ctx, cfg.DB.Path)
	if err != nil {
		return nil, err // it names the file, the problem and what to do
	}
	manager := jobs.New(st, cfg.Jobs.LogDir, log)
	if err := manager.Reconcile(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("take up recorded jobs: %w", err)
	}
	env := chain.NewEnv(ctx, cfg, log)
	env.Claim = manager.Lock
	m := metrics.New(metrics.Options{Runtimes: features.Declared(), CRIU: health.FormatCRIUVersion(env.CRIUVersion), Jobs: metrics.CountJobs(st)})
	s := &service{cfg: cfg, log: log, jobs: manager, env: env, metrics: m, stopping: ctx.Done()}
	s.backgroundCtx, s.stopBackground = context.WithCancel(context.WithoutCancel(ctx))
	if err := s.settleDumps(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("settle the dumps the previous daemon left unfinished: %w", err)
	}
	return s, nil
}

// close stops watching jobs and CRIUs left by a previous daemon, and closes the database; the jobs
// keep running.
func (s *service) close() {
	s.stopBackground()
	s.background.Wait()
	s.jobs.Close()
	if err := s.jobs.Store().Close(); err != nil {
		s.log.Warn("close the state database", "error", err)
	}
	s.env.StreamPool.Release()
}

// Dump runs the dump chain for the request's runtime (or the job's) and records the checkpoint in
// the catalog. One dump at a time per job, and per tree whatever names it (withcriu.Dump claims it).
func (s *service) Dump(ctx context.Context, req *daemonv1.DumpRequest) (*daemonv1.DumpResponse, error) {
	resp, err := s.dump(ctx, req)
	s.metrics.Dump(req.Type, resp.GetStats(), err)
	return resp, err
}

// dump is Dump, but for its metrics.
func (s *service) dump(ctx context.Context, req *daemonv1.DumpRequest) (*daemonv1.DumpResponse, error) {
	received := time.Now()
	if err := validateDump(req); err != nil {
		return nil, err
	}
	var job *daemonv1.JobRecord
	if req.Jid != "" {
		unlock, err := s.lockJob(req.Jid)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if job, err = s.prepareJobDump(ctx, req); err != nil {
			return nil, err
		}
	}
	dump, err := chain.Dump(req.Type)
	if err != nil {
		return nil, err
	}
	resp := &daemonv1.DumpResponse{}
	st := adapters.State{Log: s.log.With("op", "dump", "type", req.Type), Progress: s.progress.start(req.OperationId), Job: job}
	defer s.progress.finish(req.OperationId, st.Progress)
	// A commit alone (rootfs_only) is no checkpoint of the job's state: it is listed, but
	// `restore job` goes on restoring the job's latest CRIU checkpoint.
	catalogJID := req.Jid
	if req.RootfsOnly {
		catalogJID = ""
	}
	journal := newDumpJournal(ctx, s.jobs.Store(), st.Log, catalogJID)
	st.Journal = journal
	if _, err := dump(ctx, s.env, st, req, resp); err != nil {
		journal.forget()
		return nil, err
	}
	recordStart := time.Now()
	if err := s.recordCheckpoint(ctx, journal.id, catalogJID, resp); err != nil {
		// The checkpoint on disk is complete; only the catalog entry is missing.
		st.Log.Error("checkpoint written but not recorded", "path", resp.Path, "error", err)
		return nil, err
	}
	st.Log.Debug("dump recorded in the catalog", "record", time.Since(recordStart), "since_request", time.Since(received))
	st.Log.Info("dumped", "path", resp.Path, "pid", resp.Checkpoint.GetPid(), "took", resp.Stats.GetTotal().AsDuration())
	return resp, nil
}

// HealthCheck reports the daemon's own view of CRIU and the runtimes.
// With full, it also dumps and restores a tiny workload through its own chains.
func (s *service) HealthCheck(ctx context.Context, req *daemonv1.HealthCheckRequest) (*daemonv1.HealthCheckResponse, error) {
	r := health.Report(ctx, s.env.CRIU.Binary)
	if req.Full {
		health.AddFull(ctx, r, s.env, adapters.State{Log: s.log.With("op", "check")})
	}
	return r, nil
}

// ListFeatures lists the daemon's features.
func (s *service) ListFeatures(context.Context, *daemonv1.ListFeaturesRequest) (*daemonv1.ListFeaturesResponse, error) {
	return features.List(), nil
}
