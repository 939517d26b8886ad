package criu_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/internal/testutil"
)

const rlimitLine = "rlimit: Can't setup RLIMIT_NOFILE for self"

// counterScript bumps a counter in ./F every 0.1s, overwriting it in place with one fixed-width
// write so that a dump never catches it truncated and empty.
const counterScript = `i=0; while :; do i=$((i+1)); printf "%08d\n" $i 1<>F; sleep 0.1; done`

func TestMain(m *testing.M) {
	// Processes orphaned by a dump (the counter's `sleep`) or by killing a
	// restored tree are reparented to the nearest subreaper. Make that us,
	// so the tests can reap them: where PID 1 does not reap (some sandboxes),
	// their zombies would otherwise hold the pids that restore needs.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	os.Exit(m.Run())
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// watchdog kills our criu children if they are still around after d: the
// Client never kills criu, so a hung criu would otherwise hang the test
// binary until its timeout. Call the returned func when the request is done.
func watchdog(t *testing.T, d time.Duration) (stop func()) {
	timer := time.AfterFunc(d, func() {
		for _, pid := range childrenNamed("criu") {
			t.Errorf("criu %d still running after %v: killing it", pid, d)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	})
	return func() { timer.Stop() }
}

func TestExtraFileFD(t *testing.T) {
	assert.Equal(t, int32(4), criu.ExtraFileFD(0))
	assert.Equal(t, int32(6), criu.ExtraFileFD(2))
}

func TestFindBinary(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "criu")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	_, err := criu.FindBinary(notExec)
	assert.ErrorContains(t, err, "not executable")

	_, err = criu.FindBinary(filepath.Join(t.TempDir(), "missing"))
	assert.Error(t, err)

	require.NoError(t, os.Chmod(notExec, 0o755))
	got, err := criu.FindBinary(notExec)
	require.NoError(t, err)
	assert.Equal(t, notExec, got)

	t.Setenv("PATH", t.TempDir())
	got, err = criu.FindBinary("")
	if err != nil {
		assert.ErrorIs(t, err, criu.ErrBinaryNotFound)
		assert.ErrorContains(t, err, "just deps")
		assert.ErrorContains(t, err, "CEDANA_CRIU_BINARY_PATH")
	} else {
		assert.Contains(t, []string{criu.SystemBinary, criu.PrivateBinary}, got)
	}
}

func TestLogErrorsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	log := strings.Join([]string{
		"(00.000100) Version: 4.1.1 (gitid 0)",
		"(00.000200) Error (criu/util.c:1): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
		"(00.000300) Error (criu/a.c:1): first",
		"(00.000400) nothing to see",
		"(00.000500) some error happened",
		"(00.000600) Error (criu/b.c:2): last",
	}, "\n")
	require.NoError(t, os.WriteFile(path, []byte(log), 0o644))

	assert.Equal(t, []string{
		"(00.000300) Error (criu/a.c:1): first",
		"(00.000500) some error happened",
		"(00.000600) Error (criu/b.c:2): last",
	}, criu.LogErrors(path, 0))
	assert.Equal(t, []string{
		"(00.000500) some error happened",
		"(00.000600) Error (criu/b.c:2): last",
	}, criu.LogErrors(path, 2))
	assert.Nil(t, criu.LogErrors(filepath.Join(t.TempDir(), "missing.log"), 5))
	assert.Equal(t, "; CRIU log: (00.000300) Error (criu/a.c:1): first | (00.000500) some error happened | (00.000600) Error (criu/b.c:2): last",
		criu.LogQuote(path))
	assert.Empty(t, criu.LogQuote(filepath.Join(t.TempDir(), "missing.log")))
}

func TestVersion(t *testing.T) {
	c := testutil.RequireCRIU(t)
	v, err := c.Version(testContext(t))
	require.NoError(t, err)
	t.Logf("criu version %d", v)
	assert.GreaterOrEqual(t, v, 40100)
}

func TestCheck(t *testing.T) {
	c := testutil.RequireCRIU(t)
	require.NoError(t, c.Check(testContext(t)))
}

