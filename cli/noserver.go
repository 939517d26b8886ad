package cli

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// runInProcess runs a workload as the CLI's own child, with the CLI's stdio, and returns its exit
// code as the command's: `cedana run <runtime> --no-server`, for a runtime that has that mode; its
// PID goes to pidFile when there is one.
func runInProcess(ctx context.Context, env Env, req *daemonv1.RunRequest, pidFile string) error {
	run, ok := features.NoServer.Lookup(req.Type)
	if !ok {
		return noServerMode(req.Type)
	}
	stdio := features.Stdio{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr}
	if req.Log != "" {
		out, err := os.OpenFile(req.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open --out: %w", err)
		}
		defer out.Close()
		stdio.Stdout, stdio.Stderr = out, out
	}
	proc, err := run(req, stdio)
	if err != nil {
		return err
	}
	if err := writePIDFile(pidFile, "job", proc.Pid); err != nil {
		_ = proc.Kill()
		_, _ = proc.Wait()
		return err
	}
	if !sysinfo.IsChild(proc.Pid) {
		return nil // left to the runtime's own supervisor (runc's --detach)
	}
	return waitFor(ctx, proc)
}

// noServerMode is the error for --no-server with a runtime that has no such mode.
func noServerMode(runtime string) error {
	return fmt.Errorf("the %s runtime has no --no-server mode (its workloads are not children of this command): "+
		"drop --no-server and go through the daemon", runtime)
}

// restoreInProcess runs the daemon's restore chain in this process, which becomes the restored
// tree's parent, waits for the tree's root and returns its exit code as the command's:
// `cedana restore <runtime> --no-server`, for a runtime that has that mode.
func restoreInProcess(ctx context.Context, cfg config.Config, env Env, req *daemonv1.RestoreRequest, pidFile string) error {
	if _, ok := features.NoServer.Lookup(req.Type); !ok {
		return noServerMode(req.Type)
	}
	log := config.Log{Level: "warn", Format: cfg.Log.Format}.Logger(env.Stderr)
	sup := &adapters.Supervision{}
	sup.Stdout, _ = env.Stdout.(*os.File)
	if req.Log != "" {
		out, err := os.OpenFile(req.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open --out: %w", err)
		}
		defer out.Close()
		sup.Stdout = out
	}
	resp := &daemonv1.RestoreResponse{}
	if err := chain.Restore()(ctx, chain.NewEnv(ctx, cfg, log), adapters.State{Log: log, Supervise: sup}, req, resp); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "Restored, PID: %d\n", resp.Pid)
	if err := writePIDFile(pidFile, "restored", int(resp.Pid)); err != nil {
		if sup.Abort != nil {
			sup.Abort() // runc runs in a session of its own: it would outlive this command
		}
		return err
	}
	if sup.Wait != nil {
		return waitSupervised(ctx, sup)
	}
	if !sysinfo.IsChild(int(resp.Pid)) {
		return nil // the runtime's own supervisor keeps it (runc's --detach): nothing to wait for
	}
	proc, err := os.FindProcess(int(resp.Pid))
	if err != nil {
		return err
	}
	return waitFor(ctx, proc)
}

// waitSupervised waits for a workload its runtime's supervisor (this process's child) reports
// the end of, passing on SIGINT/SIGTERM (ctx's end) to it, and returns its exit code.
func waitSupervised(ctx context.Context, sup *adapters.Supervision) error {
	return waitSignalling(ctx, sup.Signal, sup.Wait)
}

// waitFor waits for a child, passing on SIGINT/SIGTERM (ctx's end) to it, and returns its exit
// code in the shell's convention (128+signal when killed).
func waitFor(ctx context.Context, proc *os.Process) error {
	return waitSignalling(ctx, proc.Signal, func() (int, error) {
		state, err := proc.Wait()
		if err != nil {
			return 0, err
		}
		if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return state.ExitCode(), nil
	})
}

// waitSignalling returns, as the command's exit code, the code wait returns, sending SIGTERM with
// signal if ctx ends (SIGINT/SIGTERM) first.
func waitSignalling(ctx context.Context, signal func(os.Signal) error, wait func() (int, error)) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = signal(syscall.SIGTERM)
		case <-done:
		}
	}()
	code, err := wait()
	if err != nil {
		return err
	}
	return exitCode(code)
}
