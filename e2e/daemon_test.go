package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/internal/testutil"
)

// TestDaemonSocket: the socket is root-only, a second daemon on it is refused, and SIGTERM stops the
// daemon cleanly and removes the socket.
func TestDaemonSocket(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	info, err := os.Stat(d.socket)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o600, info.Mode()&(os.ModeSocket|os.ModePerm))

	r := runCmd(t, cedanaBin, d.env, "daemon", "start")
	requireOneLineError(t, r, "another cedana daemon is already serving on "+d.socket)
	assert.FileExists(t, d.socket, "the refused daemon left the live socket alone")
	assert.Equal(t, 0, d.cli("daemon", "check").code)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	assert.NoError(t, d.exitErr, "graceful shutdown exits 0")
	assert.NoFileExists(t, d.socket)
	assert.Contains(t, d.log.String(), "stopped")

	r = d.cli("daemon", "check")
	requireOneLineError(t, r, "cannot reach the cedana daemon at "+d.socket, "cedana daemon start")
}

// TestDaemonReplacesStaleSocket: a socket file nobody answers on is replaced.
func TestDaemonReplacesStaleSocket(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	stale := filepath.Join(dir, "cedana.sock")
	ln, err := net.Listen("unix", stale)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	require.FileExists(t, stale)

	d := startDaemon(t, cedanaBin, "CEDANA_ADDRESS="+stale)
	assert.Equal(t, stale, d.socket)
	assert.Equal(t, 0, d.cli("daemon", "check").code)
}

// startTCPDaemon starts a daemon listening on addr.
func startTCPDaemon(t *testing.T, addr string, extraEnv ...string) *daemon {
	t.Helper()
	return startTCPDaemonArgs(t, addr, nil, extraEnv...)
}

// startTCPDaemonArgs starts `daemon start --protocol tcp --address addr args...` and waits until it
// says it has started.
func startTCPDaemonArgs(t *testing.T, addr string, args []string, extraEnv ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+dir, "CEDANA_CHECKPOINT_DIR="+filepath.Join(dir, "ck"),
		"CEDANA_DB_PATH="+filepath.Join(dir, "cedana.db"), "CEDANA_JOBS_LOG_DIR="+filepath.Join(dir, "logs"))
	env = append(env, extraEnv...)
	d := &daemon{t: t, bin: cedanaBin, dir: dir, env: env}
	d.startLogged(exec.Command(cedanaBin, append([]string{"daemon", "start", "--protocol", "tcp", "--address", addr}, args...)...), addr)
	return d
}

// startLogged starts cmd, a daemon that logs "cedana daemon started" once it serves on addr, with
// d's environment, stops it when the test ends and waits until it serves.
func (d *daemon) startLogged(cmd *exec.Cmd, addr string) {
	t := d.t
	t.Helper()
	d.cmd, d.exited, d.log = cmd, make(chan struct{}), &testutil.Buffer{}
	d.cmd.Env = d.env
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	require.NoError(t, d.cmd.Start())
	go func() { d.exitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	require.Eventually(t, func() bool {
		select {
		case <-d.exited:
			t.Fatalf("daemon exited: %v\n%s", d.exitErr, d.log.String())
		default:
		}
		return strings.Contains(d.log.String(), "cedana daemon started")
	}, 10*time.Second, 20*time.Millisecond, "daemon did not start on %s", addr)
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestConfigFile: the daemon takes its checkpoint directory from config.json, and the environment
// overrides the file.
func TestConfigFile(t *testing.T) {
	requireE2E(t)
	cfgDir := t.TempDir()
	fromFile := filepath.Join(t.TempDir(), "from-file")
	require.NoError(t, os.WriteFile(filepath.Join(cfgDir, "config.json"),
		[]byte(fmt.Sprintf(`{"checkpoint": {"dir": %q}, "log": {"format": "json"}}`, fromFile)), 0o600))
	d := startDaemon(t, cedanaBin, "CEDANA_CONFIG_DIR="+cfgDir, "CEDANA_CHECKPOINT_DIR=")
	w := startCounter(t, false)
	path := dump(t, d, w, "--leave-running")
	assert.Equal(t, fromFile, filepath.Dir(path))
	// JSON logs, one object per line.
	line, _, _ := strings.Cut(d.log.String(), "\n")
	var entry map[string]any
	assert.NoError(t, json.Unmarshal([]byte(line), &entry), line)

	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "config.json"), []byte(`{"checkpoint": {"dir": 5}}`), 0o600))
	r := runCmd(t, cedanaBin, append(os.Environ(), "CEDANA_CONFIG_DIR="+bad), "features")
	requireOneLineError(t, r, filepath.Join(bad, "config.json"))
}

// TestCheck: `cedana check` (in-process) and `cedana daemon check` report CRIU, the kernel and the
// runtimes.
func TestCheck(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	for _, args := range [][]string{{"check"}, {"daemon", "check"}} {
		r := d.cli(args...)
		require.Equal(t, 0, r.code, r.String())
		assert.Regexp(t, `criu\s+/\S+criu \(4\.\d+\.\d+\)`, r.stdout)
		assert.Contains(t, r.stdout, "ok: Looks good.")
		assert.Regexp(t, `kernel\s+\d+\.\d+`, r.stdout)
		assert.Regexp(t, `runtime process\s+usable`, r.stdout)

		r = d.cli(append(args, "--output", "json")...)
		require.Equal(t, 0, r.code, r.String())
		var report struct {
			CriuPath    string `json:"criu_path"`
			CriuVersion int    `json:"criu_version"`
			CriuCheckOk bool   `json:"criu_check_ok"`
			Runtimes    []struct {
				Name       string `json:"name"`
				CompiledIn bool   `json:"compiled_in"`
				Usable     bool   `json:"usable"`
			} `json:"runtimes"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &report), r.stdout)
		assert.True(t, report.CriuCheckOk)
		assert.GreaterOrEqual(t, report.CriuVersion, 40100)
		require.NotEmpty(t, report.Runtimes)
		assert.Equal(t, "process", report.Runtimes[0].Name)
		assert.True(t, report.Runtimes[0].Usable)
	}

	// A CRIU that does not exist is reported, with what to do about it.
	env := append(append([]string{}, d.env...), "CEDANA_CRIU_BINARY_PATH=/nonexistent/criu")
	r := runCmd(t, cedanaBin, env, "check")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "problem:")
	assert.Contains(t, r.stdout, "CEDANA_CRIU_BINARY_PATH")
}
