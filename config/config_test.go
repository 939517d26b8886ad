package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(`{"address":"/tmp/file.sock","checkpoint":{"dir":"/from/file"},"log":{"level":"debug"}}`), 0o600))

	tests := []struct {
		name  string
		dir   string
		env   map[string]string
		check func(t *testing.T, c Config)
		err   string
	}{
		{
			name: "defaults when there is no file",
			dir:  t.TempDir(),
			check: func(t *testing.T, c Config) {
				assert.Equal(t, Default(), c)
			},
		},
		{
			name: "file overrides defaults",
			dir:  dir,
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "/tmp/file.sock", c.Address)
				assert.Equal(t, "/from/file", c.Checkpoint.Dir)
				assert.Equal(t, "debug", c.Log.Level)
				assert.Equal(t, ProtocolUnix, c.Protocol)
			},
		},
		{
			name: "environment overrides the file",
			dir:  dir,
			env: map[string]string{
				"CEDANA_ADDRESS": "127.0.0.1:9", "CEDANA_PROTOCOL": "tcp", "CEDANA_CHECKPOINT_DIR": "/from/env",
				"CEDANA_CRIU_BINARY_PATH": "/x/criu", "CEDANA_LOG_LEVEL": "warn", "CEDANA_DB_PATH": "/x/db",
				"CEDANA_RESTORE_PID_WAIT_TIMEOUT": "3s", "CEDANA_LOG_FORMAT": "json", "CEDANA_TOKEN": "t",
			},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "127.0.0.1:9", c.Address)
				assert.Equal(t, ProtocolTCP, c.Protocol)
				assert.Equal(t, "/from/env", c.Checkpoint.Dir)
				assert.Equal(t, "/x/criu", c.CRIU.BinaryPath)
				assert.Equal(t, "warn", c.Log.Level)
				assert.Equal(t, "json", c.Log.Format)
				assert.Equal(t, "/x/db", c.DB.Path)
				assert.Equal(t, "t", c.Token)
				assert.Equal(t, Duration(3*time.Second), c.Restore.PIDWaitTimeout)
			},
		},
		{
			name: "CEDANA_CONFIG_DIR picks the file",
			env:  map[string]string{"CEDANA_CONFIG_DIR": dir},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "/from/file", c.Checkpoint.Dir)
			},
		},
		{name: "bad protocol", dir: t.TempDir(), env: map[string]string{"CEDANA_PROTOCOL": "udp"}, err: `protocol "udp"`},
		{name: "bad duration", dir: t.TempDir(), env: map[string]string{"CEDANA_RESTORE_PID_WAIT_TIMEOUT": "soon"}, err: "CEDANA_RESTORE_PID_WAIT_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.dir, envOf(tt.env))
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(`{"adress":"x"}`), 0o600))
	_, err := Load(dir, envOf(nil))
	assert.ErrorContains(t, err, "adress")
}

func TestEnvNames(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{"CEDANA_ADDRESS", "CEDANA_PROTOCOL", "CEDANA_CHECKPOINT_DIR", "CEDANA_CRIU_BINARY_PATH", "CEDANA_LOG_LEVEL", "CEDANA_DB_PATH"} {
		assert.Contains(t, names, want)
	}
}
