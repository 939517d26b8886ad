// Package e2e tests the real cedana binary end to end: a real daemon on a temporary socket, real
// workloads, the real CRIU. The tests need root and CRIU; outside CI they skip when either is
// missing, and with CI=true they fail instead.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/internal/testutil"
)

// Binaries built once by TestMain.
var (
	cedanaBin       string // default build: every runtime
	cedanaCustomBin string // -tags custom: no runtime
	memhogBin       string // bench/memhog: a process that fills N MiB
	skipReason      string // why the tests cannot run here, if they cannot
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipReason = "end-to-end tests need root"
	default:
		if _, err := exec.LookPath("criu"); err != nil {
			if _, err := os.Stat("/opt/cedana/criu/bin/criu"); err != nil {
				skipReason = "CRIU is not installed (run `just deps`)"
			}
		}
	}
	if skipReason != "" {
		return m.Run()
	}
	// Orphans of dumped trees are re-parented to us, and reaped by reapAll, instead of waiting for
	// PID 1 to reap them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "set child subreaper:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "cedana-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cedanaBin = filepath.Join(dir, "cedana")
	cedanaCustomBin = filepath.Join(dir, "cedana-custom")
	for bin, tags := range map[string]string{cedanaBin: "", cedanaCustomBin: "custom"} {
		cmd := exec.Command("go", "build", "-tags", tags, "-o", bin, "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build cedana (tags %q): %v\n%s", tags, err, out)
			return 1
		}
	}
	memhogBin = filepath.Join(dir, "memhog")
	if out, err := exec.Command("go", "build", "-o", memhogBin, "../bench/memhog").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build memhog: %v\n%s", err, out)
		return 1
	}
	defer stopContainerd()
	return m.Run()
}

// requireE2E skips (or, under CI=true, fails) a test that cannot run on this machine.
func requireE2E(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testutil.SkipUnlessCI(t, skipReason)
	}
}

// result is a finished CLI invocation.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// daemon is a cedana daemon serving on a temporary socket.
type daemon struct {
	t       *testing.T
	bin     string
	dir     string
	socket  string
	ckDir   string
	env     []string
	cmd     *exec.Cmd
	log     *testutil.Buffer
	exited  chan struct{}
	exitErr error
}

// startDaemon starts bin's daemon with its own socket and checkpoint directory and stops it
// (SIGTERM) when the test ends.
func startDaemon(t *testing.T, bin string, extraEnv ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, bin: bin, dir: dir, socket: filepath.Join(dir, "cedana.sock"), ckDir: filepath.Join(dir, "checkpoints"), log: &testutil.Buffer{}}
	d.env = append(os.Environ(),
		"CEDANA_CONFIG_DIR="+dir, "CEDANA_PROTOCOL=unix", "CEDANA_ADDRESS="+d.socket,
		"CEDANA_CHECKPOINT_DIR="+d.ckDir, "CEDANA_LOG_LEVEL=debug",
		"CEDANA_DB_PATH="+filepath.Join(dir, "state", "cedana.db"), "CEDANA_JOBS_LOG_DIR="+filepath.Join(dir, "logs"))
	d.env = append(d.env, extraEnv...)
	for _, kv := range extraEnv {
		if addr, ok := strings.CutPrefix(kv, "CEDANA_ADDRESS="); ok {
			d.socket = addr
		}
	}
	d.launch()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	d.waitReady()
	return d
}

// launch starts the daemon process.
func (d *daemon) launch() {
	d.t.Helper()
	cmd, exited := newDaemonCmd(d), make(chan struct{})
	require.NoError(d.t, cmd.Start())
	d.cmd, d.exited = cmd, exited
	go func() { d.exitErr = cmd.Wait(); close(exited) }()
}

