package config

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// errorSources are how every error of Parse begins: the file, an environment variable, or the
// key whose value Validate refuses.
var errorSources = []string{"config: ", "environment variable ", "protocol ", "log.format ", "log.level ", "restore.pid_wait_timeout "}

// FuzzParse feeds random config files and environments (KEY=VALUE lines) to Parse: it must not
// panic, an error must name its source and problem, and a configuration it accepts must be valid
// and read back the same from its own JSON.
func FuzzParse(f *testing.F) {
	full, err := json.Marshal(Default())
	require.NoError(f, err)
	f.Add(full, "")
	f.Add([]byte(`{"address":"/tmp/file.sock","checkpoint":{"dir":"/from/file","compression":"zstd"},"log":{"level":"debug"}}`), "")
	f.Add([]byte(`{"protocol":"tcp","address":"0.0.0.0:8080","token":"secret","storage":{"s3":{"endpoint":"localhost:7070","insecure":true}}}`), "CEDANA_LOG_FORMAT=json")
	f.Add([]byte(`{"restore":{"pid_wait_timeout":"2m30s"},"jobs":{"log_dir":"/var/log/cedana"},"db":{"path":"/x/db"}}`), "")
	f.Add([]byte(`{}`), "CEDANA_PROTOCOL=tcp\nCEDANA_ADDRESS=127.0.0.1:9\nCEDANA_RESTORE_PID_WAIT_TIMEOUT=3s\nCEDANA_STORAGE_S3_INSECURE=true")
	f.Add([]byte(nil), "CEDANA_RESTORE_PID_WAIT_TIMEOUT=soon")
	f.Add([]byte(`{"adress":"x"}`), "")
	f.Add([]byte(`{"log_level":"debug","aws":{"access_key_id":"A","region":"r","x":1},"storage":{"s3":{"region":"q"}},"metrics":true}`), "")
	f.Add([]byte(`{"connection":{"auth_token":"t","url":"u"},"criu":{"leave_running":true,"log_level":4},"protocol":"TCP","address":"127.0.0.1:1"}`), "")
	f.Add([]byte(`{"aws":5,"storage":"x"}`), "")
	f.Add([]byte(`{"restore":{"pid_wait_timeout":5}}`), "")
	f.Add([]byte(`{} {}`), "")
	f.Add([]byte(`{"log":{"level":"loud"}}`), "CEDANA_LOG_LEVEL=")
	f.Add([]byte(""), "")

	f.Fuzz(func(t *testing.T, data []byte, env string) {
		vars := map[string]string{}
		for _, line := range strings.Split(env, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
		getenv := func(k string) string { return vars[k] }
		for _, file := range [][]byte{nil, data} {
			cfg, err := Parse(file, getenv)
			if err != nil {
				msg := err.Error()
				require.NotEmpty(t, msg)
				require.True(t, hasAnyPrefix(msg, errorSources), "error %q names no source", msg)
				require.False(t, strings.HasSuffix(msg, "EOF"), "error %q names no problem", msg)
				continue
			}
			require.NoError(t, cfg.Validate())
			if !utf8.ValidString(env) {
				continue // JSON would replace the invalid bytes
			}
			again, err := json.Marshal(cfg)
			require.NoError(t, err)
			back, err := Parse(again, getenv)
			require.NoError(t, err, "%s", again)
			require.Equal(t, cfg, back)
		}
	})
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
