package runc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExternalNSKey(t *testing.T) {
	// runc restore looks the namespace up under these keys.
	assert.Equal(t, "extRootNetNS", externalNSKey(configs.NEWNET))
	assert.Equal(t, "extRootPidNS", externalNSKey(configs.NEWPID))
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu"},
		{`/mnt/with\040space`, "/mnt/with space"},
		{`/tab\011here`, "/tab\there"},
		{`/trailing\`, `/trailing\`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, unescapeMount(tt.in), tt.in)
	}
}

func TestReadBundle(t *testing.T) {
	withConfig := func(t *testing.T, config string, rootfs bool) string {
		dir := t.TempDir()
		if config != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644))
		}
		if rootfs {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "rootfs"), 0o755))
		}
		return dir
	}
	tests := []struct {
		name   string
		config string
		rootfs bool
		kind   error
		msg    string
	}{
		{"good", `{"root":{"path":"rootfs"}}`, true, nil, ""},
		{"no config.json", "", true, errdefs.ErrNotFound, "has no config.json"},
		{"not a spec", `[`, true, errdefs.ErrInvalidArgument, "not an OCI runtime spec"},
		{"no root", `{}`, true, errdefs.ErrInvalidArgument, "names no root filesystem"},
		{"no rootfs", `{"root":{"path":"rootfs"}}`, false, errdefs.ErrNotFound, "has no rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := readBundle(withConfig(t, tt.config, tt.rootfs))
			if tt.kind == nil {
				require.NoError(t, err)
				assert.Equal(t, "rootfs", spec.Root.Path)
				return
			}
			assert.ErrorIs(t, err, tt.kind)
			assert.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestRuncError(t *testing.T) {
	log := filepath.Join(t.TempDir(), "runc.log")
	require.NoError(t, os.WriteFile(log, []byte(`{"level":"info","msg":"starting"}
not json
{"level":"error","msg":"first"}
{"level":"fatal","msg":" container \"x\" does not exist \n"}
`), 0o600))
	assert.Equal(t, `container "x" does not exist`, runcError(log))
	assert.Empty(t, runcError(filepath.Join(t.TempDir(), "missing")))
}
