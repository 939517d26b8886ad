package runcshared

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExternalNSKey(t *testing.T) {
	// runc restore looks the namespace up under these keys.
	assert.Equal(t, "extRootNetNS", externalNSKey(configs.NEWNET))
	assert.Equal(t, "extRootPidNS", externalNSKey(configs.NEWPID))
}

// TestCgroupBindsIn: the cgroup mounts strictly below the destination, with mountinfo's octal
// escapes (\040 for a space, ...) undone.
func TestCgroupBindsIn(t *testing.T) {
	table := `22 1 0:21 / / rw,relatime - overlay overlay rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct ro,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 / /sys/fs/cgroup/with\040space ro - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/unified ro - cgroup2 cgroup2 rw
34 22 0:30 / /sys/fs/cgroupish rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/tab\011here rw - tmpfs tmpfs rw
`
	for _, dest := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/"} {
		binds, err := cgroupBindsIn(strings.NewReader(table), dest)
		require.NoError(t, err)
		assert.Equal(t, []string{"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/with space", "/sys/fs/cgroup/unified"}, binds, dest)
	}
	_, err := cgroupBindsIn(strings.NewReader("not a mount table\n"), "/sys/fs/cgroup")
	assert.ErrorContains(t, err, "read the container's mounts")
}

// TestMountDest: a mount destination is named inside the rootfs, with the rootfs's own symlinks
// resolved in it and never leaving it.
func TestMountDest(t *testing.T) {
	rootfs := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "run"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "var"), 0o755))
	require.NoError(t, os.Symlink("../run", filepath.Join(rootfs, "var", "run")))
	require.NoError(t, os.Symlink("../../../../../etc", filepath.Join(rootfs, "out")))
	tests := []struct{ dest, want string }{
		{"/etc/hosts", "/etc/hosts"},
		{"etc/hosts", "/etc/hosts"},
		{rootfs + "/proc", "/proc"},
		{"/a/../b", "/b"},
		{"/var/run/secrets", "/run/secrets"},
		{"/out/passwd", "/etc/passwd"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, mountDest(rootfs, tt.dest), tt.dest)
	}
	assert.Equal(t, "/b", mountDest("relative/../root", "/a/../b"), "an unclean rootfs is only cleaned")
}

// TestRequireDumpable: a paused container is refused, as by RequireRunning, unless the dump's
// context says its caller froze it on purpose; other states are refused either way.
func TestRequireDumpable(t *testing.T) {
	ctx := FrozenOnPurpose(FrozenOnPurpose(context.Background(), "a"), "b")
	tests := []struct {
		id     string
		status libcontainer.Status
		ctx    context.Context
		ok     bool
	}{
		{"a", libcontainer.Running, context.Background(), true},
		{"a", libcontainer.Paused, context.Background(), false},
		{"a", libcontainer.Paused, ctx, true},
		{"b", libcontainer.Paused, ctx, true},
		{"c", libcontainer.Paused, ctx, false},
		{"a", libcontainer.Stopped, ctx, false},
		{"a", libcontainer.Created, ctx, false},
	}
	for _, tt := range tests {
		c := &Container{id: tt.id, root: "/run/runc", status: tt.status}
		err := c.RequireDumpable(tt.ctx)
		if tt.ok {
			assert.NoError(t, err, "%s %s", tt.id, tt.status)
			continue
		}
		require.Error(t, err, "%s %s", tt.id, tt.status)
		assert.True(t, errdefs.IsFailedPrecondition(err), "%v", err)
	}
	assert.Error(t, (&Container{id: "a", status: libcontainer.Paused}).RequireRunning(), "RequireRunning is unchanged")
}

func TestReadPIDFile(t *testing.T) {
	tests := []struct {
		name, content string
		want          int
		wantErr       bool
	}{
		{name: "runc's format", content: "1234", want: 1234},
		{name: "with a newline", content: "42\n", want: 42},
		{name: "empty", content: "", wantErr: true},
		{name: "not a number", content: "abc", wantErr: true},
		{name: "zero", content: "0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pid")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o644))
			got, err := readPIDFile(path)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
