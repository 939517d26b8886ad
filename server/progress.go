package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// progressPoll is how often WatchProgress reports.
const progressPoll = 100 * time.Millisecond

// progressWait bounds how long WatchProgress waits for an operation it does not know yet (the
// client starts watching as it sends the request).
const progressWait = 10 * time.Second

// progressBoard holds the progress of the operations under way that carry an operation ID.
type progressBoard struct {
	mu  sync.Mutex
	ops map[string]*adapters.Progress
}

// start registers operation id and returns its Progress; the empty id gets nil (not watched).
func (b *progressBoard) start(id string) *adapters.Progress {
	if id == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ops == nil {
		b.ops = map[string]*adapters.Progress{}
	}
	p := &adapters.Progress{}
	b.ops[id] = p
	return p
}

// finish marks operation id over and forgets it a little later, once watchers have seen it.
func (b *progressBoard) finish(id string, p *adapters.Progress) {
	if p == nil {
		return
	}
	p.Finish()
	time.AfterFunc(progressWait, func() {
		b.mu.Lock()
		if b.ops[id] == p {
			delete(b.ops, id)
		}
		b.mu.Unlock()
	})
}

func (b *progressBoard) get(id string) *adapters.Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ops[id]
}

// WatchProgress streams where a dump or restore stands until it is over.
func (s *service) WatchProgress(ctx context.Context, req *daemonv1.WatchProgressRequest, stream *connect.ServerStream[daemonv1.WatchProgressResponse]) error {
	if err := validateWatchProgress(req); err != nil {
		return err
	}
	deadline := time.Now().Add(progressWait)
	var last adapters.Snapshot
	first := true
	stopping, stopped := s.stopping, false
	for {
		p := s.progress.get(req.OperationId)
		if p == nil && time.Now().After(deadline) {
			return errs.NotFound("no operation %q under way", req.OperationId)
		}
		if p == nil && stopped {
			return fmt.Errorf("%w: operation %q will not start", errShuttingDown, req.OperationId)
		}
		if p != nil {
			snap := p.Snapshot()
			if first || snap != last {
				msg := &daemonv1.WatchProgressResponse{Phase: snap.Phase, DoneBytes: snap.Done, TotalBytes: snap.Total, Finished: snap.Finished}
				if err := stream.Send(msg); err != nil {
					return err
				}
				first, last = false, snap
			}
			if snap.Finished {
				return nil
			}
		}
		wait := progressPoll
		if p == nil {
			wait = 10 * time.Millisecond // the request is on its way: catch its start
		}
		select {
		case <-ctx.Done():
			return nil
		case <-stopping:
			// An operation under way is still followed: the daemon waits for it to end.
			stopping, stopped = nil, true
		case <-time.After(wait):
		}
	}
}