func TestCancelledContext(t *testing.T) {
	c := testutil.RequireCRIU(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Version(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = c.Dump(ctx, &rpc.CriuOpts{Pid: proto.Int32(1)}, criu.Call{})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestDumpRequiresPid(t *testing.T) {
	c := &criu.Client{Binary: "/nonexistent/criu"}
	_, err := c.Dump(context.Background(), &rpc.CriuOpts{}, criu.Call{})
	assert.ErrorContains(t, err, "pid")
}

func TestDumpNonexistentPid(t *testing.T) {
	c := testutil.RequireCRIU(t)
	pid := unusedPid(t)
	imgDir := t.TempDir()
	dir := openDir(t, imgDir)

	stop := watchdog(t, time.Minute)
	resp, err := c.Dump(testContext(t), &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(int32(dir.Fd())),
		LogFile:     proto.String("dump.log"),
		LogLevel:    proto.Int32(4),
		Pid:         proto.Int32(int32(pid)),
	}, criu.Call{})
	stop()
	require.Error(t, err)
	t.Logf("error: %v", err)
	var cerr *criu.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, rpc.CriuReqType_DUMP, cerr.Type)
	assert.True(t, strings.HasPrefix(err.Error(), "criu dump failed"), err.Error())
	assert.NotContains(t, err.Error(), rlimitLine)
	require.NotNil(t, resp)
	assert.False(t, resp.GetSuccess())

	lines := criu.LogErrors(filepath.Join(imgDir, "dump.log"), 10)
	t.Logf("log errors: %q", lines)
	require.NotEmpty(t, lines)
	for _, l := range lines {
		assert.NotContains(t, l, rlimitLine)
	}
}

func TestDumpRestore(t *testing.T) {
	c := testutil.RequireCRIU(t)
	ctx := testContext(t)
	workDir := t.TempDir()
	imgDir := t.TempDir()
	dir := openDir(t, imgDir)

	cmd := startCounter(t, workDir)
	pid := cmd.Process.Pid
	counter := filepath.Join(workDir, "F")
	require.Eventually(t, func() bool { return readCounter(counter) >= 3 }, 10*time.Second, 50*time.Millisecond)

	// Extra files must show up in criu at ExtraFileFD(i).
	marker, err := os.Create(filepath.Join(workDir, "marker"))
	require.NoError(t, err)
	defer marker.Close()

	var (
		dumpScripts []string
		extraFdLink string
		frozenKids  []int
	)
	stop := watchdog(t, time.Minute)
	resp, err := c.Dump(ctx, &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(int32(dir.Fd())),
		LogFile:     proto.String("dump.log"),
		LogLevel:    proto.Int32(4),
		Pid:         proto.Int32(int32(pid)),
	}, criu.Call{
		ExtraFiles: []*os.File{marker},
		Notify: func(script string, npid int32) error {
			dumpScripts = append(dumpScripts, script)
			if extraFdLink == "" {
				if swrk := childrenNamed("criu"); len(swrk) == 1 {
					extraFdLink, _ = os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", swrk[0], criu.ExtraFileFD(0)))
				}
			}
			if script == "post-dump" {
				// The tree is still frozen: its children are stable.
				frozenKids = descendants(pid)
			}
			return nil
		},
	})
	stop()
	if err != nil {
		t.Logf("dump log errors: %q", criu.LogErrors(filepath.Join(imgDir, "dump.log"), 10))
	}
	require.NoError(t, err)
	require.True(t, resp.GetSuccess())
	t.Logf("dump notifications: %v; frozen children: %v", dumpScripts, frozenKids)
	assert.Contains(t, dumpScripts, "post-dump")
	assert.Equal(t, marker.Name(), extraFdLink, "ExtraFiles[0] inside criu")

	// criu killed the tree: reap it, so that its pids are free for restore.
	err = cmd.Wait()
	require.Error(t, err, "the dumped process should have been killed")
	reap(t, frozenKids...)
	waitGone(t, append([]int{pid}, frozenKids...)...)
	dumped := readCounter(counter)
	require.Positive(t, dumped)

	var (
		restoreScripts []string
		notifiedPid    int32
	)
	stop = watchdog(t, time.Minute)
	resp, err = c.Restore(ctx, &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(int32(dir.Fd())),
		LogFile:     proto.String("restore.log"),
		LogLevel:    proto.Int32(4),
		RstSibling:  proto.Bool(true),
	}, criu.Call{
		Notify: func(script string, npid int32) error {
			restoreScripts = append(restoreScripts, script)
			if script == "post-restore" {
				notifiedPid = npid
			}
			return nil
		},
	})
	stop()
	if err != nil {
		t.Logf("restore log errors: %q", criu.LogErrors(filepath.Join(imgDir, "restore.log"), 10))
	}
	require.NoError(t, err)
	t.Cleanup(func() { killTree(t, pid) })
	t.Logf("restore notifications: %v", restoreScripts)
	assert.Equal(t, int32(pid), resp.GetRestore().GetPid())
	assert.Contains(t, restoreScripts, "post-restore")
	assert.Equal(t, int32(pid), notifiedPid)

	// The restored process is our child (RstSibling) and keeps counting.
	ppid, err := parentOf(pid)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), ppid)
	require.Eventually(t, func() bool { return readCounter(counter) > dumped }, 10*time.Second, 50*time.Millisecond)
	first := readCounter(counter)
	assert.GreaterOrEqual(t, first, dumped)
	require.Eventually(t, func() bool { return readCounter(counter) > first }, 10*time.Second, 50*time.Millisecond)
}

