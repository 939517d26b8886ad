// Lazy restores: the tree runs as soon as CRIU has restored it, its memory served on demand by
// CRIU's lazy-pages server from the images, which the daemon watches until every page is back.

package withcriu

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// LazyNote is the note a lazy restore adds to its stats.
const LazyNote = "restored lazily: CRIU's lazy-pages server serves the memory on demand until every page is back"

// restoreLazy starts CRIU's lazy-pages server on the images (unpacked first from an archive),
// restores the tree with --lazy-pages, and leaves the server serving its memory, watched by
// watchLazy. The images directory is held (State.Images) until the server has exited.
func restoreLazy(ctx context.Context, env *adapters.Env, st adapters.State, resp *daemonv1.RestoreResponse, criuOpts *rpc.CriuOpts, call criu.Call) error {
	if rs := st.RestoreStream; rs.Pending() {
		if err := rs.Extract("a lazy restore serves the memory from image files"); err != nil {
			return err
		}
	}
	release := st.Images.Hold()
	start := time.Now()
	srv, err := env.CRIU.StartLazyPages(ctx, st.ImageDir, criu.LazyPagesLog, criuOpts.GetLogLevel())
	adapters.Observe(resp.Stats, "lazy_pages_start", start)
	if err != nil {
		release()
		return errs.Precondition("--lazy: %w", err)
	}
	criuOpts.LazyPages = proto.Bool(true)
	start = time.Now()
	out, err := env.CRIU.Restore(ctx, criuOpts, call)
	adapters.Observe(resp.Stats, "criu_restore", start)
	if err != nil {
		srv.Kill()
		<-srv.Done()
		reapFailed(resp.GetCheckpoint().GetPid())
		err = criuFailure(err, env, st.ImageDir, checkpoint.RestoreLog, "")
		release()
		return err
	}
	resp.Pid = out.GetRestore().GetPid()
	lp := watchLazy(srv, int(resp.Pid), release, st.Log)
	if st.Lazy != nil {
		*st.Lazy = *lp
	}
	select {
	case <-srv.Done():
		if err := lp.Err(); err != nil { // it died during the restore: the tree is killed, and ours to reap
			var ws unix.WaitStatus
			_, _ = unix.Wait4(int(resp.Pid), &ws, 0, nil)
			return errs.Precondition("--lazy: %w", err)
		}
	default:
	}
	if resp.Stats != nil {
		resp.Stats.Notes = append(resp.Stats.Notes, LazyNote)
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
		killTree(root)
		failure = fmt.Errorf("%w: the restored tree (PID %d) cannot run without the rest of its memory, so it was killed; "+
			"restore it again from the checkpoint", err, root)
		log.Error("lazy restore failed", "pid", root, "error", failure)
	}()
	return &adapters.LazyPages{PID: srv.PID(), Started: srv.Started(), Done: done, Err: func() error {
		<-done
		return failure
	}}
}

// killTree kills every process of the tree rooted at root with SIGKILL, twice over to catch
// children forked meanwhile.
func killTree(root int) {
	for range 2 {
		for _, pid := range sysinfo.Tree(root) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}
