package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCLICompatInterspersedFlags: Cedana's command lines, with cedana's flags after the program's
// words, run the program with the other words, through a real daemon.
func TestCLICompatInterspersedFlags(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)

	r := d.cli("run", "process", "echo", "hello", "--jid", "clicompat-echo", "--attach")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "hello\n", r.stdout)

	r = d.cli("run", "process", "printf", "%s|", "train.py", "--epochs", "100", "-n", "--jid", "clicompat-args", "--attach")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "train.py|--epochs|100|-n|", r.stdout)

	r = d.cli("exec", "sh", "-c", "echo exec; exit 3", "--jid", "clicompat-exec", "--attach")
	assert.Equal(t, 3, r.code, r.String())
	assert.Equal(t, "exec\n", r.stdout)

	r = d.cli("run", "process", "--jid", "clicompat-sep", "--attach", "--", "printf", "%s|", "--jid", "x")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "--jid|x|", r.stdout)

	for _, jid := range []string{"clicompat-echo", "clicompat-args", "clicompat-exec", "clicompat-sep"} {
		assert.Contains(t, d.cli("job", "inspect", jid).stdout, "halted", jid)
	}
	assert.NotContains(t, d.cli("ps").stdout, "\nx ", "no job took the program's --jid")
}

// TestCLICompatJobsAll: --attachable and --pid-file with a detached job, job list --jid, and the
// top-level kill and delete with --all.
func TestCLICompatJobsAll(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")

	r := d.cli("run", "process", "sleep", "300", "--jid", "clicompat-sleep", "--attachable", "--pid-file", pidFile)
	require.Equal(t, 0, r.code, r.String())
	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	t.Cleanup(func() { killTree(pid) })
	assert.Equal(t, "sleep", readComm(t, pid))
	r = d.cli("exec", "sleep", "300", "--jid", "clicompat-sleep2")
	require.Equal(t, 0, r.code, r.String())
	r = d.cli("exec", "true", "--jid", "clicompat-done", "--attach")
	require.Equal(t, 0, r.code, r.String())

	r = d.cli("job", "list", "--jid", "clicompat-sleep", "--jid", "clicompat-done")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "clicompat-sleep ")
	assert.Contains(t, r.stdout, "clicompat-done")
	assert.NotContains(t, r.stdout, "clicompat-sleep2")
	r = d.cli("ps", "--jid", "clicompat-sleep2", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var list struct {
		Jobs []jobJSON `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	require.Len(t, list.Jobs, 1)
	assert.Equal(t, "clicompat-sleep2", list.Jobs[0].JID)

	// delete --all leaves the running jobs alone.
	r = d.cli("delete", "--all")
	require.Equal(t, 0, r.code, r.String())
	assert.Equal(t, "Deleted clicompat-done\n", r.stdout)
	assert.Contains(t, d.cli("ps").stdout, "clicompat-sleep2")

	r = d.cli("kill", "--all")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Killed clicompat-sleep\n")
	assert.Contains(t, r.stdout, "Killed clicompat-sleep2\n")
	require.Eventually(t, func() bool { return !strings.Contains(d.cli("ps").stdout, "running") }, 10*time.Second, 50*time.Millisecond)
	r = d.cli("kill", "--all")
	require.Equal(t, 0, r.code, r.String())
	assert.Empty(t, r.stdout)

	r = d.cli("exec", "sleep", "300", "--jid", "clicompat-forced")
	require.Equal(t, 0, r.code, r.String())
	r = d.cli("delete", "--all", "--force")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Deleted clicompat-forced\n")
	r = d.cli("ps", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	assert.NotContains(t, r.stdout, "clicompat")
}

// TestCLICompatNoServerPIDFile: with --no-server, --pid-file names the command's child, which
// can read it.
func TestCLICompatNoServerPIDFile(t *testing.T) {
	requireE2E(t)
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	r := runCmd(t, cedanaBin, env, "run", "process", "sh", "-c", `while [ ! -s "$0" ]; do sleep 0.01; done; echo $$; cat "$0"; exit 5`, pidFile,
		"--pid-file", pidFile, "--no-server")
	assert.Equal(t, 5, r.code, r.String())
	lines := strings.Fields(r.stdout)
	require.Len(t, lines, 2, r.String())
	assert.Equal(t, lines[0], lines[1], "the PID file holds the child's PID")
}

// TestCLICompatVersion: `cedana version` finds the machine's CRIU as the daemon does, without one.
func TestCLICompatVersion(t *testing.T) {
	requireE2E(t)
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
	r := runCmd(t, cedanaBin, env, "version", "--output", "json")
	require.Equal(t, 0, r.code, r.String())
	var v struct {
		CRIUVersion string   `json:"criu_version"`
		CRIUPath    string   `json:"criu_path"`
		Runtimes    []string `json:"runtimes"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	assert.Regexp(t, `^[4-9]\.\d+\.\d+$`, v.CRIUVersion, r.stdout)
	assert.FileExists(t, v.CRIUPath)
	assert.Contains(t, v.Runtimes, "process")
}

// TestCLICompatContainerd: `run containerd <image> <cmd...>` with the runtime's and run's flags
// after the container's command, whose own -n stays its own.
func TestCLICompatContainerd(t *testing.T) {
	c := needContainerd(t, "default")
	d := startDaemon(t, cedanaBin)
	t.Cleanup(func() { removeContainer(c, "default", "clicompat-ctr") })
	r := d.cli("run", "containerd", testImage, "/bin/sh", "-c", `printf "%s|" "$@"; exec sleep 300`, "sh", "-n", "x",
		"--id", "clicompat-ctr", "--containerd-address", c.address, "--jid", "clicompat-ctrjob", "--attachable")
	require.Equal(t, 0, r.code, r.String())
	assert.Regexp(t, `^Running managed containerd PID \d+ \(job clicompat-ctrjob, `, r.stdout)
	logPath := filepath.Join(d.dir, "logs", "clicompat-ctrjob.log")
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return string(data) == "-n|x|" }, 10*time.Second, 50*time.Millisecond,
		"the container's command did not get its words")
	assert.Contains(t, d.cli("job", "inspect", "clicompat-ctrjob").stdout, "namespace=default")
}

// readComm is the command name of process pid.
func readComm(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	require.NoError(t, err)
	return strings.TrimSpace(string(data))
}
