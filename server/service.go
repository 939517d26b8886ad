package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/health"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/store"
)

// service implements DaemonService.
type service struct {
	cfg      config.Config
	env      *adapters.Env
	log      *slog.Logger
	jobs     *jobs.Manager
	progress progressBoard
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
	env := NewEnv(ctx, cfg, log)
	env.Claim = manager.Lock
	s := &service{cfg: cfg, log: log, jobs: manager, env: env, stopping: ctx.Done()}
	s.backgroundCtx, s.stopBackground = context.WithCancel(context.WithoutCancel(ctx))
	if err := s.settleDumps(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("settle the dumps the previous daemon left unfinished: %w", err)
	}
	return s, nil
}

// NewEnv returns the environment chains run in in this process (the daemon, or a CLI with
// --no-server): CRIU resolved from cfg, defaults from cfg.
func NewEnv(ctx context.Context, cfg config.Config, log *slog.Logger) *adapters.Env {
	client, v := resolveCRIU(ctx, cfg, log)
	return &adapters.Env{
		CRIU:           client,
		CRIUVersion:    v,
		CheckpointDir:  cfg.Checkpoint.Dir,
		Compression:    cfg.Checkpoint.Compression,
		TempDir:        cfg.Checkpoint.TempDir,
		Workers:        runtime.NumCPU(),
		S3:             s3Config(cfg.Storage.S3),
		PIDWaitTimeout: time.Duration(cfg.Restore.PIDWaitTimeout),
		DaemonPID:      os.Getpid(),
	}
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
}

// Dump runs the dump chain for the request's runtime (or the job's) and records the checkpoint in
// the catalog. One dump at a time per job, and per tree whatever names it (withcriu.Dump claims it).
func (s *service) Dump(ctx context.Context, req *daemonv1.DumpRequest) (*daemonv1.DumpResponse, error) {
	if err := validateDump(req); err != nil {
		return nil, err
	}
	if req.Jid != "" {
		unlock, err := s.lockJob(req.Jid)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if err := s.prepareJobDump(ctx, req); err != nil {
			return nil, err
		}
	}
	chain, err := DumpChain(req.Type)
	if err != nil {
		return nil, err
	}
	resp := &daemonv1.DumpResponse{}
	st := adapters.State{Log: s.log.With("op", "dump", "type", req.Type), Progress: s.progress.start(req.OperationId)}
	defer s.progress.finish(req.OperationId, st.Progress)
	journal := newDumpJournal(ctx, s.jobs.Store(), st.Log, req.Jid)
	st.Journal = journal
	if _, err := chain(ctx, s.env, st, req, resp); err != nil {
		journal.forget()
		return nil, err
	}
	if err := s.recordCheckpoint(ctx, journal.id, req.Jid, resp); err != nil {
		// The checkpoint on disk is complete; only the catalog entry is missing.
		st.Log.Error("checkpoint written but not recorded", "path", resp.Path, "error", err)
		return nil, err
	}
	st.Log.Info("dumped", "path", resp.Path, "pid", resp.Checkpoint.GetPid(), "took", resp.Stats.GetTotal().AsDuration())
	return resp, nil
}