// A failing notify callback aborts the dump and criu leaves the tree running.
func TestNotifyErrorAbortsDump(t *testing.T) {
	c := testutil.RequireCRIU(t)
	workDir := t.TempDir()
	imgDir := t.TempDir()
	dir := openDir(t, imgDir)

	cmd := startCounter(t, workDir)
	pid := cmd.Process.Pid
	t.Cleanup(func() { killTree(t, pid) })
	counter := filepath.Join(workDir, "F")
	require.Eventually(t, func() bool { return readCounter(counter) >= 2 }, 10*time.Second, 50*time.Millisecond)

	errNo := errors.New("not now")
	var scripts []string
	stop := watchdog(t, time.Minute)
	resp, err := c.Dump(testContext(t), &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(int32(dir.Fd())),
		LogFile:     proto.String("dump.log"),
		LogLevel:    proto.Int32(4),
		Pid:         proto.Int32(int32(pid)),
	}, criu.Call{
		Notify: func(script string, _ int32) error {
			scripts = append(scripts, script)
			if script == "post-dump" {
				return errNo
			}
			return nil
		},
	})
	stop()
	t.Logf("error: %v; notifications: %v", err, scripts)
	require.Error(t, err)
	assert.ErrorIs(t, err, errNo)
	var cerr *criu.Error
	assert.ErrorAs(t, err, &cerr)
	require.NotNil(t, resp)
	assert.False(t, resp.GetSuccess())

	// Still running, not frozen.
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	require.NoError(t, err)
	before := readCounter(counter)
	require.Eventually(t, func() bool { return readCounter(counter) > before }, 10*time.Second, 50*time.Millisecond)
}

// startCounter starts the counter loop as a session leader in dir, with
// stdio on /dev/null.
func startCounter(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", counterScript)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	return cmd
}

// readCounter returns the counter in path, or -1 if it cannot be read (before
// the first count).
func readCounter(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func openDir(t *testing.T, path string) *os.File {
	t.Helper()
	d, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// unusedPid returns a pid that no process has.
func unusedPid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	require.NoError(t, err)
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	for pid := pidMax - 1; pid > pidMax-1000; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no unused pid found")
	return 0
}

// stat returns the ppid and comm of pid from /proc/<pid>/stat.
func stat(pid int) (ppid int, comm string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, "", fmt.Errorf("bad stat for %d", pid)
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return 0, "", fmt.Errorf("bad stat for %d", pid)
	}
	ppid, err = strconv.Atoi(fields[1])
	return ppid, s[open+1 : end], err
}

func parentOf(pid int) (int, error) {
	ppid, _, err := stat(pid)
	return ppid, err
}

// childrenNamed returns the pids of our children with the given comm.
func childrenNamed(name string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, comm, err := stat(pid); err == nil && ppid == os.Getpid() && comm == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

// descendants returns all descendants of pid.
func descendants(pid int) []int {
	var out []int
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	for _, f := range strings.Fields(string(b)) {
		if kid, err := strconv.Atoi(f); err == nil {
			out = append(out, kid)
			out = append(out, descendants(kid)...)
		}
	}
	return out
}

// reap waits for each pid that is our child (orphans reparented to us as
// subreaper); pids that are not our children are left alone.
func reap(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
}

// waitGone waits until none of pids is in /proc.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, pid := range pids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "pids %v still exist", pids)
}

