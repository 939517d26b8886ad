package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/cli"
	"github.com/cedana/cedana/features"
	_ "github.com/cedana/cedana/runtimes/all"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), args, cli.Env{
		Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] },
	})
	return code, stdout.String(), stderr.String()
}

// assertRun runs args and checks the exit code and that stdout and stderr hold the wanted texts;
// it returns stdout.
func assertRun(t *testing.T, env map[string]string, args []string, wantCode int, wantStdout, wantStderr []string) string {
	t.Helper()
	code, stdout, stderr := run(t, env, args...)
	assert.Equal(t, wantCode, code, "stdout: %s\nstderr: %s", stdout, stderr)
	for _, want := range wantStdout {
		assert.Contains(t, stdout, want)
	}
	for _, want := range wantStderr {
		assert.Contains(t, stderr, want)
	}
	return stdout
}

// TestGrammar builds the whole grammar with every runtime compiled in: a clash between a runtime's
// flags and the common ones would fail here.
func TestGrammar(t *testing.T) {
	env := map[string]string{"CEDANA_CONFIG_DIR": t.TempDir()}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "help", args: []string{"--help"}, stdout: []string{"dump process", "restore process", "daemon start", "features", "check"}},
		{name: "dump help", args: []string{"dump", "process", "--help"}, stdout: []string{"--[no-]leave-running", "--tcp-established", "--external", "<pid>"}},
		{name: "restore help", args: []string{"restore", "process", "--help"}, stdout: []string{"--path"}},
		{name: "version", args: []string{"--version"}, stdout: []string{"dev"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 80, stderr: []string{"unexpected argument frobnicate"}},
		{name: "missing pid", args: []string{"dump", "process"}, code: 80, stderr: []string{"expected \"<pid>\""}},
		{name: "restore needs path", args: []string{"restore", "process"}, code: 1, stderr: []string{"pass --path"}},
		{name: "dump job help", args: []string{"dump", "job", "--help"}, stdout: []string{"<jid>"}},
		{name: "run help", args: []string{"run", "process", "--help"}, stdout: []string{"<path>", "--jid", "--out", "--pid-file"}},
		{name: "exec", args: []string{"exec", "--help"}, stdout: []string{"<path>", "--jid", "--attachable"}},
		{name: "bad output", args: []string{"features", "-o", "yaml"}, code: 80, stderr: []string{"--output"}},
		{name: "features", args: []string{"features"}, stdout: []string{"dump-cmd", "PROCESS"}},
		{
			name: "k8s setup help", args: []string{"k8s", "setup", "--help"},
			stdout: []string{"--containerd-config", "/etc/containerd/config.toml", "--bin-dir", "/usr/local/bin", "--restart"},
		},
		{name: "k8s destroy help", args: []string{"k8s", "destroy", "--help"}, stdout: []string{"byte for byte", "--containerd-config"}},
		{
			name: "run without a --no-server mode", args: []string{"run", "containerd", "--no-server", "--id", "c", "img"}, code: 1,
			stderr: []string{"the containerd runtime has no --no-server mode", "drop --no-server"},
		},
		{
			name: "restore without a --no-server mode", args: []string{"restore", "containerd", "--no-server", "--path", "/nonexistent"}, code: 1,
			stderr: []string{"the containerd runtime has no --no-server mode"},
		},
		{
			name: "restore job with --out", args: []string{"restore", "job", "j1", "--out", "/tmp/x.log"}, code: 1,
			stderr: []string{"a restored job writes to its own log", "drop --out"},
		},
		{
			name: "restore --no-server --attachable", args: []string{"restore", "process", "--no-server", "--attachable", "--path", "/nonexistent"}, code: 1,
			stderr: []string{"jobs are the daemon's"},
		},
		{
			name: "no daemon", args: []string{"--address", "/nonexistent/cedana.sock", "dump", "process", "42"}, code: 1,
			stderr: []string{"cannot reach the cedana daemon at /nonexistent/cedana.sock", "cedana daemon start"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertRun(t, env, tt.args, tt.code, tt.stdout, tt.stderr)
		})
	}
}

func TestBadConfig(t *testing.T) {
	code, _, stderr := run(t, map[string]string{"CEDANA_CONFIG_DIR": t.TempDir(), "CEDANA_PROTOCOL": "udp"}, "features")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `protocol "udp"`)
}

// TestHelperCommandLine: the command line a runtime's helper is started with (here runc's
// log-copy) runs that helper, with the command's standard input.
func TestHelperCommandLine(t *testing.T) {
	h, ok := features.LookupHelper("log-copy")
	require.True(t, ok, "runc declares its log-copy helper")
	log := filepath.Join(t.TempDir(), "job.log")
	cmd, err := h.Command(log)
	require.NoError(t, err)
	require.Equal(t, []string{features.HelperVerb, "log-copy", log}, cmd.Args[1:])

	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), cmd.Args[1:], cli.Env{
		Stdin: strings.NewReader("container output\n"), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return map[string]string{"CEDANA_CONFIG_DIR": t.TempDir()}[k] },
	})
	require.Equal(t, 0, code, stderr.String())
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "container output\n", string(data))

	code, _, stderr2 := run(t, map[string]string{"CEDANA_CONFIG_DIR": t.TempDir()}, features.HelperVerb, "no-such-helper")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr2, `no helper "no-such-helper"`)
}
