package withcriu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/sysinfo"
)

// sleeper starts `sleep 60` in its own session; it is killed and reaped when the test ends. The
// returned channel closes when it has exited.
func sleeper(t *testing.T) (int, chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	return cmd.Process.Pid, exited
}

// stateOf is pid's state letter, 0 when it is gone.
func stateOf(pid int) byte {
	st, err := sysinfo.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.State
}

// TestCgroupFreezer: the freezer state of cgroup v1 (freezer.state) and v2 (cgroup.freeze)
// directories is read and thawed.
func TestCgroupFreezer(t *testing.T) {
	for _, tt := range []struct{ file, frozen, thawed string }{
		{"freezer.state", "FROZEN\n", "THAWED"},
		{"freezer.state", "FREEZING\n", "THAWED"},
		{"cgroup.freeze", "1\n", "0"},
	} {
		t.Run(tt.frozen, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			require.NoError(t, os.WriteFile(path, []byte(tt.frozen), 0o600))
			frozen, err := cgroupFrozen(dir)
			require.NoError(t, err)
			assert.True(t, frozen)
			require.NoError(t, thawCgroup(dir))
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.thawed, string(data))
			frozen, err = cgroupFrozen(dir)
			require.NoError(t, err)
			assert.False(t, frozen)
		})
	}
	_, err := cgroupFrozen(t.TempDir())
	assert.Error(t, err, "a directory that is no cgroup")
}

// TestResume: after CRIU died, processes of the tree left stopped are continued (not those that
// were stopped before the dump), a freezer cgroup left frozen is thawed (not one frozen before),
// and the message says what became of the tree.
func TestResume(t *testing.T) {
	stoppedBefore, _ := sleeper(t)
	require.NoError(t, unix.Kill(stoppedBefore, unix.SIGSTOP))
	require.Eventually(t, func() bool { return stateOf(stoppedBefore) == 'T' }, 5*time.Second, 5*time.Millisecond)
	runs, _ := sleeper(t)
	freezer := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("THAWED\n"), 0o600))

	tree := snapshotTree(runs, freezer)
	other := snapshotTree(stoppedBefore, "")
	tree.procs = append(tree.procs, other.procs...)
	require.Len(t, tree.procs, 2)

	// What a CRIU that died mid-dump may leave: a group stop, a frozen cgroup.
	require.NoError(t, unix.Kill(runs, unix.SIGSTOP))
	require.Eventually(t, func() bool { return stateOf(runs) == 'T' }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN\n"), 0o600))

	msg := tree.resume()
	assert.Contains(t, msg, "the workload runs again")
	assert.Contains(t, msg, fmt.Sprintf("sent SIGCONT to stopped PID %d", runs))
	assert.NotContains(t, msg, fmt.Sprint(stoppedBefore), "a process stopped before the dump stays stopped")
	assert.Contains(t, msg, "thawed its cgroup "+freezer)
	assert.Equal(t, byte('S'), stateOf(runs))
	assert.Equal(t, byte('T'), stateOf(stoppedBefore))
	data, err := os.ReadFile(filepath.Join(freezer, "freezer.state"))
	require.NoError(t, err)
	assert.Equal(t, "THAWED", string(data))

	frozenBefore := treeBefore{freezer: freezer, frozen: true}
	require.NoError(t, os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN\n"), 0o600))
	assert.NotContains(t, frozenBefore.resume(), "thawed", "a cgroup frozen before the dump stays frozen")
}

// TestResumeReportsTheDead: a process of the tree that died with CRIU is named.
func TestResumeReportsTheDead(t *testing.T) {
	pid, exited := sleeper(t)
	tree := snapshotTree(pid, "")
	require.NoError(t, unix.Kill(pid, unix.SIGKILL))
	<-exited
	msg := tree.resume()
	assert.Contains(t, msg, fmt.Sprintf("PID %d (sleep) of the workload died with CRIU", pid))
	assert.NotContains(t, msg, "the workload runs again")
}

// recordingJournal is a DumpJournal that records what it is told and runs hooks.
type recordingJournal struct {
	criuPID  int
	ck       *daemonv1.Checkpoint
	dumped   int
	onDumped func(j *recordingJournal) error
}

func (j *recordingJournal) Begin(string, string) error { return nil }

func (j *recordingJournal) Started(criuPID int, ck *daemonv1.Checkpoint) error {
	j.criuPID, j.ck = criuPID, ck
	return nil
}

func (j *recordingJournal) Dumped() error {
	j.dumped++
	if j.onDumped != nil {
		return j.onDumped(j)
	}
	return nil
}

// TestDumpJournal: the journal learns which CRIU dumps what before the tree is touched,
// and that the dump is done in CRIU's post-dump notification, with the tree frozen; an error
// there makes CRIU resume the tree. When CRIU dies once the dump is done, the checkpoint is
// complete: Dump stops the tree as CRIU would have, and succeeds.
func TestDumpJournal(t *testing.T) {
	c := testutil.RequireCRIU(t)
	errJournal := errors.New("journal unwritable")
	for _, tt := range []struct {
		name     string
		onDumped func(j *recordingJournal) error
		wantErr  error
		wantLog  string
	}{
		{name: "done"},
		{name: "journal fails", onDumped: func(*recordingJournal) error { return errJournal }, wantErr: errJournal},
		{name: "CRIU dies once done", wantLog: "CRIU died after the dump was done", onDumped: func(j *recordingJournal) error {
			return unix.Kill(j.criuPID, unix.SIGKILL) // before it hears the answer
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid, exited := sleeper(t)
			var stateDuring byte
			journal := &recordingJournal{onDumped: func(j *recordingJournal) error {
				stateDuring = stateOf(pid)
				if tt.onDumped != nil {
					return tt.onDumped(j)
				}
				return nil
			}}
			var log strings.Builder
			env := &adapters.Env{CRIU: c, CRIUVersion: 40101}
			st := adapters.State{ImageDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&log, nil)), Journal: journal}
			req := &daemonv1.DumpRequest{Type: "process", Name: "t", Criu: &daemonv1.CriuOptions{FileLocks: true}}
			resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{Pid: int32(pid)}}
			dumped, err := Dump(context.Background(), env, st, req, resp)

			assert.Positive(t, journal.criuPID)
			require.NotNil(t, journal.ck)
			assert.Equal(t, int32(pid), journal.ck.Pid)
			assert.True(t, journal.ck.GetOptions().GetFileLocks(), "the options are recorded")
			assert.Equal(t, int32(40101), journal.ck.CriuVersion)
			assert.Equal(t, 1, journal.dumped)
			assert.Contains(t, "tT", string(stateDuring), "done with the tree frozen (state %q)", stateDuring)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.False(t, bool(dumped), "the workload was not checkpointed")
				assert.Eventually(t, func() bool { return stateOf(pid) == 'S' }, 5*time.Second, 10*time.Millisecond,
					"CRIU resumed the tree")
				return
			}
			require.NoError(t, err)
			assert.True(t, bool(dumped), "the workload was checkpointed: its images are kept")
			if tt.wantLog != "" {
				assert.Contains(t, log.String(), tt.wantLog)
			}
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Fatal("the dumped process was not stopped")
			}
		})
	}
}