var killMu sync.Mutex

// killTree kills the session-leader pid and its process group, then reaps
// the leader (our child) and its children (reparented to us).
func killTree(t *testing.T, pid int) {
	t.Helper()
	killMu.Lock()
	defer killMu.Unlock()
	if pid <= 1 { // kill(-0) and kill(-1) would reach our own group or everything
		return
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return
	}
	// Stop the group first so that the children list is final.
	_ = unix.Kill(-pid, unix.SIGSTOP)
	kids := descendants(pid)
	_ = unix.Kill(-pid, unix.SIGKILL)
	if p, err := os.FindProcess(pid); err == nil {
		_, _ = p.Wait()
	}
	reap(t, kids...)
}

// fakeCRIU writes an executable script standing in for criu swrk.
func fakeCRIU(t *testing.T, script string) *criu.Client {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "criu")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"+script+"\n"), 0o755))
	return &criu.Client{Binary: bin}
}

// A criu that dies, or exits, without answering yields a DiedError that says how it ended.
func TestDiedWithoutAnswering(t *testing.T) {
	tests := []struct {
		name, script, want string
		signal             syscall.Signal
	}{
		{"killed", "echo about to die >&2; kill -KILL $$", "criu dump: criu died without answering: killed by signal SIGKILL", syscall.SIGKILL},
		{"exited", "exit 3", "criu dump: criu exited without answering (exit status 3)", 0},
		{"closed", "exec 3>&-", "criu dump: criu closed the connection without answering", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeCRIU(t, tt.script)
			_, err := c.Dump(context.Background(), &rpc.CriuOpts{Pid: proto.Int32(1)}, criu.Call{})
			var died *criu.DiedError
			require.ErrorAs(t, err, &died)
			assert.Contains(t, err.Error(), tt.want)
			sig, killed := died.Killed()
			assert.Equal(t, tt.signal != 0, killed)
			assert.Equal(t, tt.signal, sig)
			if tt.name == "killed" {
				assert.Contains(t, err.Error(), "output: about to die", "criu's own output is quoted")
			}
		})
	}
}

// Started gets criu's PID before the request is sent; its error aborts the request.
func TestStartedHook(t *testing.T) {
	c := fakeCRIU(t, "cat <&3 >/dev/null") // waits for a request that never comes, then EOF
	errNo := errors.New("journal full")
	var pid int
	_, err := c.Dump(context.Background(), &rpc.CriuOpts{Pid: proto.Int32(1)}, criu.Call{
		Started: func(p int) error {
			pid = p
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
			require.NoError(t, err, "criu runs while Started is called")
			assert.NotEmpty(t, strings.TrimSpace(string(comm)))
			return errNo
		},
	})
	require.ErrorIs(t, err, errNo)
	assert.Positive(t, pid)
	_, statErr := os.Stat(fmt.Sprintf("/proc/%d", pid))
	assert.True(t, os.IsNotExist(statErr), "criu was waited for")
}

// TestCheckLazy: lazy restores work on the machines cedana's CI runs on, and an unknown feature
// fails with CRIU's answer.
func TestCheckLazy(t *testing.T) {
	c := testutil.RequireCRIU(t)
	require.NoError(t, c.CheckLazy(testContext(t)))
	assert.ErrorContains(t, c.CheckFeature(testContext(t), "no-such-feature"), "Unknown feature no-such-feature")
}

// TestStartLazyPagesFails: a lazy-pages server that cannot start (no images) fails StartLazyPages
// with the reason instead of leaving the caller waiting.
func TestStartLazyPagesFails(t *testing.T) {
	c := testutil.RequireCRIU(t)
	_, err := c.StartLazyPages(testContext(t), t.TempDir(), criu.LazyPagesLog, 2)
	require.ErrorContains(t, err, "criu lazy-pages did not start")
	assert.ErrorContains(t, err, "exit status 1")
}