// kill SIGKILLs the daemon, which gets no chance to clean up, and waits until it is gone.
func (d *daemon) kill() {
	d.t.Helper()
	require.NoError(d.t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
}

// restart starts the daemon again after it stopped, with the same configuration, database and
// directories, and waits until it serves.
func (d *daemon) restart() {
	d.t.Helper()
	d.launch()
	d.waitReady()
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("unix", d.socket); err == nil {
			conn.Close()
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("daemon exited: %v\n%s", d.exitErr, d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("daemon did not listen on %s within 10s:\n%s", d.socket, d.log.String())
}

// stop sends SIGTERM and waits for the daemon to exit.
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	testutil.Stop(d.cmd.Process, d.exited, 15*time.Second)
}

// cli runs the daemon's binary as a client of the daemon.
func (d *daemon) cli(args ...string) result {
	d.t.Helper()
	return runCmd(d.t, d.bin, d.env, args...)
}

func runCmd(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	return startCmd(t, bin, env, args...)()
}

// cliAsync starts the daemon's binary as a client of the daemon; the function it returns waits
// for it to finish.
func (d *daemon) cliAsync(args ...string) func() result {
	d.t.Helper()
	return startCmd(d.t, d.bin, d.env, args...)
}

// startCmd starts bin with args; the function it returns waits (two minutes at most) for it to
// finish.
func startCmd(t *testing.T, bin string, env []string, args ...string) func() result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return func() result {
		t.Helper()
		defer cancel()
		err := cmd.Wait()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatalf("run %s %v: %v", bin, args, err)
		}
		return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	}
}

// workload is a bash tree that counts: the root writes 1, 2, 3, ... to counter five times a
// second and, with a child, a subshell does the same into counter.child. Neither forks anything
// else: their sleep is `read -t` on a FIFO nobody writes to. Every count overwrites the file in
// place with one fixed-width write (never truncating it), so a dump cannot catch the file empty.
// With memory, the root's other child is a memhog holding that many MiB.
type workload struct {
	pid      int
	counter  string
	child    string
	cmd      *exec.Cmd
	exited   chan struct{}
	tick     string
	restored int // PID of the restored root, killed at cleanup
}

// counterScript's arguments: $0 counter, $1 tick FIFO, $2 the child's counter or "", and
// optionally $3 memhog and $4 its MiB.
const counterScript = `exec 3<>"$1"
count() { i=0; while :; do i=$((i+1)); printf "%08d\n" $i 1<>"$1"; read -t 0.2 -u 3 || :; done; }
if [ -n "$2" ]; then ( count "$2" ) & fi
if [ -n "$3" ]; then "$3" -mib "$4" -ready "$0.ready" & fi
count "$0"`

// startCounter starts a counting workload in its own session, with stdio on /dev/null.
func startCounter(t *testing.T, withChild bool) *workload {
	t.Helper()
	return startMemCounter(t, withChild, 0)
}

// startMemCounter is startCounter with a memhog of mib MiB (none for 0) in the tree, started and
// done filling its memory when it returns.
func startMemCounter(t *testing.T, withChild bool, mib int) *workload {
	t.Helper()
	return startMemCounterIn(t, withChild, mib)
}

// startMemCounterIn is startMemCounter, its bash run by the command in (one that execs its
// arguments, such as nsenter), if any.
func startMemCounterIn(t *testing.T, withChild bool, mib int, in ...string) *workload {
	t.Helper()
	dir := t.TempDir()
	w := &workload{counter: filepath.Join(dir, "counter"), tick: filepath.Join(dir, "tick"), exited: make(chan struct{})}
	require.NoError(t, unix.Mkfifo(w.tick, 0o600))
	childArg := ""
	if withChild {
		w.child = filepath.Join(dir, "counter.child")
		childArg = w.child
	}
	args := []string{"-c", counterScript, w.counter, w.tick, childArg}
	if mib > 0 {
		args = append(args, memhogBin, strconv.Itoa(mib))
	}
	w.cmd = exec.Command("bash", args...)
	if len(in) > 0 {
		w.cmd = exec.Command(in[0], append(append(in[1:], "bash"), args...)...)
	}
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, w.cmd.Start())
	w.pid = w.cmd.Process.Pid
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		for _, pid := range []int{w.pid, w.restored} {
			if pid > 0 {
				killTree(pid)
			}
		}
	})
	require.Eventually(t, func() bool { return readCounter(w.counter) >= 2 && (w.child == "" || readCounter(w.child) >= 2) },
		10*time.Second, 20*time.Millisecond, "the workload did not start counting")
	if mib > 0 {
		require.Eventually(t, func() bool { _, err := os.Stat(w.counter + ".ready"); return err == nil },
			time.Minute, 20*time.Millisecond, "memhog did not fill its %d MiB", mib)
	}
	return w
}

