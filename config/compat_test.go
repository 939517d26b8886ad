package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadCompat: unknown keys are warned about, once each, and ignored; Cedana's names set ours,
// ours win a conflict; malformed JSON and wrong types are still refused.
func TestLoadCompat(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		json     string // --config
		env      map[string]string
		check    func(t *testing.T, c Config)
		warnings []string
		sources  map[string]string
		err      string
	}{
		{
			name:     "typo warned with a suggestion",
			file:     `{"adress":"/x.sock","checkpoint":{"comprssion":"zstd"},"log":{"lvel":"debug"}}`,
			check:    func(t *testing.T, c Config) { assert.Equal(t, Default(), c) },
			warnings: []string{`unknown key "adress" ignored (did you mean "address"?)`, `unknown key "checkpoint.comprssion" ignored (did you mean "checkpoint.compression"?)`, `unknown key "log.lvel" ignored (did you mean "log.level"?)`},
		},
		{
			name:     "key outside its section",
			file:     `{"s3":{"endpoint":"x"}}`,
			warnings: []string{`unknown key "s3" ignored (did you mean "storage.s3"?)`},
		},
		{
			name: "Cedana's config",
			file: `{"log_level":"debug","metrics":true,"checkpoint":{"dir":"s3://b/p","compression":"zstd","streams":4,"async":false},
				"criu":{"leave_running":true,"manage_cgroups":"ignore"},"connection":{"url":"https://x","auth_token":""},
				"aws":{"access_key_id":"AK","secret_access_key":"SK","region":"us-east-1","endpoint":"http://127.0.0.1:7070"}}`,
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "debug", c.Log.Level)
				assert.True(t, c.CRIU.LeaveRunning)
				assert.Equal(t, S3{AccessKey: "AK", SecretKey: "SK", Region: "us-east-1", Endpoint: "http://127.0.0.1:7070"}, c.Storage.S3)
				assert.Equal(t, "zstd", c.Checkpoint.Compression)
			},
			warnings: []string{`"checkpoint.async"`, `"checkpoint.streams"`, `"connection.url"`, `"criu.manage_cgroups"`, `"metrics"`},
			sources:  map[string]string{"log.level": SourceFile, "storage.s3.access_key": SourceFile, "criu.leave_running": SourceFile},
		},
		{
			name:     "Cedana's metrics switch beside our metrics section's key",
			file:     `{"metrics":false}`,
			check:    func(t *testing.T, c Config) { assert.Empty(t, c.Metrics.Address) },
			warnings: []string{`unknown key "metrics" ignored (Cedana's telemetry switch; set metrics.address`},
		},
		{
			name:  "our metrics section",
			file:  `{"metrics":{"address":":9464"}}`,
			check: func(t *testing.T, c Config) { assert.Equal(t, ":9464", c.Metrics.Address) },
		},
		{
			name:     "ours wins a conflict",
			file:     `{"storage":{"s3":{"region":"eu-west-1"}},"aws":{"region":"us-east-1","access_key_id":"AK"},"log":{"level":"warn"},"log_level":"warn"}`,
			check:    func(t *testing.T, c Config) { assert.Equal(t, S3{Region: "eu-west-1", AccessKey: "AK"}, c.Storage.S3) },
			warnings: []string{"storage.s3.region and aws.region (its Cedana name) are both set and differ: using storage.s3.region"},
		},
		{
			name:  "connection.auth_token is token",
			file:  `{"connection":{"auth_token":"T"}}`,
			check: func(t *testing.T, c Config) { assert.Equal(t, "T", c.Token) },
		},
		{
			name: "--config merges over the file; the environment wins over both",
			file: `{"checkpoint":{"dir":"/f","compression":"gzip"},"address":"/f.sock"}`,
			json: `{"checkpoint":{"dir":"/j"},"address":"/j.sock","protocol":"UNIX"}`,
			env:  map[string]string{"CEDANA_ADDRESS": "/e.sock"},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, Checkpoint{Dir: "/j", Compression: "gzip", StreamImages: true, StreamMemoryLimit: DefaultStreamMemoryLimit}, c.Checkpoint)
				assert.Equal(t, "/e.sock", c.Address)
			},
			sources: map[string]string{"checkpoint.dir": SourceJSON, "checkpoint.compression": SourceFile, "address": SourceEnv},
		},
		{name: "no token in --config", json: `{"token":"x"}`, err: "a token on the command line"},
		{name: "no auth_token in --config", json: `{"connection":{"auth_token":"x"}}`, err: "a token on the command line"},
		{name: "wrong type", file: `{"criu":{"leave_running":"yes"}}`, err: "criu.leave_running"},
		{name: "wrong type under an alias", file: `{"aws":{"region":5}}`, err: "storage.s3.region"},
		{name: "malformed", file: `{"aws":{"region":"x"}`, err: "ends too early"},
		{name: "malformed --config", json: `{"x"}`, err: "--config: invalid character"},
		{name: "Cedana's level names are checked", file: `{"log_level":"trace"}`, err: `log.level "trace"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.file != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(tt.file), 0o600))
			}
			l, err := LoadWith(Options{Dir: dir, Getenv: envOf(tt.env), JSON: tt.json})
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, l.Config)
			}
			require.Len(t, l.Warnings, len(tt.warnings), "%q", l.Warnings)
			for i, w := range tt.warnings {
				assert.Contains(t, l.Warnings[i], w)
			}
			for k, v := range tt.sources {
				assert.Equal(t, v, l.Sources[k], k)
			}
		})
	}
}

func TestMasked(t *testing.T) {
	c := Default()
	c.Token, c.Storage.S3.AccessKey, c.Storage.S3.SecretKey, c.Storage.S3.Region = "T", "AK", "SK", "r"
	m := Masked(c)
	s3 := m["storage"].(map[string]any)["s3"].(map[string]any)
	assert.Equal(t, "***", m["token"])
	assert.Equal(t, "***", s3["access_key"])
	assert.Equal(t, "***", s3["secret_key"])
	assert.Equal(t, "r", s3["region"])
	assert.Empty(t, Masked(Default())["token"], "an empty secret stays empty")
}

// TestWriteFile: --merge-config writes ours, keeps the unknown keys, and makes a file holding a
// secret private.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	require.NoError(t, os.WriteFile(path, []byte(`{"metrics":true,"aws":{"secret_access_key":"SK"},"gpu":{"pool_size":2}}`), 0o644))
	l, err := LoadWith(Options{Dir: dir, Getenv: envOf(map[string]string{"CEDANA_CHECKPOINT_DIR": "/e"})})
	require.NoError(t, err)
	mode, err := l.WriteFile(l.Config)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), mode)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(data, &got))
	assert.Equal(t, map[string]any{"address": ""}, got["metrics"], "our section replaces Cedana's switch of the same name")
	assert.Equal(t, map[string]any{"pool_size": 2.0}, got["gpu"])
	assert.NotContains(t, got, "aws")
	again, err := Load(dir, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, l.Config, again)
}

func TestNearestKey(t *testing.T) {
	for path, want := range map[string]string{
		"adress": "address", "protcol": "protocol", "db.pth": "db.path", "endpoint": "storage.s3.endpoint", "aws.acess_key_id": "aws.access_key_id",
		"checkpoint.streams": "", "metrics": "", "gpu": "",
	} {
		assert.Equal(t, want, nearestKey(path), path)
	}
}
