package process

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
	"time"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// counter is the self-test's workload: one process (no child that would linger as an orphan
// after the dump) that appends a count, one line every 0.1 s, to the file its argument names.
var counter = features.Helper{Name: "check-counter", Main: func(ctx context.Context, args []string, _ features.Stdio) error {
	if len(args) != 1 {
		return errors.New("usage: check-counter <file>")
	}
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 1; ; i++ {
		if _, err := fmt.Fprintln(f, i); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}}

// verifyTimeout bounds how long Verify waits for the restored counter to go on.
const verifyTimeout = 10 * time.Second

// SelfTest starts a counter (cedana's check-counter helper) that counts into dir/counter, in its
// own session, as this process's child: the workload of `cedana check --full`.
func SelfTest(_ context.Context, dir string) (features.SelfTestWorkload, error) {
	w := &selfTest{counter: filepath.Join(dir, "counter"), exited: make(chan struct{})}
	cmd, err := counter.Command(w.counter)
	if err != nil {
		return nil, err
	}
	w.cmd = cmd
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the check counter: %w", err)
	}
	go func() {
		_ = w.cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

type selfTest struct {
	cmd     *exec.Cmd
	counter string
	exited  chan struct{}
	atDump  int
}

func (w *selfTest) Details() *daemonv1.Details {
	return &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: int32(w.cmd.Process.Pid)}}
}

// Dumped waits until the dumped counter has exited and been reaped, for its PID to be free for the
// restore, and notes where its counter stood.
func (w *selfTest) Dumped(ctx context.Context) error {
	select {
	case <-w.exited:
	case <-ctx.Done():
		return fmt.Errorf("the dumped process %d is still running: %w", w.cmd.Process.Pid, ctx.Err())
	}
	w.atDump = lastCount(w.counter)
	return nil
}

// Verify checks that pid is the dumped counter's PID and that its counter goes on past where it
// stood at the dump.
func (w *selfTest) Verify(ctx context.Context, pid int32) (string, error) {
	if int(pid) != w.cmd.Process.Pid {
		return "", fmt.Errorf("restored as PID %d, not as the dumped PID %d", pid, w.cmd.Process.Pid)
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if n := lastCount(w.counter); n > w.atDump {
			return fmt.Sprintf("PID %d counts on: %d at the dump, %d now", pid, w.atDump, n), nil
		}
		if !sysinfo.Alive(int(pid), 0) {
			return "", fmt.Errorf("restored PID %d is not running", pid)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("restored PID %d did not count on past %d within %s", pid, w.atDump, verifyTimeout)
		case <-tick.C:
		}
	}
}

// Stop kills the counter's session, the first counter or the restored one, and reaps the counter.
func (w *selfTest) Stop(restored int32) error {
	_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	if restored == 0 {
		<-w.exited
		return nil
	}
	_ = syscall.Kill(int(restored), syscall.SIGKILL)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(int(restored), &ws, 0, nil); err != nil && !errors.Is(err, syscall.ECHILD) {
		return fmt.Errorf("reap restored PID %d: %w", restored, err)
	}
	return nil
}

// lastCount is the last number the counter file holds; 0 when it holds none.
func lastCount(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	n, _ := strconv.Atoi(lines[len(lines)-1])
	return n
}
