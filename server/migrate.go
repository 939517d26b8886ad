package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/daemonclient"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// migrateChunk is the most archive bytes one message of a migration's stream carries: well under
// the destination's limits.max_request_bytes (4 MiB by default).
const migrateChunk = 1 << 20

// Migrate moves a workload or a job to the daemon at req.To. The dump leaves the tree stopped
// (CRIU's leave-stopped) and streams its archive, the images held in memory and never written to
// this machine's disk, to the destination's Receive, which restores it. Only once the
// destination says it runs there is the tree killed here and a job marked migrated; any failure
// before resumes it here, and the error names the step that failed.
func (s *service) Migrate(ctx context.Context, req *daemonv1.MigrateRequest) (*daemonv1.MigrateResponse, error) {
	if err := validateMigrate(req); err != nil {
		return nil, err
	}
	dreq := &daemonv1.DumpRequest{
		Type: req.Type, Details: req.Details, Jid: req.Jid, OperationId: req.OperationId,
		Name:        fmt.Sprintf("migrate-%d", time.Now().UnixNano()),
		Compression: cmp.Or(req.Compression, string(archive.Tar)),
		Criu:        cmp.Or(proto.CloneOf(req.Criu), &daemonv1.CriuOptions{}),
	}
	dreq.Criu.LeaveRunning, dreq.Criu.LeaveStopped = false, true
	st := adapters.State{Log: s.log.With("op", "migrate", "to", req.To)}
	if req.Jid != "" {
		unlock, err := s.lockJob(req.Jid)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if st.Job, err = s.prepareJobDump(ctx, dreq); err != nil {
			return nil, err
		}
		st.Log = st.Log.With("jid", req.Jid)
	}
	if err := features.CheckKnown(dreq.Type); err != nil {
		return nil, errs.Invalid("migrate: %v", err)
	}
	if !features.Migrate.IsAvailable(dreq.Type) {
		return nil, errs.Invalid("the %s runtime cannot migrate its workloads yet (runtimes that can: %v): dump to shared storage and restore there instead", dreq.Type, features.Migrate.Names())
	}
	dump, err := chain.Dump(dreq.Type)
	if err != nil {
		return nil, err
	}
	peer, err := s.migrationPeer(req)
	if err != nil {
		return nil, err
	}
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := peer.Receive(streamCtx)
	if err == nil {
		err = stream.Send(&daemonv1.ReceiveRequest{Header: &daemonv1.MigrationHeader{Jid: req.Jid, Lazy: req.Lazy, Source: sysinfo.Hostname()}})
	}
	if err != nil {
		return nil, errs.Unavailable("migrate: connect to the destination %s: %w; the workload was not touched", req.To, err)
	}
	sink := &streamSink{send: stream.Send}
	st.Send = &adapters.Destination{Name: "cedana://" + req.To + "/" + dreq.Name, Sink: sink}
	st.Progress = s.progress.start(req.OperationId)
	defer s.progress.finish(req.OperationId, st.Progress)
	dresp := &daemonv1.DumpResponse{}
	start := time.Now()
	dumped, err := dump(ctx, s.env, st, dreq, dresp)
	if err != nil {
		cause := err
		if errors.Is(sink.err, io.EOF) { // the destination gave up first: its answer says why
			_, cause = stream.CloseAndReceive()
			cause = fmt.Errorf("the destination %s failed: %w", req.To, cause)
		}
		cancel()
		return nil, s.rollBack(st, dresp, bool(dumped), "dump and send the checkpoint", cause)
	}
	answer, err := stream.CloseAndReceive()
	if err != nil {
		return nil, s.rollBack(st, dresp, true, "restore on the destination "+req.To, err)
	}
	// Faulting the images' memory in comes first, the workload still running.
	downtime := time.Since(start) - dresp.GetStats().GetPhases()[adapters.ReservePhase].AsDuration()
	var recordErr error
	if req.Jid != "" {
		recordErr = s.jobs.Migrated(context.WithoutCancel(ctx), req.Jid, req.To)
	}
	signalTree(dresp.GetCheckpoint().GetPids(), syscall.SIGKILL)
	st.Log.Info("migrated", "pid", answer.GetRestore().GetPid(), "downtime", downtime, "sent", sink.n)
	if recordErr != nil {
		return nil, fmt.Errorf("job %s runs on %s now and was ended here, but recording it as migrated failed: %w", req.Jid, req.To, recordErr)
	}
	return &daemonv1.MigrateResponse{To: req.To, Jid: req.Jid, Restore: answer.GetRestore(), Stats: dresp.Stats, Downtime: durationpb.New(downtime)}, nil
}

