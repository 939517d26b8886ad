// Lazy restores: the tree runs as soon as CRIU has restored it, its memory served on demand by
// CRIU's lazy-pages server from the images, which the daemon watches until every page is back.

package withcriu

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// LazyNote is the note a lazy restore adds to its stats.
const LazyNote = "restored lazily: CRIU's lazy-pages server serves the memory on demand until every page is back"

// Lazy is a lazy restore's lazy-pages server, started on the images before the restore: the
// daemon's own CRIU restore (restoreLazy) or a runtime's that runs CRIU itself (`runc restore
// --lazy-pages`), which finds the server's socket in CRIU's work directory, the images directory
// unless told otherwise.
type Lazy struct {
	srv     *criu.LazyServer
	release func()
	st      adapters.State
	resp    *daemonv1.RestoreResponse
}

// StartLazy starts CRIU's lazy-pages server on st.ImageDir (unpacked first from an archive, since
// the server reads image files), holding the images (State.Images) until the server has exited.
// The caller then restores with lazy pages and calls Restored, or Abort if the restore failed.
func StartLazy(ctx context.Context, env *adapters.Env, st adapters.State, resp *daemonv1.RestoreResponse) (*Lazy, error) {
	if rs := st.RestoreStream; rs.Pending() {
		if err := rs.Extract("a lazy restore serves the memory from image files"); err != nil {
			return nil, err
		}
	}
	release := st.Images.Hold()
	start := time.Now()
	srv, err := env.CRIU.StartLazyPages(ctx, st.ImageDir, criu.LazyPagesLog, cmp.Or(env.CRIULogLevel, config.DefaultCRIULogLevel))
	adapters.Observe(resp.Stats, "lazy_pages_start", start)
	if err != nil {
		release()
		return nil, errs.Precondition("--lazy: %w", err)
	}
	return &Lazy{srv: srv, release: release, st: st, resp: resp}, nil
}

// Watch returns ctx, cancelled if the server fails before the restore is done, for a restore
// that waits on a runtime (runc), and what stops watching. A server that fails then leaves CRIU
// restoring a tree that cannot get its memory, and the runtime may wait for it for ever: the
// caller gives up, and Failed says why.
func (l *Lazy) Watch(ctx context.Context) (context.Context, func()) {
	if l == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.srv.Done():
			if err := l.srv.Err(); err != nil {
				cancel(err)
			}
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// Failed is, once the server has failed, the error of a restore it was serving; nil otherwise.
func (l *Lazy) Failed() error {
	if l == nil {
		return nil
	}
	if err := l.stopped(); err != nil {
		return errs.Precondition("--lazy: %w", err)
	}
	return nil
}

// stopped is how a server that failed during the restore stopped it; nil if it has not failed.
func (l *Lazy) stopped() error {
	if err := l.srv.Err(); err != nil {
		return fmt.Errorf("%w: the restored tree cannot run without the rest of its memory, so it was killed "+
			"and its restore stopped; restore it again from the checkpoint", err)
	}
	return nil
}

// Abort stops the server of a restore that failed and releases the images; nil does nothing. A
// server that had failed by itself is handed to the caller (State.Lazy) with its failure, to
// account for as the reason.
func (l *Lazy) Abort() {
	if l == nil {
		return
	}
	failed := l.stopped()
	l.srv.Kill()
	<-l.srv.Done()
	l.release()
	if failed != nil && l.st.Lazy != nil {
		done := make(chan struct{})
		close(done)
		*l.st.Lazy = adapters.LazyPages{PID: l.srv.PID(), Started: l.srv.Started(), Done: done, Err: func() error { return failed }}
	}
}

// Restored hands the server of a restore that succeeded, whose tree's root is root, to a watcher
// that releases the images once it has exited and kills the tree if it failed, and to the caller
// (State.Lazy) to account for. An error says the server died during the restore: the tree is
// killed, and the caller reaps what it must and removes what the restore made. nil does nothing.
func (l *Lazy) Restored(root int) error {
	if l == nil {
		return nil
	}
	lp := watchLazy(l.srv, root, l.release, l.st.Log)
	if l.st.Lazy != nil {
		*l.st.Lazy = *lp
	}
	select {
	case <-l.srv.Done():
		if err := lp.Err(); err != nil {
			return errs.Precondition("--lazy: %w", err)
		}
	default:
	}
	if l.resp.Stats != nil {
		l.resp.Stats.Notes = append(l.resp.Stats.Notes, LazyNote)
	}
	return nil
}

// restoreLazy starts CRIU's lazy-pages server on the images, restores the tree with
// --lazy-pages, and leaves the server serving its memory, watched by watchLazy.
func restoreLazy(ctx context.Context, env *adapters.Env, st adapters.State, resp *daemonv1.RestoreResponse, criuOpts *rpc.CriuOpts, call criu.Call) error {
	lazy, err := StartLazy(ctx, env, st, resp)
	if err != nil {
		return err
	}
	criuOpts.LazyPages = proto.Bool(true)
	start := time.Now()
	out, err := env.CRIU.Restore(ctx, criuOpts, call)
	adapters.Observe(resp.Stats, "criu_restore", start)
	if err != nil {
		reapFailed(resp.GetCheckpoint().GetPid())
		err = criuFailure(err, env, st.ImageDir, checkpoint.RestoreLog, "") // read before the images go
		lazy.Abort()
		return err
	}
	resp.Pid = out.GetRestore().GetPid()
	if err := lazy.Restored(int(resp.Pid)); err != nil { // the tree is killed, and ours to reap
		var ws unix.WaitStatus
		_, _ = unix.Wait4(int(resp.Pid), &ws, 0, nil)
		return err
	}
	return nil
}

// watchLazy waits for the lazy-pages server to exit, then releases the images. A server that
// failed leaves the tree without the rest of its memory (the kernel would hand it zero-filled
// pages), so the tree is killed at once and the error says so.
func watchLazy(srv *criu.LazyServer, root int, release func(), log *slog.Logger) *adapters.LazyPages {
	done := make(chan struct{})
	var failure error
	go func() {
		defer close(done)
		defer release()
		<-srv.Done()
		err := srv.Err()
		if err == nil {
			log.Info("lazy restore complete: every page served", "pid", root, "took", time.Since(srv.Started()).Round(time.Millisecond))
			return
		}
		sysinfo.KillTree(root)
		failure = fmt.Errorf("%w: the restored tree (PID %d) cannot run without the rest of its memory, so it was killed; "+
			"restore it again from the checkpoint", err, root)
		log.Error("lazy restore failed", "pid", root, "error", failure)
	}()
	return &adapters.LazyPages{PID: srv.PID(), Started: srv.Started(), Done: done, Err: func() error {
		<-done
		return failure
	}}
}
