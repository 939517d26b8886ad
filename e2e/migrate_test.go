package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/internal/testutil"
)

// migrateToken is both test daemons' bearer token.
const migrateToken = "mig-s3cret"

// logCounter counts into its stdout (a job's log), one number a line, ten times a second; $0 is a
// FIFO nobody writes to, whose read times the count without forking.
const logCounter = `exec 3<>"$0"; i=0; while :; do i=$((i+1)); echo "$i"; read -t 0.1 -u 3 || :; done`

// netnsPair is two network namespaces joined by a veth pair, with an address each.
type netnsPair struct {
	names [2]string
	addrs [2]string
}

// newNetnsPair makes the namespaces and removes them when the test ends.
func newNetnsPair(t *testing.T) netnsPair {
	t.Helper()
	testutil.RequireTool(t, "ip")
	tag := strconv.Itoa(os.Getpid() % 100000)
	p := netnsPair{names: [2]string{"cmig-a-" + tag, "cmig-b-" + tag}, addrs: [2]string{"10.231.7.1", "10.231.7.2"}}
	veth := [2]string{"cmiga" + tag, "cmigb" + tag}
	ip := func(args ...string) {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	for _, n := range p.names {
		_ = exec.Command("ip", "netns", "del", n).Run() // a previous run's
		ip("netns", "add", n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
	for i, n := range p.names {
		ip("link", "set", veth[i], "netns", n)
		ip("-n", n, "addr", "add", p.addrs[i]+"/24", "dev", veth[i])
		ip("-n", n, "link", "set", veth[i], "up")
		ip("-n", n, "link", "set", "lo", "up")
	}
	return p
}

// startNetnsDaemon starts a daemon on TCP addr in network namespace ns, with the token; with
// ownPIDs, in a PID namespace of its own too (as on another machine: the PIDs of a workload
// stopped on the other daemon are free there).
func startNetnsDaemon(t *testing.T, ns, addr string, ownPIDs bool) *daemon {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tmp"), 0o700))
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+dir, "CEDANA_CHECKPOINT_DIR="+filepath.Join(dir, "ck"),
		"CEDANA_DB_PATH="+filepath.Join(dir, "cedana.db"), "CEDANA_JOBS_LOG_DIR="+filepath.Join(dir, "logs"),
		"CEDANA_CHECKPOINT_TEMP_DIR="+filepath.Join(dir, "tmp"), "CEDANA_LOG_LEVEL=debug",
		"CEDANA_PROTOCOL=tcp", "CEDANA_ADDRESS="+addr, "CEDANA_TOKEN="+migrateToken)
	args := []string{"--net=/var/run/netns/" + ns, "--"}
	if ownPIDs {
		args = append(args, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child")
	}
	args = append(args, cedanaBin, "daemon", "start", "--insecure")
	d := &daemon{t: t, bin: cedanaBin, dir: dir, env: env}
	d.startLogged(exec.Command("nsenter", args...), addr)
	return d
}

// nsCLI runs the CLI against d from inside its network namespace, with env added.
func nsCLI(t *testing.T, d *daemon, ns string, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, "nsenter", append(append([]string{}, d.env...), env...), append([]string{"--net=/var/run/netns/" + ns, "--", cedanaBin}, args...)...)
}

// lastNumber is the last line of a log of logCounter's, as a number (-1: none yet).
func lastNumber(path string) int {
	data, _ := os.ReadFile(path)
	lines := strings.Fields(string(data))
	if len(lines) == 0 {
		return -1
	}
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil {
		return -1
	}
	return n
}

// TestMigrate: two daemons in two network namespaces, joined by a veth pair, with tokens. A
// process job migrates from A to B and counts on there, in B's log, from where it stopped; A
// lists it as migrated. A migration with the wrong token for B is refused and the job runs on.
// A process tree whose destination dies midway runs on at the source, and the error says so.
func TestMigrate(t *testing.T) {
	requireE2E(t)
	pair := newNetnsPair(t)
	addrA, addrB := pair.addrs[0]+":7461", pair.addrs[1]+":7462"
	a := startNetnsDaemon(t, pair.names[0], addrA, false)
	b := startNetnsDaemon(t, pair.names[1], addrB, true)
	onA := func(args ...string) result { t.Helper(); return nsCLI(t, a, pair.names[0], nil, args...) }
	onB := func(args ...string) result { t.Helper(); return nsCLI(t, b, pair.names[1], nil, args...) }

	fifo := filepath.Join(t.TempDir(), "tick")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	r := onA("run", "process", "--jid", "mig-job", "--", "bash", "-c", logCounter, fifo)
	require.Equal(t, 0, r.code, r.String())
	pid, _ := strconv.Atoi(regexp.MustCompile(`PID (\d+)`).FindStringSubmatch(r.stdout)[1])
	t.Cleanup(func() { killTree(pid) })
	logA := filepath.Join(a.dir, "logs", "mig-job.log")
	require.Eventually(t, func() bool { return lastNumber(logA) >= 3 }, 10*time.Second, 20*time.Millisecond, "the job does not count")

	t.Run("refused without the token", func(t *testing.T) {
		r := nsCLI(t, a, pair.names[0], []string{"CEDANA_TOKEN="}, "migrate", "job", "mig-job", "--to", addrB)
		requireOneLineError(t, r, "bearer token")
		wrong := filepath.Join(t.TempDir(), "wrong")
		require.NoError(t, os.WriteFile(wrong, []byte("wrong\n"), 0o600))
		r = onA("migrate", "job", "mig-job", "--to", addrB, "--token-file", wrong)
		requireOneLineError(t, r, "wrong bearer token", "runs here again")
		from := lastNumber(logA)
		require.Eventually(t, func() bool { return lastNumber(logA) >= from+3 }, 5*time.Second, 20*time.Millisecond, "the job stopped")
	})

	t.Run("job", func(t *testing.T) {
		r := onA("migrate", "job", "mig-job", "--to", addrB, "--stats")
		require.Equal(t, 0, r.code, r.String())
		require.Contains(t, r.stdout, "Migrated to "+addrB+" (job mig-job, PID")
		require.Contains(t, r.stdout, "there (receive and restore): total", "--stats prints the destination's phases")
		stopped := lastNumber(logA)
		// The source SIGKILLs its stopped tree once the destination has answered; its daemon reaps it.
		require.Eventually(t, func() bool { return pidGone(pid) || !isRunning(pid) }, 10*time.Second, 20*time.Millisecond,
			"the job's process still runs on A")

		logB := filepath.Join(b.dir, "logs", "mig-job.log")
		require.Eventually(t, func() bool { return lastNumber(logB) >= stopped+3 }, 10*time.Second, 20*time.Millisecond,
			"the job does not count on B (A stopped at %d)", stopped)
		data, err := os.ReadFile(logB)
		require.NoError(t, err)
		first, err := strconv.Atoi(strings.Fields(string(data))[0])
		require.NoError(t, err)
		require.Equal(t, stopped+1, first, "the counter did not go on from where it stopped on A")

		r = onB("ps")
		require.Equal(t, 0, r.code, r.String())
		require.Regexp(t, `mig-job\s+process\s+\d+\s+running`, r.stdout)
		r = onA("ps")
		require.Equal(t, 0, r.code, r.String())
		require.Contains(t, r.stdout, "migrated (to "+addrB+")")
		r = onA("restore", "job", "mig-job")
		requireOneLineError(t, r, "was migrated to "+addrB, "run it twice")
		r = onB("job", "kill", "mig-job")
		require.Equal(t, 0, r.code, r.String())
	})

	t.Run("lazy process", func(t *testing.T) {
		w := startMemCounterIn(t, false, 64, "nsenter", "--net=/var/run/netns/"+pair.names[0], "--")
		r := onA("migrate", "process", strconv.Itoa(w.pid), "--to", addrB, "--lazy")
		require.Equal(t, 0, r.code, r.String())
		w.waitExited(t)
		requireCounting(t, w.counter, readCounter(w.counter))
	})

	t.Run("destination dies midway", func(t *testing.T) {
		w := startMemCounterIn(t, false, 256, "nsenter", "--net=/var/run/netns/"+pair.names[0], "--")
		tmpB := filepath.Join(b.dir, "tmp")
		done := startCmd(t, "nsenter", a.env, "--net=/var/run/netns/"+pair.names[0], "--", cedanaBin,
			"migrate", "process", strconv.Itoa(w.pid), "--to", addrB)
		// B has begun to restore from the stream once it has the checkpoint's metadata.
		require.Eventually(t, func() bool { m, _ := filepath.Glob(filepath.Join(tmpB, "cedana-restore-*")); return len(m) > 0 },
			30*time.Second, 5*time.Millisecond, "B never began the restore")
		require.NoError(t, b.cmd.Process.Signal(syscall.SIGKILL))
		<-b.exited
		r := done()
		requireOneLineError(t, r, "migrate: ", "runs here again")
		requireCounting(t, w.counter, readCounter(w.counter))
		require.True(t, w.running(), "the workload is gone from A")
	})
}

// isRunning reports whether pid exists and is not a zombie.
func isRunning(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(data), ") Z ")
}
