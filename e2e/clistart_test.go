package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCLIStartNoCollection: a short command, with or without a daemon to answer it, starts and
// ends without a garbage collection (internal/startgc raises the target before the packages'
// init functions allocate), and `daemon start` gives the collector its usual target back.
func TestCLIStartNoCollection(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	noDaemon := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{name: "version", env: noDaemon, args: []string{"--version"}},
		{name: "ps without a daemon", env: noDaemon, args: []string{"ps"}, code: 1},
		{name: "ps", env: d.env, args: []string{"ps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, cedanaBin, append(slices.Clone(tc.env), "GODEBUG=gctrace=1"), tc.args...)
			require.Equal(t, tc.code, r.code, r.String())
			for line := range strings.Lines(r.stderr) {
				assert.False(t, strings.HasPrefix(line, "gc "), "a collection during a short command: %s", line)
			}
		})
	}
}
