package k8s

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNodeSetupDestroy(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	exe, err = filepath.EvalSymlinks(exe)
	require.NoError(t, err)
	tests := []struct {
		name    string
		config  *string // nil: no file
		mode    os.FileMode
		symlink string // an existing symlink's target
	}{
		{name: "missing config"},
		{name: "version 2 config", config: ptr(v2Config), mode: 0o600},
		{name: "version 3 config", config: ptr(v3Config), mode: 0o644},
		{name: "older symlink", config: ptr(v2Config), mode: 0o640, symlink: "/opt/old/cedana"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			n := Node{ContainerdConfig: filepath.Join(dir, "config.toml"), BinDir: dir}
			link := filepath.Join(dir, WrapperName)
			if tt.config != nil {
				require.NoError(t, os.WriteFile(n.ContainerdConfig, []byte(*tt.config), tt.mode))
				require.NoError(t, os.Chmod(n.ContainerdConfig, tt.mode))
			}
			if tt.symlink != "" {
				require.NoError(t, os.Symlink(tt.symlink, link))
			}

			ch, err := n.Setup()
			require.NoError(t, err)
			assert.True(t, ch.ConfigChanged)
			assert.True(t, ch.SymlinkChanged)
			assert.Equal(t, link, ch.Symlink)
			target, err := os.Readlink(link)
			require.NoError(t, err)
			assert.Equal(t, exe, target)
			info, err := os.Stat(n.ContainerdConfig)
			require.NoError(t, err)
			if tt.config != nil {
				assert.Equal(t, tt.mode, info.Mode().Perm(), "setup kept the file's mode")
			}
			written, err := os.ReadFile(n.ContainerdConfig)
			require.NoError(t, err)

			ch, err = n.Setup()
			require.NoError(t, err)
			assert.False(t, ch.ConfigChanged, "setup twice")
			assert.False(t, ch.SymlinkChanged, "setup twice")
			again, err := os.ReadFile(n.ContainerdConfig)
			require.NoError(t, err)
			assert.Equal(t, string(written), string(again))

			ch, err = n.Destroy()
			require.NoError(t, err)
			assert.True(t, ch.ConfigChanged)
			assert.True(t, ch.SymlinkChanged)
			assert.Equal(t, tt.config == nil, ch.ConfigRemoved)
			assertConfig(t, n.ContainerdConfig, tt.config, tt.mode)
			_, err = os.Lstat(link)
			require.ErrorIs(t, err, os.ErrNotExist)

			ch, err = n.Destroy()
			require.NoError(t, err)
			assert.False(t, ch.ConfigChanged || ch.SymlinkChanged, "destroy twice")
			assertConfig(t, n.ContainerdConfig, tt.config, tt.mode)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, map[bool]int{true: 0, false: 1}[tt.config == nil], "temporary files left: %v", entries)
		})
	}
}

func TestNodeSetupRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, n Node)
		errors  []string
	}{
		{
			name: "a file where the symlink goes",
			prepare: func(t *testing.T, n Node) {
				require.NoError(t, os.WriteFile(filepath.Join(n.BinDir, WrapperName), nil, 0o755))
			},
			errors: []string{WrapperName + " exists and is not a symlink", "pass another --bin-dir"},
		},
		{
			name: "no containerd directory",
			prepare: func(_ *testing.T, n Node) {
				_ = os.Remove(filepath.Dir(n.ContainerdConfig))
			},
			errors: []string{"is containerd installed", "--containerd-config"},
		},
		{
			name: "a cedana runtime of the user's",
			prepare: func(t *testing.T, n Node) {
				data := v3Config + "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.cedana]\n"
				require.NoError(t, os.WriteFile(n.ContainerdConfig, []byte(data), 0o644))
			},
			errors: []string{"config.toml already defines a runtime \"cedana\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "containerd"), 0o755))
			n := Node{ContainerdConfig: filepath.Join(dir, "containerd", "config.toml"), BinDir: dir}
			tt.prepare(t, n)
			before, _ := os.ReadFile(n.ContainerdConfig)
			_, err := n.Setup()
			require.Error(t, err)
			for _, want := range tt.errors {
				assert.Contains(t, err.Error(), want)
			}
			after, _ := os.ReadFile(n.ContainerdConfig)
			assert.Equal(t, string(before), string(after), "a refused setup changed the configuration")
		})
	}
}

func assertConfig(t *testing.T, path string, want *string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if want == nil {
		require.ErrorIs(t, err, os.ErrNotExist, "the configuration setup created is still there")
		return
	}
	require.NoError(t, err)
	assert.Equal(t, *want, string(data), "destroy restored the configuration byte for byte")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, mode, info.Mode().Perm())
}

func ptr[T any](v T) *T { return &v }
