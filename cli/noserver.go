package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// runInProcess runs a process workload as the CLI's own child, with the CLI's stdio, and returns
// its exit code as the command's: `cedana run process --no-server`.
func runInProcess(ctx context.Context, env Env, req *daemonv1.RunRequest) error {
	if req.Type != features.Process {
		return fmt.Errorf("--no-server runs process workloads only, not %s", req.Type)
	}
	p := req.GetProcess()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir, cmd.Env = p.WorkingDir, p.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.Stdin, env.Stdout, env.Stderr
	if req.Log != "" {
		out, err := os.OpenFile(req.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open --out: %w", err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot run %s: %w", p.Path, errors.Unwrap(err))
	}
	return waitFor(ctx, cmd.Process)
}

// restoreInProcess runs the daemon's restore chain in this process, which becomes the restored
// tree's parent, waits for the tree's root and returns its exit code as the command's:
// `cedana restore process --no-server`.
func restoreInProcess(ctx context.Context, cfg config.Config, env Env, req *daemonv1.RestoreRequest) error {
	log := config.Log{Level: "warn", Format: cfg.Log.Format}.Logger(env.Stderr)
	resp := &daemonv1.RestoreResponse{}
	if err := chain.Restore()(ctx, chain.NewEnv(ctx, cfg, log), adapters.State{Log: log}, req, resp); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "Restored, PID: %d\n", resp.Pid)
	proc, err := os.FindProcess(int(resp.Pid))
	if err != nil {
		return err
	}
	return waitFor(ctx, proc)
}

// waitFor waits for a child, passing on SIGINT/SIGTERM (ctx's end) to it, and returns its exit
// code in the shell's convention (128+signal when killed).
func waitFor(ctx context.Context, proc *os.Process) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = proc.Signal(syscall.SIGTERM)
		case <-done:
		}
	}()
	state, err := proc.Wait()
	if err != nil {
		return err
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitCode(128 + int(ws.Signal()))
	}
	return exitCode(state.ExitCode())
}
