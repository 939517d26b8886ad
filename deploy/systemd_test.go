package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/config"
)

const unitFile = "systemd/cedana.service"

// unitKeys parses a systemd unit into "Section.Key" -> values (a key may repeat).
func unitKeys(t *testing.T, data string) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "line %d: %q is not key=value", n, line)
			require.NotEmpty(t, section, "line %d: a key outside a section", n)
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

// TestSystemdUnit checks deploy/systemd/cedana.service: its keys, its directories against
// config's defaults, and, with systemd-analyze, that systemd reads it without a complaint.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	require.NoError(t, err)
	keys := unitKeys(t, string(data))
	def := config.Default()
	for key, want := range map[string]string{
		"Service.Type":             "simple", // the daemon does not speak sd_notify
		"Service.ExecStart":        "/usr/local/bin/cedana daemon start",
		"Service.Restart":          "on-failure",
		"Service.RuntimeDirectory": "cedana",
		"Service.StateDirectory":   filepath.Base(filepath.Dir(def.DB.Path)),
		"Service.LogsDirectory":    filepath.Base(def.Jobs.LogDir),
		"Service.StandardError":    "journal",
		"Service.KillMode":         "process", // jobs and restored processes outlive a restart
		"Install.WantedBy":         "multi-user.target",
	} {
		assert.Equal(t, []string{want}, keys[key], key)
	}
	assert.Equal(t, "/var/lib/cedana", filepath.Dir(def.DB.Path), "StateDirectory is /var/lib/cedana")
	assert.Equal(t, "/var/log/cedana", def.Jobs.LogDir, "LogsDirectory is /var/log/cedana")

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			require.NoError(t, err, "systemd-analyze verifies the unit in CI: install systemd")
		}
		t.Skip("systemd-analyze is not installed")
	}
	// verify wants ExecStart's binary to exist: point it at this test's own executable.
	self, err := os.Executable()
	require.NoError(t, err)
	unit := filepath.Join(t.TempDir(), filepath.Base(unitFile))
	require.NoError(t, os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/cedana", self)), 0o644))
	out, err := exec.CommandContext(t.Context(), analyze, "verify", unit).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// verify exits 0 on keys it ignores (unknown, misspelt or with a bad value), but names them.
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify")
}
