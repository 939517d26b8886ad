package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
)

// TestConfigCompatCedanaFile: a daemon started with a Cedana-style config.json (keys we lack,
// and the S3 credentials and endpoint under Cedana's aws.*) and no AWS_* variables warns about the
// unknown keys, and a compressed dump to s3:// reaches the S3 server; config show masks the secrets.
func TestConfigCompatCedanaFile(t *testing.T) {
	requireE2E(t)
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3"} {
		require.Empty(t, os.Getenv(v), "the test runs without AWS_* variables")
	}
	srv := storagetest.Start(t)
	cfgDir := t.TempDir()
	file := map[string]any{
		"log_level": "debug", "metrics": false,
		"checkpoint": map[string]any{"compression": "none", "streams": 0, "async": false},
		"connection": map[string]any{"url": "https://sandbox.cedana.ai/v1", "auth_token": ""},
		"criu":       map[string]any{"leave_running": false, "manage_cgroups": "ignore", "log_level": 2},
		"profiling":  map[string]any{"enabled": true},
		"aws": map[string]any{
			"access_key_id": srv.AccessKey, "secret_access_key": srv.SecretKey,
			"region": srv.Region, "endpoint": "http://" + srv.Endpoint,
		},
	}
	data, err := json.Marshal(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(cfgDir, "config.json"), data, 0o600))

	d := startDaemon(t, cedanaBin, "CEDANA_CONFIG_DIR="+cfgDir)
	for _, key := range []string{"metrics", "checkpoint.streams", "connection.url", "criu.manage_cgroups", "profiling"} {
		assert.Contains(t, d.log.String(), `unknown key \"`+key+`\" ignored`)
	}

	w := startCounter(t, false)
	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", "s3://"+srv.Bucket+"/cfgcompat", "--name", "cfgcompat", "--compression", "zstd")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, `unknown key "metrics" ignored`, "the CLI warns on stderr")
	assert.Contains(t, bucketContents(t, srv), "cfgcompat/cfgcompat.tar.zst")

	r = d.cli("config", "show")
	require.Equal(t, 0, r.code, r.String())
	assert.NotContains(t, r.stdout, srv.SecretKey)
	assert.NotContains(t, r.stdout, srv.AccessKey)
	var shown struct {
		Storage struct {
			S3 map[string]any `json:"s3"`
		} `json:"storage"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown), r.stdout)
	assert.Equal(t, map[string]any{
		"access_key": "***", "secret_key": "***", "region": srv.Region, "endpoint": "http://" + srv.Endpoint, "insecure": false,
	}, shown.Storage.S3)
}
