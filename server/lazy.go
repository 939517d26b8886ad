package server

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// lazyBoard is the lazy-pages servers of jobs restored lazily, by JID, for `ps` and `job
// inspect`: a server still serving, or one that failed (kept until the job's next restore).
type lazyBoard struct {
	mu    sync.Mutex
	byJID map[string]*adapters.LazyPages
}

// status is where job jid's lazy-pages server stands ("" when it has none).
func (b *lazyBoard) status(jid string) string {
	b.mu.Lock()
	lp := b.byJID[jid]
	b.mu.Unlock()
	return lp.Status()
}

// track accounts for a lazy restore's server until it exits: on job jid (when set) for `ps`, and
// in the daemon's log. A failure is written into the job's log (logPath, when set) too.
func (b *lazyBoard) track(s *service, jid, logPath string, pid int32, lp *adapters.LazyPages) {
	b.mu.Lock()
	if b.byJID == nil {
		b.byJID = map[string]*adapters.LazyPages{}
	}
	if jid != "" {
		b.byJID[jid] = lp
	}
	b.mu.Unlock()
	go func() {
		err := lp.Err()
		if err == nil {
			b.mu.Lock()
			if b.byJID[jid] == lp {
				delete(b.byJID, jid)
			}
			b.mu.Unlock()
			return
		}
		if logPath != "" {
			appendLine(logPath, fmt.Sprintf("cedana %s: lazy restore of PID %d failed: %v", time.Now().Format(time.RFC3339), pid, err))
		}
		s.log.Error("lazy-pages server failed", "jid", jid, "pid", pid, "error", err)
	}()
}

// forget drops job jid's entry: the job is being restored again.
func (b *lazyBoard) forget(jid string) {
	b.mu.Lock()
	delete(b.byJID, jid)
	b.mu.Unlock()
}

// appendLine appends line to the file at path, best effort.
func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = fmt.Fprintln(f, line)
}

// lazyState is the request's lazy-pages server to account for, nil unless req.Lazy.
func lazyState(req *daemonv1.RestoreRequest) *adapters.LazyPages {
	if !req.Lazy {
		return nil
	}
	return &adapters.LazyPages{}
}
