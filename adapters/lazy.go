// Lazy restores: the temporary images a lazy-pages server serves after the chain has returned,
// and how the daemon accounts for that server.

package adapters

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// ImagesHold removes a temporary images directory once the chain and every holder are done
// with it.
type ImagesHold struct {
	mu   sync.Mutex
	refs int
	dir  string
}

// newImagesHold holds dir for the chain, which releases it when it returns.
func newImagesHold(dir string) *ImagesHold { return &ImagesHold{refs: 1, dir: dir} }

// Hold keeps the directory past the chain until the returned release is called (once). On a nil
// ImagesHold (the images are the checkpoint's own directory) it holds nothing.
func (h *ImagesHold) Hold() (release func()) {
	if h == nil {
		return func() {}
	}
	h.mu.Lock()
	h.refs++
	h.mu.Unlock()
	var once sync.Once
	return func() { once.Do(h.release) }
}

// release drops one hold, removing the directory with the last.
func (h *ImagesHold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refs--; h.refs == 0 {
		_ = os.RemoveAll(h.dir)
	}
}

// LazyPages is the lazy-pages server a lazy restore leaves serving the restored tree's memory.
type LazyPages struct {
	// PID is the server's process ID.
	PID int
	// Started is when it started.
	Started time.Time
	// Done is closed once the server has exited and its aftermath is settled: the images
	// released and, if it failed, the tree killed.
	Done <-chan struct{}
	// Err, once Done is closed, is nil when every page was served, or else what happened to the
	// server and to the tree.
	Err func() error
}

// Status says where the server stands: "serving since ... (PID n)", "failed: ...", or "" once
// every page has been served.
func (l *LazyPages) Status() string {
	if l == nil || l.Done == nil {
		return ""
	}
	select {
	case <-l.Done:
		if err := l.Err(); err != nil {
			return "failed: " + err.Error()
		}
		return ""
	default:
		return fmt.Sprintf("serving since %s (criu lazy-pages, PID %d)", l.Started.Format(time.RFC3339), l.PID)
	}
}

// CheckLazy refuses a lazy restore before anything is touched when lazy restores cannot work here
// (env.LazyCheck) or through the runtime the request names (lazyRuntime; the runtime of a
// checkpoint named by its metadata only is checked once that is read, by the chain).
func CheckLazy(lazyRuntime func(string) error) Adapter[RestoreHandler] {
	return func(next RestoreHandler) RestoreHandler {
		return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
			if !req.Lazy {
				return next(ctx, env, st, req, resp)
			}
			if req.Type != "" {
				if err := lazyRuntime(req.Type); err != nil {
					return err
				}
			}
			if env.LazyCheck == nil {
				return errs.Precondition("--lazy: this process cannot keep a lazy-pages server running after the restore: restore through the daemon")
			}
			if err := env.LazyCheck(ctx); err != nil {
				return errs.Precondition("--lazy: lazy restores do not work here: %w (see `cedana check`); restore without --lazy", err)
			}
			return next(ctx, env, st, req, resp)
		}
	}
}
