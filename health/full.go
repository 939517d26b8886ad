package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// The steps of a full check, in order.
const (
	StepSpawn   = "spawn"
	StepDump    = "dump"
	StepRestore = "restore"
	StepVerify  = "verify"
	StepCleanup = "cleanup"
)

// Full dumps and restores a tiny workload through this process's own chains, in a temp dir, and
// returns each step; after a failure only cleanup follows. It kills and reaps the workload and
// removes the temp dir whatever happens. The workload comes from the first runtime that has a
// self-test (features.SelfTest).
func Full(ctx context.Context, env *adapters.Env, st adapters.State) []*daemonv1.CheckStep {
	f := &full{env: env, st: st}
	runtimes := features.SelfTest.Names()
	if len(runtimes) == 0 {
		f.step(StepSpawn, func() (string, error) {
			return "", errors.New("no runtime in this binary can run a self-test: build cedana with its default runtimes")
		})
		return f.steps
	}
	f.runtime = runtimes[0]
	_ = f.step(StepSpawn, func() (string, error) { return f.spawn(ctx) }) && f.step(StepDump, func() (string, error) { return f.dump(ctx) }) &&
		f.step(StepRestore, func() (string, error) { return f.restore(ctx) }) &&
		f.step(StepVerify, func() (string, error) { return f.work.Verify(ctx, f.pid) })
	f.cleanup()
	return f.steps
}

// AddFull runs Full and adds its steps to r, and its first failure to r's problems.
func AddFull(ctx context.Context, r *daemonv1.HealthCheckResponse, env *adapters.Env, st adapters.State) {
	r.Steps = Full(ctx, env, st)
	for _, s := range r.Steps {
		if !s.Ok {
			r.Errors = append(r.Errors, fmt.Sprintf("full check failed at step %s: %s", s.Name, s.Detail))
			return
		}
	}
}

type full struct {
	env     *adapters.Env
	st      adapters.State
	runtime string
	steps   []*daemonv1.CheckStep
	dir     string
	work    features.SelfTestWorkload
	path    string
	pid     int32
}

// step runs do as the step called name and records it; it reports whether it succeeded.
func (f *full) step(name string, do func() (string, error)) bool {
	start := time.Now()
	detail, err := do()
	s := &daemonv1.CheckStep{Name: name, Ok: err == nil, Took: durationpb.New(time.Since(start)), Detail: detail}
	if err != nil {
		s.Detail = err.Error()
	}
	f.steps = append(f.steps, s)
	return s.Ok
}

func (f *full) spawn(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp(f.env.TempDir, "cedana-check-")
	if err != nil {
		return "", fmt.Errorf("make a temp dir for the check (checkpoint.temp_dir): %w", err)
	}
	f.dir = dir
	spawn, err := features.SelfTest.Get(f.runtime)
	if err != nil {
		return "", err
	}
	if f.work, err = spawn(ctx, dir); err != nil {
		return "", err
	}
	return fmt.Sprintf("a tiny %s workload in %s", f.runtime, dir), nil
}

func (f *full) dump(ctx context.Context) (string, error) {
	dump, err := chain.Dump(f.runtime)
	if err != nil {
		return "", err
	}
	req := &daemonv1.DumpRequest{Type: f.runtime, Dir: f.dir, Name: "checkpoint", Compression: "none", Details: f.work.Details()}
	resp := &daemonv1.DumpResponse{}
	if _, err := dump(ctx, f.env, f.st, req, resp); err != nil {
		return "", err
	}
	f.path = resp.Path
	if err := f.work.Dumped(ctx); err != nil {
		return "", err
	}
	return "checkpoint in " + resp.Path, nil
}

func (f *full) restore(ctx context.Context) (string, error) {
	resp := &daemonv1.RestoreResponse{}
	if err := chain.Restore()(ctx, f.env, f.st, &daemonv1.RestoreRequest{Type: f.runtime, Path: f.path}, resp); err != nil {
		return "", err
	}
	f.pid = resp.Pid
	return fmt.Sprintf("restored as PID %d", resp.Pid), nil
}

// cleanup is the last step: stop the workload, remove the temp dir.
func (f *full) cleanup() {
	if f.dir == "" {
		return
	}
	f.step(StepCleanup, func() (string, error) {
		var errStop error
		if f.work != nil {
			errStop = f.work.Stop(f.pid)
		}
		if err := os.RemoveAll(f.dir); err != nil {
			return "", errors.Join(errStop, fmt.Errorf("remove %s: %w", f.dir, err))
		}
		return "workload stopped, " + f.dir + " removed", errStop
	})
}
