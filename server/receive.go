package server

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"connectrpc.com/connect"
	"github.com/containerd/errdefs"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// maxMigrationBytes bounds the archive one migration may stream: as large as one archive entry
// may be (archive.MaxEntrySize). Each message is bounded by limits.max_request_bytes, and the
// archive's entries are checked as any archive's are.
const maxMigrationBytes = archive.MaxEntrySize

// Receive restores a workload another daemon migrates here, from the archive it streams (see
// Migrate): a job under its own JID, taken on from the record the checkpoint carries. The restore
// counts only once the source has ended its stream cleanly: a source that gives up midway runs
// the workload again itself, so a workload restored here by then is killed.
func (s *service) Receive(ctx context.Context, stream *connect.ClientStream[daemonv1.ReceiveRequest]) (*daemonv1.ReceiveResponse, error) {
	if !stream.Receive() {
		return nil, errs.Invalid("the migration stream ended before its header: %v", stream.Err())
	}
	hdr := stream.Msg().GetHeader()
	if hdr == nil {
		return nil, errs.Invalid("the migration stream does not start with its header")
	}
	in := &migrationReader{stream: stream}
	req := &daemonv1.RestoreRequest{Jid: hdr.GetJid(), Lazy: hdr.GetLazy(), Path: "migration from " + hdr.GetSource()}
	resp, err := s.restoreFrom(ctx, req, in)
	s.metrics.Restore(req.Type, resp.GetStats(), err)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if _, err := io.Copy(io.Discard, in); err != nil {
		s.abandon(ctx, resp)
		return nil, fmt.Errorf("the source gave up after the restore, and runs the workload again; its copy here was killed: %w", err)
	}
	return &daemonv1.ReceiveResponse{Restore: resp}, nil
}

// abandon kills a workload restored from a migration that its source gave up.
func (s *service) abandon(ctx context.Context, resp *daemonv1.RestoreResponse) {
	if resp.Jid != "" {
		if _, err := s.jobs.Signal(context.WithoutCancel(ctx), resp.Jid, syscall.SIGKILL); err == nil {
			return
		}
	}
	sysinfo.KillTree(int(resp.Pid))
}

// migrationReader reads the archive bytes of a migration's stream, after its header.
type migrationReader struct {
	stream *connect.ClientStream[daemonv1.ReceiveRequest]
	buf    []byte
	n      int64
	err    error
}

// Read implements io.Reader: io.EOF once the source has closed its stream cleanly, an error if it
// broke off.
func (r *migrationReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if !r.stream.Receive() {
			r.err = io.EOF
			if err := r.stream.Err(); err != nil {
				r.err = fmt.Errorf("the migration stream broke off after %d bytes: %w", r.n, err)
			}
			return 0, r.err
		}
		msg := r.stream.Msg()
		if msg.GetHeader() != nil {
			r.err = errs.Invalid("the migration stream has a second header")
			return 0, r.err
		}
		r.buf = msg.GetChunk()
		r.n += int64(len(r.buf))
		if r.n > maxMigrationBytes {
			r.err = errs.New(errdefs.ErrResourceExhausted, "the migration stream is over %d bytes", int64(maxMigrationBytes))
			return 0, r.err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
