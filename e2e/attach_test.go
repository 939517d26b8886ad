package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/internal/testutil"
)

// TestExitCodeThroughAttach: `run --attach` streams the job's output and exits with its exit code.
func TestExitCodeThroughAttach(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	r := d.cli("run", "process", "--attach", "--jid", "answer", "--", "sh", "-c", "echo hello; echo oops >&2; exit 42")
	assert.Equal(t, 42, r.code, r.String())
	assert.Contains(t, r.stdout, "hello\n")
	assert.Contains(t, r.stdout, "oops\n")

	// Attaching to the finished job prints the tail of its log and its exit code.
	r = d.cli("job", "attach", "answer")
	assert.Equal(t, 42, r.code, r.String())
	assert.Contains(t, r.stdout, "hello")
	assert.Regexp(t, `answer\s+process\s+\d+\s+halted \(exit 42\)`, d.cli("ps").stdout)
}

// TestExitCodeNoServer: without a daemon, run and restore exit with the workload's exit code.
func TestExitCodeNoServer(t *testing.T) {
	requireE2E(t)
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
	r := runCmd(t, cedanaBin, env, "run", "process", "--no-server", "--", "sh", "-c", "echo direct; exit 42")
	assert.Equal(t, 42, r.code, r.String())
	assert.Equal(t, "direct\n", r.stdout)

	// A workload that waits for a file, dumped through a daemon, restored with --no-server: the CLI
	// becomes its parent and exits with its exit code.
	d := startDaemon(t, cedanaBin)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	ready := filepath.Join(dir, "ready")
	script := `exec 3<>"$1"; : >"$2"; while [ ! -e "$0" ]; do read -t 0.1 -u 3 || :; done; exit 42`
	cmd := newSetsidCmd("bash", "-c", script, gate, tick, ready)
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { killTree(pid) })
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 10*time.Second, 10*time.Millisecond,
		"the workload did not get to its loop")
	r = d.cli("dump", "process", strconv.Itoa(pid), "--dir", dir, "--name", "ck")
	require.Equal(t, 0, r.code, r.String())
	<-exited

	restoreCmd := exec.Command(cedanaBin, "restore", "process", "--no-server", "--path", filepath.Join(dir, "ck"))
	restoreCmd.Env = d.env
	var stderr bytes.Buffer
	restoreCmd.Stderr = &stderr
	require.NoError(t, restoreCmd.Start())
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "Restored, PID:") }, 10*time.Second, 20*time.Millisecond, stderr.String())
	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	err := restoreCmd.Wait()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "restore --no-server should exit with the workload's code: %v %s", err, stderr.String())
	assert.Equal(t, 42, exitErr.ExitCode())
}

// TestAttachForwardsStdin: job attach streams output and forwards stdin, also after a dump and
// restore of the job (its stdin is a FIFO CRIU restores by path).
func TestAttachForwardsStdin(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	r := d.cli("run", "process", "--jid", "echoer", "--", "sh", "-c", `while read line; do echo "got $line"; [ "$line" = bye ] && exit 7; done`)
	require.Equal(t, 0, r.code, r.String())
	pid, _ := strconv.Atoi(regexp.MustCompile(`PID (\d+)`).FindStringSubmatch(r.stdout)[1])
	t.Cleanup(func() { killTree(pid) })

	first := startAttach(t, d, "echoer")
	first.send(t, "one\n")
	first.waitOutput(t, "got one")

	// Checkpoint and restore the job: its input still reaches it, and its exit code is known.
	r = d.cli("dump", "job", "echoer")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, 128+9, first.wait(t), "an attach ends with the job: CRIU killed it after the dump")
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	r = d.cli("restore", "job", "echoer")
	require.Equal(t, 0, r.code, r.String())

	second := startAttach(t, d, "echoer")
	second.send(t, "two\n")
	second.waitOutput(t, "got two")
	second.send(t, "bye\n")
	assert.Equal(t, 7, second.wait(t), "job attach exits with the job's exit code")
	assert.NotContains(t, second.out.String(), "got one", "attach streams from the end of the log")
}

// attachment is a running `cedana job attach`.
type attachment struct {
	cmd    *exec.Cmd
	stdin  interface{ Write([]byte) (int, error) }
	out    *testutil.Buffer
	cancel context.CancelFunc
}

// startAttach attaches to job jid, which must answer each line of input with "got <line>", and
// returns once the attach streams the job's output: it sends "sync" lines until an answer shows.
func startAttach(t *testing.T, d *daemon, jid string) *attachment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	a := &attachment{cmd: exec.CommandContext(ctx, cedanaBin, "job", "attach", jid), out: &testutil.Buffer{}, cancel: cancel}
	a.cmd.Env = d.env
	stdin, err := a.cmd.StdinPipe()
	require.NoError(t, err)
	a.stdin = stdin
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	require.NoError(t, a.cmd.Start())
	t.Cleanup(func() { cancel(); _ = a.cmd.Wait() })
	// Attached from the end of the log: an answer written before the attach got there is not
	// streamed, so ask again until one is.
	require.Eventually(t, func() bool {
		_, _ = stdin.Write([]byte("sync\n"))
		return strings.Contains(a.out.String(), "got sync")
	}, 10*time.Second, 50*time.Millisecond, "the attach never streamed the job's answers")
	return a
}

func (a *attachment) send(t *testing.T, s string) {
	t.Helper()
	_, err := a.stdin.Write([]byte(s))
	require.NoError(t, err)
}

func (a *attachment) waitOutput(t *testing.T, want string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(a.out.String(), want) }, 10*time.Second, 20*time.Millisecond,
		"attach output %q lacks %q", a.out.String(), want)
}

// wait returns the attach command's exit code.
func (a *attachment) wait(t *testing.T) int {
	t.Helper()
	err := a.cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	require.NoError(t, err, a.out.String())
	return 0
}
