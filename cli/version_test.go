package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
)

// TestVersionCommand: `cedana version` prints its fields, as text and as JSON, and says why it has
// no CRIU version when the configured CRIU is unusable, without failing.
func TestVersionCommand(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "criu")
	require.NoError(t, os.WriteFile(notExec, []byte("not a program"), 0o644))
	env := map[string]string{"CEDANA_CONFIG_DIR": t.TempDir(), "CEDANA_CRIU_BINARY_PATH": notExec}

	code, stdout, stderr := run(t, env, "version")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{"version", "commit", runtime.Version(), "criu", "unknown", "not executable", "runtimes"} {
		assert.Contains(t, stdout, want)
	}

	code, stdout, stderr = run(t, env, "version", "-o", "json")
	require.Equal(t, 0, code, stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
	assert.Equal(t, "dev", got["version"])
	assert.Equal(t, runtime.Version(), got["go_version"])
	assert.Equal(t, "unknown", got["criu_version"])
	assert.Contains(t, got["criu_error"], "not executable")
	assert.Contains(t, got, "commit")
	runtimes := features.Runtimes()
	require.Len(t, got["runtimes"], len(runtimes))
	for i, name := range runtimes {
		assert.Equal(t, name, got["runtimes"].([]any)[i])
	}
}
