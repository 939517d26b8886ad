package runcshared

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/internal/runccli"
	"github.com/cedana/cedana/sysinfo"
)

// runcBinary finds the host's runc, or says how to install it.
func runcBinary() (string, error) {
	path, err := exec.LookPath("runc")
	if err != nil {
		return "", errs.Precondition("runc is not installed: install it (`apt-get install runc`, or `just deps`)")
	}
	return path, nil
}

// Invocation is one run of the host's runc binary.
type Invocation struct {
	Root   string
	CRIU   string   // criu binary for runc's --criu, "" for runc's default
	Args   []string // the runc command and its arguments
	Stdout *os.File // the container's stdout and stderr where runc passes its own; /dev/null if nil
}

// Run runs runc and returns the error runc logged when it fails. runc's own messages go to a
// log file (runc --log), never to the container's stdio. criu started by runc gets the
// environment our own criu gets (criu.Env).
func (in Invocation) Run(ctx context.Context) error {
	cmd, logPath, err := in.command(ctx)
	if err != nil {
		return err
	}
	defer os.Remove(logPath)
	if err := cmd.Run(); err != nil {
		if msg := runccli.LastError(logPath); msg != "" {
			return fmt.Errorf("runc %s: %s", in.Args[0], msg)
		}
		return fmt.Errorf("runc %s: %w", in.Args[0], err)
	}
	return nil
}

// command is in's runc, not started, killed when ctx ends with every process under it (the CRIU
// it runs, which may otherwise wait for ever on a tree it restores), with runc's own messages
// going to a fresh log file (runc --log) whose path it returns; the caller removes that file.
func (in Invocation) command(ctx context.Context) (*exec.Cmd, string, error) {
	bin, err := runcBinary()
	if err != nil {
		return nil, "", err
	}
	logFile, err := os.CreateTemp("", "cedana-runc-*.log")
	if err != nil {
		return nil, "", fmt.Errorf("create runc's log: %w", err)
	}
	logFile.Close()
	args := []string{"--root", in.Root, "--log", logFile.Name(), "--log-format", "json"}
	if in.CRIU != "" {
		args = append(args, "--criu", in.CRIU)
	}
	cmd := exec.CommandContext(ctx, bin, append(args, in.Args...)...)
	cmd.Cancel = func() error { sysinfo.KillTree(cmd.Process.Pid); return nil }
	cmd.Env = criu.Env()
	if in.Stdout != nil {
		cmd.Stdout, cmd.Stderr = in.Stdout, in.Stdout
	}
	return cmd, logFile.Name(), nil
}

// Version is `runc --version`'s first line, with the binary's path.
func Version(ctx context.Context) (string, error) {
	bin, err := runcBinary()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = fmt.Errorf("%w: %s", err, exitErr.Stderr)
		}
		return "", fmt.Errorf("runc --version: %w", err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return fmt.Sprintf("%s (%s)", first, bin), nil
}
