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
	"github.com/cedana/cedana/internal/broadcast"
)

// progressInterval is the least time between two reports of WatchProgress: an operation that
// changes all the time (each buffer read or archived) is reported ten times a second.
const progressInterval = 100 * time.Millisecond

// progressWait bounds how long WatchProgress waits for an operation it does not know yet (the
// client starts watching as it sends the request).
const progressWait = 10 * time.Second

// progressBoard holds the progress of the operations under way that carry an operation ID.
type progressBoard struct {
	mu      sync.Mutex
	ops     map[string]*adapters.Progress
	started broadcast.Signal // an operation started
}

// start registers operation id and returns its Progress; the empty id gets nil (not watched).
func (b *progressBoard) start(id string) *adapters.Progress {
	if id == "" {
		return nil
	}
	p := &adapters.Progress{}
	b.mu.Lock()
	if b.ops == nil {
		b.ops = map[string]*adapters.Progress{}
	}
	b.ops[id] = p
	b.mu.Unlock()
	b.started.Notify()
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

// WatchProgress streams where a dump or restore stands until it is over: a report when it
// changes, at most one per progressInterval.
func (s *service) WatchProgress(ctx context.Context, req *daemonv1.WatchProgressRequest, stream *connect.ServerStream[daemonv1.WatchProgressResponse]) error {
	if err := validateWatchProgress(req); err != nil {
		return err
	}
	p, err := s.awaitOperation(ctx, req.OperationId)
	if p == nil || err != nil {
		return err
	}
	// An operation under way is followed even while the daemon stops: it waits for it to end.
	var last adapters.Snapshot
	var sent time.Time
	for first := true; ; first = false {
		changed := p.Changed()
		snap := p.Snapshot()
		if first || snap != last {
			msg := &daemonv1.WatchProgressResponse{Phase: snap.Phase, DoneBytes: snap.Done, TotalBytes: snap.Total, Finished: snap.Finished}
			if err := stream.Send(msg); err != nil {
				return err
			}
			last, sent = snap, time.Now()
		}
		if snap.Finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(sent.Add(progressInterval))):
		}
	}
}

// awaitOperation returns operation id's Progress, waiting up to progressWait for it to start
// (the client starts watching as it sends the request); nil when ctx ends first.
func (s *service) awaitOperation(ctx context.Context, id string) (*adapters.Progress, error) {
	unknown := time.NewTimer(progressWait)
	defer unknown.Stop()
	for {
		started := s.progress.started.C()
		if p := s.progress.get(id); p != nil {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-unknown.C:
			return nil, errs.NotFound("no operation %q under way", id)
		case <-s.stopping:
			if p := s.progress.get(id); p != nil {
				return p, nil
			}
			return nil, fmt.Errorf("%w: operation %q will not start", errShuttingDown, id)
		case <-started:
		}
	}
}
