package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigShow: config show masks secrets, names sources, warns about unknown keys on stderr
// once, and --merge-config writes the merged configuration.
func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"metrics":true,"aws":{"access_key_id":"AKID","secret_access_key":"SECRETKEY","region":"us-east-1"}}`), 0o600))
	env := map[string]string{"CEDANA_CONFIG_DIR": dir, "AWS_ENDPOINT": "http://127.0.0.1:7070"}
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    []string
		notStdout []string
		stderr    []string
	}{
		{
			name: "masked", args: []string{"config", "show"},
			stdout:    []string{`"access_key": "***"`, `"secret_key": "***"`, `"region": "us-east-1"`, `"endpoint": "127.0.0.1:7070"`, `"insecure": true`},
			notStdout: []string{"AKID", "SECRETKEY"},
			stderr:    []string{`unknown key "metrics" ignored`},
		},
		{
			name: "sources", args: []string{"config", "show", "--sources", "--config", `{"checkpoint":{"dir":"/j"}}`, "--address", "/a.sock"},
			stdout: []string{"storage.s3.region      file " + file, "checkpoint.dir         --config", "address                flag", "storage.s3.endpoint    env AWS_*"},
		},
		{name: "bad --config", args: []string{"config", "show", "--config", `{"token":"x"}`}, code: 2, stderr: []string{"a token on the command line"}},
		{
			name: "merge", args: []string{"--merge-config", "--config", `{"criu":{"leave_running":true}}`, "config", "show"},
			stdout: []string{`"leave_running": true`}, stderr: []string{"wrote the configuration into " + file},
		},
		{name: "merged for good", args: []string{"config", "show"}, stdout: []string{`"leave_running": true`, `"access_key": "***"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout := assertRun(t, env, tt.args, tt.code, tt.stdout, tt.stderr)
			for _, no := range tt.notStdout {
				assert.NotContains(t, stdout, no)
			}
		})
	}
}