// rollBack lets the workload a failed migration stopped run here again, and returns the error,
// naming the step that failed. A dump that failed before CRIU was done had CRIU resume it.
func (s *service) rollBack(st adapters.State, dresp *daemonv1.DumpResponse, stopped bool, step string, cause error) error {
	if stopped {
		signalTree(dresp.GetCheckpoint().GetPids(), syscall.SIGCONT)
	}
	st.Log.Warn("migration failed: the workload runs here again", "step", step, "error", cause)
	var remote *connect.Error
	if errors.As(cause, &remote) { // the destination's: its code, but our words around it
		return errs.New(kindOf(remote.Code()), "migrate: %s: %s; the workload runs here again", step, remote.Message())
	}
	return errs.Reword(cause, "migrate: %s: %v; the workload runs here again", step, cause)
}

// kindOf is the error kind that toConnect turns into code (internal for any other).
func kindOf(code connect.Code) error {
	for kind, c := range codes {
		if c == code {
			return kind
		}
	}
	return errors.New("internal")
}

// signalTree sends sig to every process of a dumped tree.
func signalTree(pids []int32, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(int(pid), sig)
	}
}

// migrationPeer is a client of the destination daemon: over TCP, with this daemon's TLS settings
// and the request's token, else this daemon's own.
func (s *service) migrationPeer(req *daemonv1.MigrateRequest) (interface {
	Receive(context.Context) (*connect.ClientStreamForClientSimple[daemonv1.ReceiveRequest, daemonv1.ReceiveResponse], error)
}, error,
) {
	cfg := s.cfg
	cfg.Protocol, cfg.Address = config.ProtocolTCP, req.To
	if req.Token != "" {
		cfg.Token = req.Token
	}
	if cfg.ClientToken() == "" {
		return nil, errs.Invalid("migrate: no token for the destination %s: pass --token-file, or set token or token_file in this daemon's config", req.To)
	}
	c, err := daemonclient.New(cfg)
	if err != nil {
		return nil, errs.Invalid("migrate: %w", err)
	}
	return c, nil
}

// validateMigrate checks a migration request by itself.
func validateMigrate(req *daemonv1.MigrateRequest) error {
	if err := firstError(noNUL(req), optionalJID(req.Jid), checkOperationID(req.OperationId, false)); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(req.To); err != nil {
		return errs.Invalid("migrate: destination %q is not a daemon's TCP address (host:port): %w", req.To, err)
	}
	switch {
	case req.Jid == "" && req.Type == "":
		return chain.NoRuntime()
	case req.Compression == string(archive.None):
		return errs.Invalid("migrate: the checkpoint is streamed as one archive: compression is tar, gzip, lz4, zlib or zstd")
	}
	return nil
}

// streamSink is the live.Sink of a migration: the archive, sent in messages of migrateChunk
// bytes to the destination's Receive.
type streamSink struct {
	send func(*daemonv1.ReceiveRequest) error
	n    int64
	err  error
}

// Write implements io.Writer.
func (w *streamSink) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), migrateChunk)]
		if err := w.send(&daemonv1.ReceiveRequest{Chunk: chunk}); err != nil {
			w.err = fmt.Errorf("send the checkpoint to the destination: %w", err)
			return written, w.err
		}
		written += len(chunk)
		w.n += int64(len(chunk))
		p = p[len(chunk):]
	}
	return written, nil
}

// Commit implements live.Sink: everything was sent; the destination's answer comes with the
// stream's close.
func (w *streamSink) Commit() (int64, error) { return w.n, w.err }

// Abort implements live.Sink.
func (w *streamSink) Abort() error { return w.err }
