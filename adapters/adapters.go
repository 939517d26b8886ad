// Package adapters defines cedana's request chain (Handler, Adapter, Middleware), what its
// adapters share (the daemon's Env, the request's State), and the adapters every dump and restore
// goes through, whatever the runtime. It imports no runtime.
package adapters

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// Handler handles one request of type Req, filling Resp.
type Handler[Req, Resp any] func(ctx context.Context, env *Env, st State, req *Req, resp *Resp) error

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
type DumpHandler func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error)

// With wraps h in adapters, m[0] outermost: it runs first and sees the result last.
func (h DumpHandler) With(m ...Adapter[DumpHandler]) DumpHandler { return Wrap(h, m...) }

// RestoreHandler handles a restore.
type RestoreHandler = Handler[daemonv1.RestoreRequest, daemonv1.RestoreResponse]

// Observe records the time since start as the phase's duration in stats (nil stats: nothing).
func Observe(stats *daemonv1.Stats, phase string, start time.Time) {
	observeFor(stats, phase, time.Since(start))
}

// observeFor records that phase took d in stats; nil stats record nothing.
func observeFor(stats *daemonv1.Stats, phase string, d time.Duration) {
	if stats == nil {
		return
	}
	if stats.Phases == nil {
		stats.Phases = map[string]*durationpb.Duration{}
	}
	stats.Phases[phase] = durationpb.New(d)
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

// OrNew returns *p, set first to a new, empty M if it is nil: for the optional messages of a
// request that a handler fills in.
func OrNew[M any](p **M) *M {
	if *p == nil {
		*p = new(M)
	}
	return *p
}
