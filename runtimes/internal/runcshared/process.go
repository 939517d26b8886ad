package runcshared

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/fsnotify/fsnotify"

	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/internal/runccli"
	"github.com/cedana/cedana/sysinfo"
)

// Supervisor is a runc that keeps running while its container does (`runc run` in the
// foreground): runc waits for the container's init, reaps it, deletes the container and exits
// with the init's exit code (128+signal when it was killed).
type Supervisor struct {
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
	state *os.ProcessState
	err   error
}

// Start starts in's runc in a session of its own, not tied to the caller's request or session,
// so that it outlives the daemon. The container's stdio are in.Stdout (runc copies them through
// pipes of its own); runc's own messages go to a log that Err reads.
func (in Invocation) Start() (*Supervisor, error) {
	// Not the request's context: runc outlives the request.
	cmd, logPath, err := in.command(context.Background())
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(logPath)
		return nil, fmt.Errorf("start runc %s: %w", in.Args[0], err)
	}
	s := &Supervisor{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = cmd.Wait()
		s.state = cmd.ProcessState
		if msg := runccli.LastError(s.log); msg != "" {
			s.err = fmt.Errorf("runc %s: %s", in.Args[0], msg)
		}
		os.Remove(s.log)
	}()
	return s, nil
}

// Done is closed once runc has exited.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Err is, once runc has exited, the error runc logged, or how it ended when it logged none.
func (s *Supervisor) Err() error {
	<-s.done
	return s.err
}

// Wait waits for runc to exit and returns its exit code, the container's.
func (s *Supervisor) Wait() (int, error) {
	<-s.done
	if s.state == nil {
		return 0, s.err
	}
	if ws, ok := s.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return s.state.ExitCode(), nil
}

// Signal sends sig to runc, which passes it on to its container (SIGKILL kills runc itself).
func (s *Supervisor) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// KillAll kills runc and every process under it: the CRIU it runs and what that restores.
func (s *Supervisor) KillAll() { sysinfo.KillTree(s.cmd.Process.Pid) }

// Command is the host's runc with root and args, run as the caller's child with its stdio:
// `cedana run runc --no-server`.
func Command(root string, args ...string) (*exec.Cmd, error) {
	bin, err := runcBinary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
	cmd.Env = criu.Env()
	return cmd, nil
}

// WaitPID waits until runc has written the container's init PID to pidFile (runc writes it
// atomically, by a rename, once the container is created) and returns it; runc's error if runc
// exits first. The file's directory is watched: no polling.
func (s *Supervisor) WaitPID(ctx context.Context, pidFile string) (int, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return 0, fmt.Errorf("watch for runc's pid file: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(pidFile)); err != nil {
		return 0, fmt.Errorf("watch for runc's pid file: %w", err)
	}
	for {
		if pid, err := readPIDFile(pidFile); err == nil {
			return pid, nil
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			return 0, fmt.Errorf("watch for runc's pid file: %w", err)
		case <-s.done:
			if pid, err := readPIDFile(pidFile); err == nil {
				return pid, nil // the container ran and ended already
			}
			return 0, cmpErr(s.err, errNoPID)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// readPIDFile reads a PID file runc wrote.
func readPIDFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds no PID", path)
	}
	return pid, nil
}

// cmpErr is err, or def when err is nil.
func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// errNoPID is WaitPID's error when runc ended without starting the container.
var errNoPID = errors.New("runc exited before it started the container")
