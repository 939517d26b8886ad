// Package adapters defines cedana's request chain (Handler, Adapter, Middleware) and the adapters
// every dump and restore goes through, whatever the runtime. It imports no runtime.
package adapters

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/criu"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
)

// Opts is what a chain's adapters share besides the request and response. It is passed by value,
// so an adapter changes what the adapters after it see without affecting those before it.
type Opts struct {
	// CRIU runs CRIU requests.
	CRIU *criu.Client
	// CRIUVersion is the CRIU version as CRIU reports it (e.g. 40101), recorded in checkpoints.
	CRIUVersion int32
	// CheckpointDir is the default parent directory of new checkpoints.
	CheckpointDir string
	// Compression is the default codec of new checkpoints ("none" keeps a directory).
	Compression string
	// TempDir holds images of archived or remote checkpoints while they are made or restored.
	TempDir string
	// Workers is how many cores compression and decompression may use.
	Workers int
	// S3 reaches the object store for s3:// checkpoints.
	S3 storage.Config
	// PIDWaitTimeout bounds how long a restore waits for the checkpoint's PIDs to be free.
	PIDWaitTimeout time.Duration
	// ImageDir is the checkpoint directory CRIU reads or writes; set by the chain.
	ImageDir string
	// DaemonPID is the PID of the process running the chain, which must never be dumped.
	DaemonPID int
	// Log is the request's logger.
	Log *slog.Logger
	// Claim takes key for one operation at a time and returns its release; while key is taken,
	// another claim fails at once with a Busy error naming what. withcriu.Dump claims the tree
	// it dumps, whatever the runtime and however the request named it. nil: nothing is claimed.
	Claim func(key, what string) (release func(), err error)
	// Progress receives how far long phases have come; nil when nobody watches.
	Progress *Progress
	// DumpCRIU are a runtime's additions to the CRIU dump request (a container's root, external
	// mounts and namespaces, cgroups), applied in order by withcriu.Dump; set by runtime middleware.
	DumpCRIU []func(*rpc.CriuOpts)
	// DumpFrozen run, in order, while CRIU holds the dumped tree frozen with its images written
	// (CRIU's post-dump notification): state to capture consistently with the images, such as a
	// container's writable layer. An error fails the dump and CRIU resumes the tree, so a failure
	// there loses nothing. Set by runtime middleware; they add to the frozen time.
	DumpFrozen []func() error

	// Journal, when set, records where a dump stands in the daemon's state, so that a daemon
	// killed during the dump settles it when it starts again. nil: nothing is recorded
	// (--no-server).
	Journal DumpJournal

	// JobLog is the log of the job a restore brings back, for runtimes that connect their
	// workload's output themselves (runc); "" outside job restores.
	JobLog string
}

// DumpJournal records where a dump stands, so that a daemon killed during the dump can settle it
// when it starts again: roll it back, or make a complete checkpoint of it. PrepareDumpDir calls
// Begin, withcriu.Dump Started and Dumped; the daemon records the end itself (the checkpoint in its
// catalog, or nothing).
type DumpJournal interface {
	// Begin records a dump whose images go into work (just created) for the checkpoint final.
	Begin(work, final string) error
	// Started records the criu process that dumps, and the checkpoint's metadata (with the tree's
	// root PID), before CRIU touches the workload.
	Started(criuPID int, ck *daemonv1.Checkpoint) error
	// Dumped records that the images are complete. withcriu.Dump calls it in CRIU's post-dump
	// notification, after DumpFrozen, with the workload still frozen: once it has returned, the
	// dump counts as done even if nobody hears CRIU's answer. An error makes CRIU resume the
	// workload and fails the dump.
	Dumped() error
}

// Handler handles one request of type Req, filling Resp.
type Handler[Req, Resp any] func(ctx context.Context, opts Opts, req *Req, resp *Resp) error

// Adapter wraps a handler into another.
type Adapter[H any] func(H) H

// Middleware is an ordered list of adapters; the first is outermost.
type Middleware[H any] []Adapter[H]

// Wrap wraps h in adapters, m[0] outermost: it runs first and sees the result last.
func Wrap[H any](h H, m ...Adapter[H]) H {
	for i := len(m) - 1; i >= 0; i-- {
		h = m[i](h)
	}
	return h
}

// With wraps h in adapters, m[0] outermost: it runs first and sees the result last.
func (h Handler[Req, Resp]) With(m ...Adapter[Handler[Req, Resp]]) Handler[Req, Resp] {
	return Wrap(h, m...)
}

// Dumped says whether a dump checkpointed the workload. Once it has, the images may be the
// workload's only copy (CRIU stopped it unless --leave-running): PrepareDumpDir then keeps them
// when a later step fails, and the error says where, instead of removing them.
type Dumped bool

// DumpHandler handles a dump, filling the response, and says whether it checkpointed the
// workload, failed or not: the handler that ends the chain knows (withcriu.Dump), and every
// adapter returns what the handler it wraps returned (false when it fails before calling it).
type DumpHandler func(ctx context.Context, opts Opts, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error)

// With wraps h in adapters, m[0] outermost: it runs first and sees the result last.
func (h DumpHandler) With(m ...Adapter[DumpHandler]) DumpHandler { return Wrap(h, m...) }

// RestoreHandler handles a restore.
type RestoreHandler = Handler[daemonv1.RestoreRequest, daemonv1.RestoreResponse]

// Observe records the time since start as the phase's duration in stats (nil stats: nothing).
func Observe(stats *daemonv1.Stats, phase string, start time.Time) {
	if stats == nil {
		return
	}
	if stats.Phases == nil {
		stats.Phases = map[string]*durationpb.Duration{}
	}
	stats.Phases[phase] = durationpb.New(time.Since(start))
}

// timeTotal creates *stats if need be, for the adapters inside, and returns what records the time
// since now as its Total: `defer timeTotal(&resp.Stats)()`.
func timeTotal(stats **daemonv1.Stats) func() {
	start := time.Now()
	if *stats == nil {
		*stats = &daemonv1.Stats{}
	}
	s := *stats
	return func() { s.Total = durationpb.New(time.Since(start)) }
}

// TreeClaim is the key a dump claims (Opts.Claim; withcriu.Dump does) to dump the tree rooted at
// pid, and how the busy error names it.
func TreeClaim(pid int) (key, what string) {
	return fmt.Sprintf("tree:%d", pid), fmt.Sprintf("the process tree of PID %d", pid)
}
