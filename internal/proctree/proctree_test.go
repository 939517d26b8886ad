package proctree

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

func TestStateName(t *testing.T) {
	tests := []struct {
		state byte
		want  string
	}{
		{'R', "running"},
		{'S', "sleeping"},
		{'I', "sleeping"},
		{'D', "disk-sleep"},
		{'T', "stopped"},
		{'t', "traced"},
		{'Z', "zombie"},
		{'X', "dead"},
		{'x', "dead"},
		{'W', "W"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, StateName(tt.state), string(tt.state))
	}
}

func TestStatus(t *testing.T) {
	procs := func(states ...string) []*daemonv1.ProcessInfo {
		out := make([]*daemonv1.ProcessInfo, len(states))
		for i, s := range states {
			out[i] = &daemonv1.ProcessInfo{Pid: int32(i + 1), State: s}
		}
		return out
	}
	tests := []struct {
		name  string
		procs []*daemonv1.ProcessInfo
		want  string
	}{
		{name: "no process", want: "gone"},
		{name: "the root's state", procs: procs("sleeping", "running"), want: "sleeping"},
		{name: "all frozen", procs: procs("frozen", "frozen"), want: "frozen"},
		{name: "all stopped", procs: procs("stopped", "stopped", "stopped"), want: "stopped"},
		{name: "partly stopped: the root's state", procs: procs("stopped", "running"), want: "stopped"},
		{name: "a child not stopped", procs: procs("running", "stopped"), want: "running"},
		{name: "frozen and stopped mixed: the root's", procs: procs("frozen", "stopped"), want: "frozen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, Status(tt.procs)) })
	}
}

func TestCgroupV2Path(t *testing.T) {
	tests := []struct {
		name, text, want string
		ok               bool
	}{
		{name: "v2 only", text: "0::/user.slice/app.scope\n", want: "/user.slice/app.scope", ok: true},
		{name: "hybrid", text: "12:freezer:/x\n1:name=systemd:/s\n0::/cedana-fq-1\n", want: "/cedana-fq-1", ok: true},
		{name: "root cgroup", text: "0::/\n"},
		{name: "v1 only", text: "12:freezer:/x\n"},
		{name: "empty", text: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cgroupV2Path(tt.text)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestOwnCgroupOf: a fake cgroup hierarchy (directories with cgroup.procs) and fake memberships.
func TestOwnCgroupOf(t *testing.T) {
	root := t.TempDir()
	cg := filepath.Join(root, "job")
	write := func(dir, procs string) {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o644))
	}
	write(cg, "10\n11\n")
	write(filepath.Join(cg, "child"), "12\n")
	shared := filepath.Join(root, "shared")
	write(shared, "20\n99\n")
	noProcs := filepath.Join(root, "noprocs")
	require.NoError(t, os.MkdirAll(filepath.Join(noProcs, "sub"), 0o755))

	in := map[int]string{10: cg, 11: cg, 12: filepath.Join(cg, "child"), 13: root, 20: shared, 30: noProcs, 40: cg + "x"}
	dirOf := func(pid int) (string, bool) { d, ok := in[pid]; return d, ok }
	tests := []struct {
		name string
		tree []int
		want string
		ok   bool
	}{
		{name: "the tree owns its cgroup and the one below", tree: []int{10, 11, 12}, want: cg, ok: true},
		{name: "a process of the cgroup is not of the tree", tree: []int{10, 11}, want: cg},
		{name: "a process of the tree is outside the cgroup", tree: []int{10, 11, 12, 13}},
		{name: "a sibling whose name extends the cgroup's is outside", tree: []int{10, 11, 12, 40}},
		{name: "a process without a cgroup v2", tree: []int{10, 11, 12, 50}},
		{name: "the root without a cgroup v2", tree: []int{50}},
		{name: "shared with another process", tree: []int{20}, want: shared},
		{name: "a cgroup without cgroup.procs is not known to be own", tree: []int{30}, want: noProcs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, ok := ownCgroupOf(tt.tree, dirOf)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, dir)
		})
	}
}

func TestCgroupFrozen(t *testing.T) {
	tests := []struct {
		name, events string
		want         bool
	}{
		{name: "frozen", events: "populated 1\nfrozen 1\n", want: true},
		{name: "thawed", events: "populated 1\nfrozen 0\n"},
		{name: "no frozen line", events: "populated 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.events"), []byte(tt.events), 0o644))
			assert.Equal(t, tt.want, cgroupFrozen(dir))
		})
	}
	assert.False(t, cgroupFrozen(t.TempDir()), "no cgroup.events")
}

func TestCheck(t *testing.T) {
	self := os.Getpid()
	tests := []struct {
		name    string
		root    int
		wantErr string
	}{
		{name: "no PID", root: 0, wantErr: "no process"},
		{name: "negative", root: -5, wantErr: "no process"},
		{name: "PID 1", root: 1, wantErr: "refusing to freeze PID 1"},
		{name: "self", root: self, wantErr: "it is the cedana daemon itself"},
		{name: "a tree that holds self", root: os.Getppid(), wantErr: "the cedana daemon is part of its tree"},
		{name: "no such process", root: 1 << 30, wantErr: "no process with PID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check(tt.root, self)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestFreezeThawSignal: a child of the test shares the test's cgroup, so Freeze stops it with
// SIGSTOP and Thaw continues it (no root needed); a tree that is not stopped thaws with "none".
func TestFreezeThawSignal(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid, self := cmd.Process.Pid, os.Getpid()

	res, err := Freeze(context.Background(), pid, self)
	require.NoError(t, err)
	assert.Equal(t, MethodSignal, res.Method)
	assert.Equal(t, []int32{int32(pid)}, res.PIDs)
	st, err := sysinfo.ReadStat(pid)
	require.NoError(t, err)
	assert.Equal(t, byte('T'), st.State)
	assert.Equal(t, "stopped", Status(Describe(pid)))

	res, err = Thaw(pid, self)
	require.NoError(t, err)
	assert.Equal(t, MethodSignal, res.Method)
	require.Eventually(t, func() bool { st, err := sysinfo.ReadStat(pid); return err == nil && st.State != 'T' }, 5*time.Second, 5*time.Millisecond)

	res, err = Thaw(pid, self)
	require.NoError(t, err)
	assert.Equal(t, MethodNone, res.Method)
}

func TestWaitFor(t *testing.T) {
	t.Run("holds at once", func(t *testing.T) {
		assert.NoError(t, waitFor(context.Background(), func() bool { return true }, "x", nil, nil))
	})
	t.Run("looks again on each event", func(t *testing.T) {
		changed := make(chan fsnotify.Event, 1)
		n := 0
		changed <- fsnotify.Event{}
		assert.NoError(t, waitFor(context.Background(), func() bool { n++; return n == 2 }, "x", changed, nil))
	})
	t.Run("ends with the context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, waitFor(ctx, func() bool { return false }, "x", nil, nil), context.Canceled)
	})
}