// Restore runs the restore chain and reaps the restored tree when it exits: it is the daemon's
// child. A job's restore makes the job run again under its JID, watched for its exit code.
func (s *service) Restore(ctx context.Context, req *daemonv1.RestoreRequest) (*daemonv1.RestoreResponse, error) {
	if err := validateRestore(req); err != nil {
		return nil, err
	}
	st := adapters.State{Log: s.log.With("op", "restore", "path", req.Path)}
	if req.Jid != "" {
		unlock, err := s.lockJob(req.Jid)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if st.JobLog, err = s.prepareJobRestore(ctx, req); err != nil {
			return nil, err
		}
	}
	chain := RestoreChain()
	resp := &daemonv1.RestoreResponse{}
	st.Progress = s.progress.start(req.OperationId)
	defer s.progress.finish(req.OperationId, st.Progress)
	if err := chain(ctx, s.env, st, req, resp); err != nil {
		return nil, err
	}
	switch {
	case req.Jid != "":
		if _, err := s.jobs.Restored(ctx, req.Jid, int(resp.Pid)); err != nil {
			return nil, fmt.Errorf("restored PID %d but could not record it on job %s: %w", resp.Pid, req.Jid, err)
		}
	case resp.Pid > 0 && jobs.IsChild(int(resp.Pid)):
		go s.reap(int(resp.Pid)) // else a container runtime owns it
	}
	st.Log.Info("restored", "pid", resp.Pid, "took", resp.Stats.GetTotal().AsDuration())
	return resp, nil
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

// HealthCheck reports the daemon's own view of CRIU and the runtimes.
func (s *service) HealthCheck(ctx context.Context, _ *daemonv1.HealthCheckRequest) (*daemonv1.HealthCheckResponse, error) {
	return health.Report(ctx, s.env.CRIU.Binary), nil
}

// ListFeatures lists the daemon's features.
func (s *service) ListFeatures(context.Context, *daemonv1.ListFeaturesRequest) (*daemonv1.ListFeaturesResponse, error) {
	return features.List(), nil
}

// The adapters every dump and restore goes through before the runtime's own, outermost first.
// Each chain starts with its checks, which look at nothing but the request (the fuzz targets run
// them alone).
var (
	dumpChecks = adapters.Middleware[adapters.DumpHandler]{
		adapters.TimeDump,
		adapters.FillDumpDefaults,
		adapters.ValidateDumpRequest,
	}
	commonDump = append(dumpChecks[:len(dumpChecks):len(dumpChecks)],
		adapters.PrepareDumpDir,
		adapters.CompressCheckpoint,
		adapters.WriteDumpMetadata,
	)
	restoreChecks = adapters.Middleware[adapters.RestoreHandler]{
		adapters.TimeRestore,
		adapters.ValidateRestoreRequest,
	}
	commonRestore = append(restoreChecks[:len(restoreChecks):len(restoreChecks)],
		adapters.LocateCheckpoint,
		adapters.FetchCheckpoint,
		adapters.ReadCheckpointMetadata,
	)
)

// DumpChain resolves, now, the runtime's dump middleware and handler and wraps them in the common
// adapters. The daemon and in-process (--no-server) commands use the same chain.
func DumpChain(runtime string) (adapters.DumpHandler, error) {
	if runtime == "" {
		return nil, errs.Invalid("the request names no runtime: set type (e.g. \"process\")")
	}
	return buildChain(runtime, commonDump, features.DumpMiddleware, features.DumpHandler)
}

// RestoreChain is the restore chain: the common adapters, then the runtime named by the request or,
// failing that, by the checkpoint's metadata, resolved when the metadata has been read.
func RestoreChain() adapters.RestoreHandler {
	return adapters.RestoreHandler(restoreWithRuntime).With(commonRestore...)
}

// restoreWithRuntime runs the runtime's restore middleware and handler.
func restoreWithRuntime(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
	h, err := buildChain(req.Type, nil, features.RestoreMiddleware, features.RestoreHandler)
	if err != nil {
		return err
	}
	return h(ctx, env, st, req, resp)
}

func buildChain[H any](runtime string, common adapters.Middleware[H],
	middleware *features.Feature[adapters.Middleware[H]], handler *features.Feature[H],
) (H, error) {
	var h H
	if err := handler.IfAvailable(func(_ string, impl H) error {
		h = impl
		return nil
	}, runtime); err != nil {
		return h, err
	}
	chain := append(adapters.Middleware[H]{}, common...)
	if middleware.IsAvailable(runtime) {
		_ = middleware.IfAvailable(func(_ string, m adapters.Middleware[H]) error {
			chain = append(chain, m...)
			return nil
		}, runtime)
	}
	return adapters.Wrap(h, chain...), nil
}

// errorInterceptor turns chain errors into Connect errors in one place, for unary and streaming
// calls, and logs failures.
type errorInterceptor struct{ log *slog.Logger }

func (e errorInterceptor) fail(procedure string, err error) error {
	cerr := toConnect(err)
	e.log.Warn("request failed", "procedure", procedure, "code", cerr.Code().String(), "error", cerr.Message())
	return cerr
}

// WrapUnary implements connect.Interceptor.
func (e errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, e.fail(req.Spec().Procedure, err)
		}
		return resp, nil
	}
}

// WrapStreamingClient implements connect.Interceptor; the daemon makes no client calls.
func (e errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (e errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return e.fail(conn.Spec().Procedure, err)
		}
		return nil
	}
}

// s3Config is the object store configuration, with the AWS_* environment filling what the config
// leaves empty.
func s3Config(c config.S3) storage.Config {
	return storage.Config{
		Endpoint: c.Endpoint, Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Insecure: c.Insecure,
	}.FromEnv(os.Getenv)
}
