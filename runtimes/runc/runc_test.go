package runc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
)

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

func TestCopyLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "job.log")
	require.NoError(t, os.WriteFile(log, []byte("before\n"), 0o644))
	require.NoError(t, copyLog(context.Background(), []string{log}, features.Stdio{Stdin: strings.NewReader("after\n")}))
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "before\nafter\n", string(data), "the output is appended")

	assert.ErrorContains(t, copyLog(context.Background(), nil, features.Stdio{Stdin: strings.NewReader("")}), "one argument")
	assert.ErrorContains(t, copyLog(context.Background(), []string{log}, features.Stdio{}), "no standard input")
}