// waitExited waits until the original workload process has exited and been reaped.
func (w *workload) waitExited(t *testing.T) {
	t.Helper()
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("workload %d still running", w.pid)
	}
}

// running reports whether the original workload is still running.
func (w *workload) running() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// readCounter returns the number in path, or -1.
func readCounter(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return -1
	}
	return n
}

// requireCounting asserts that path's counter goes on increasing from at least from (and not from
// far beyond it: it resumed rather than restarted or skipped).
func requireCounting(t *testing.T, path string, from int) {
	t.Helper()
	var first int
	require.Eventually(t, func() bool { first = readCounter(path); return first >= from }, 5*time.Second, 20*time.Millisecond,
		"counter %s is %d, below the dumped %d", path, readCounter(path), from)
	require.Less(t, first, from+25, "counter %s jumped from %d to %d: it did not resume where it stopped", path, from, first)
	require.Eventually(t, func() bool { return readCounter(path) >= first+3 }, 5*time.Second, 20*time.Millisecond,
		"counter %s stopped at %d after the restore", path, readCounter(path))
}

// requireStopped asserts that path's counter no longer changes and returns its value.
func requireStopped(t *testing.T, path string) int {
	t.Helper()
	before := readCounter(path)
	time.Sleep(600 * time.Millisecond)
	after := readCounter(path)
	require.Equal(t, before, after, "counter %s still moving after the dump", path)
	require.GreaterOrEqual(t, after, 0, "counter %s unreadable after the dump", path)
	return after
}

// reapAll reaps our zombie children among pids (orphans of a dumped tree are re-parented to us).
func reapAll(pids ...int) {
	for _, pid := range pids {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

// killTree kills pid and its descendants. It does nothing for pid ≤ 1: kill(0) would kill our own
// process group (and the CI runner with it), kill(-1) everything, and PID 1 is init.
func killTree(pid int) {
	if pid <= 1 {
		return
	}
	var all []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		all = append(all, p)
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			for _, field := range strings.Fields(string(data)) {
				if kid, err := strconv.Atoi(field); err == nil {
					queue = append(queue, kid)
				}
			}
		}
	}
	for _, p := range all {
		_ = unix.Kill(p, unix.SIGKILL)
	}
	reapAll(all...)
}

// pidGone reports whether no process (not even a zombie) has pid.
func pidGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return errors.Is(err, fs.ErrNotExist)
}

// parentOf returns pid's parent PID.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, err := strconv.Atoi(fields[1])
	require.NoError(t, err)
	return ppid
}

// unusedPID returns a PID no process has.
func unusedPID(t *testing.T) int {
	t.Helper()
	for pid := 4000000; pid > 3000000; pid-- {
		if pidGone(pid) {
			return pid
		}
	}
	t.Fatal("no unused PID found")
	return 0
}

// entries lists the names in dir (nil when dir does not exist).
func entries(dir string) []string {
	list, _ := os.ReadDir(dir)
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

// newSetsidCmd is exec.Command in a new session with stdio on /dev/null.
func newSetsidCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

// curlJSON posts body to a DaemonService method with the real curl and returns the response body.
func curlJSON(t *testing.T, d *daemon, method, body string) string {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--unix-socket", d.socket, "-H", "Content-Type: application/json",
		"-d", body, "http://localhost/cedana.daemon.v1.DaemonService/"+method).Output()
	require.NoError(t, err)
	return string(out)
}

// newDaemonCmd is `<bin> daemon start` with d's environment and log.
func newDaemonCmd(d *daemon) *exec.Cmd {
	cmd := exec.Command(d.bin, "daemon", "start")
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = d.log, d.log
	return cmd
}
