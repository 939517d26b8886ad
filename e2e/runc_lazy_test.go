package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/withcriu"
)

// Lazy restores of runc containers: `restore job --lazy` of a runc job and `restore runc --lazy`.
// Containers and jobs are named rlazy-*.

// runcSummed is a runc job whose container runs a memhog of lazyMiB MiB beside the counter.
type runcSummed struct {
	summedJob
	e *runcEnv
}

// runRuncSummed runs, as job jid, a container whose init counts into /data/count and whose
// memhog (put into the rootfs) fills lazyMiB MiB and checksums them into /data/sum; it returns
// once both have started.
func runRuncSummed(t *testing.T, d *daemon, jid string) runcSummed {
	t.Helper()
	e := newRuncEnv(t)
	data, err := os.ReadFile(memhogBin)
	require.NoError(t, err)
	rootfs := filepath.Join(e.bundle, "rootfs")
	require.NoError(t, os.WriteFile(filepath.Join(rootfs, "bin", "memhog"), data, 0o755))
	e.setProcess("/bin/memhog -mib " + strconv.Itoa(lazyMiB) + ` -ready /data/ready -sum /data/sum &
i=0; while true; do i=$((i+1)); printf "%08d\n" $i 1<>/data/count; [ $((i % 10)) = 0 ] && echo "count $i"; sleep 0.1; done`)
	r := d.cli("run", "runc", "--bundle", e.bundle, "--root", e.root, "--jid", jid)
	require.Equal(t, 0, r.code, r.String())
	ready := filepath.Join(rootfs, "data", "ready")
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, time.Minute, 20*time.Millisecond, "memhog did not fill its memory")
	require.Eventually(t, func() bool { return readCounter(e.counter) >= 2 }, 10*time.Second, 20*time.Millisecond)
	return runcSummed{summedJob: summedJob{jid: jid, sum: filepath.Join(rootfs, "data", "sum")}, e: e}
}

// memhog is the host PID of the container's memhog, a child of its init (PID init); 0 if none.
func memhogIn(init int) int {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/task/" + strconv.Itoa(init) + "/children")
	for _, f := range strings.Fields(string(data)) {
		comm, _ := os.ReadFile("/proc/" + f + "/comm")
		if strings.TrimSpace(string(comm)) == "memhog" {
			pid, _ := strconv.Atoi(f)
			return pid
		}
	}
	return 0
}

// lazyServerOf is the PID in a `job inspect` lazy-pages status ("serving since ... (criu
// lazy-pages, PID n)"), 0 if there is none.
func lazyServerOf(status string) int {
	m := regexp.MustCompile(`criu lazy-pages, PID (\d+)\)`).FindStringSubmatch(status)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestRlazyRestoreJob: a runc job whose container holds 512 MiB of random data, dumped into an lz4
// archive, restores with `restore job --lazy`: the restore returns once the container runs (the
// images unpacked first), `ps` says its pages are loading while the server serves (held there by
// stopping the server once the restore has returned, so that the check does not race its end;
// unless the server was done first, which a loaded machine allows: stopping it while CRIU
// restores makes it fail once resumed), then running; the counter goes
// on, and the memhog's checksum of its whole memory matches the one from before the dump. Then the
// same checkpoint restores lazily as a container left to runc (`restore runc --lazy`, detached).
func TestRlazyRestoreJob(t *testing.T) {
	scratch := t.TempDir()
	d := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)
	w := runRuncSummed(t, d, "rlazy-job")
	pid := w.e.pid("rlazy-job")
	r := d.cli("dump", "job", w.jid, "--compression", "lz4")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	count := requireStopped(t, w.e.counter)

	start := time.Now()
	r = d.cli("restore", "job", w.jid, "--lazy", "-o", "json")
	took := time.Since(start)
	require.Equal(t, 0, r.code, r.String())
	var out streamOut
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Contains(t, out.Stats.Notes, withcriu.LazyNote)
	j := inspectJob(t, d, w.jid)
	t.Logf("lazy restore of a %d MiB container returned in %s; lazy pages: %q", lazyMiB, took.Round(time.Millisecond), j.LazyPages)
	switch server := lazyServerOf(j.LazyPages); {
	case server > 0 && unix.Kill(server, unix.SIGSTOP) == nil:
		assert.Regexp(t, `rlazy-job\s+runc\s+\d+\s+running \(lazy pages loading\)`, d.cli("ps").stdout)
		require.NoError(t, unix.Kill(server, unix.SIGCONT))
	default: // a loaded machine: runc's restore took so long that the server served every page meanwhile
		t.Logf("the lazy-pages server was done before ps could be asked; lazy pages: %q", j.LazyPages)
	}
	assert.Equal(t, "running", j.Status)
	assert.Equal(t, "running", w.e.state("rlazy-job"))
	assert.Equal(t, out.Pid, j.PID)

	requireCounting(t, w.e.counter, count)
	hog := memhogIn(j.PID)
	require.Positive(t, hog, "no memhog in the restored container")
	w.verify(t, hog)
	require.Eventually(t, func() bool { return inspectJob(t, d, w.jid).LazyPages == "" }, 30*time.Second, 50*time.Millisecond,
		"the lazy-pages server still serves after every page was read")
	assert.Regexp(t, `rlazy-job\s+runc\s+\d+\s+running\s+/`, d.cli("ps").stdout)
	require.Eventually(t, func() bool { return len(entries(scratch)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the temporary images are removed once the server is done: %v", entries(scratch))

	// The same checkpoint, restored lazily as a container runc keeps (detached).
	ck := inspectJob(t, d, w.jid).Latest.Path
	w.e.killSupervised("rlazy-job")
	require.NoError(t, os.WriteFile(w.e.counter, []byte("00000000\n"), 0o644)) // what counts next is the restore
	r = d.cli("restore", "runc", "--id", "rlazy-det", "--path", ck, "--bundle", w.e.bundle, "--root", w.e.root, "--lazy", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	out = streamOut{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Contains(t, out.Stats.Notes, withcriu.LazyNote)
	assert.Equal(t, "running", w.e.state("rlazy-det"))
	requireCounting(t, w.e.counter, count)
	hog = memhogIn(w.e.pid("rlazy-det"))
	require.Positive(t, hog, "no memhog in the container restored detached")
	w.verify(t, hog)
	w.e.killAndDelete("rlazy-det")
}

// TestRlazyServerKilled: the lazy-pages server killed while it transfers the memory of a lazily
// restored runc job (its log, at level 4, shows pages copied) ends the container (it cannot run
// without its memory): runc, its supervisor, deletes it, and `job inspect`, `ps` and the job's log
// say why. As for a process job, the kill lands before or after the restore has answered: before,
// the restore fails with the same reason and leaves no container.
func TestRlazyServerKilled(t *testing.T) {
	d := startDaemon(t, cedanaBin, "CEDANA_CRIU_LOG_LEVEL=4")
	w := runRuncSummed(t, d, "rlazy-victim")
	pid := w.e.pid("rlazy-victim")
	r := d.cli("dump", "job", w.jid, "--compression", "none")
	require.Equal(t, 0, r.code, r.String())
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)

	r = restoreKillingServer(t, d, w.jid)
	require.Eventually(t, func() bool { return len(w.e.ids()) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the container runs on without its memory, or runc still lists it")
	j := requireLazyFailed(t, d, w.jid, r)
	log, err := os.ReadFile(j.Log)
	require.NoError(t, err)
	assert.Contains(t, string(log), "lazy restore of PID")
}

// TestRlazyTerminal: a runc job with a terminal restores lazily too (`runc restore --detach
// --console-socket --lazy-pages`): it counts on, and its new terminal's output reaches the log.
func TestRlazyTerminal(t *testing.T) {
	e := newRuncEnv(t)
	d := startDaemon(t, cedanaBin)
	logPath, count := dumpTerminalJob(t, e, d, "rlazy-tty")

	r := d.cli("restore", "job", "rlazy-tty", "--lazy", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var out streamOut
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Contains(t, out.Stats.Notes, withcriu.LazyNote)
	assert.Equal(t, "running", e.state("rlazy-tty"))
	requireCounting(t, e.counter, count)
	next := "count " + strconv.Itoa((count/10+2)*10)
	require.Eventually(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), next) },
		10*time.Second, 50*time.Millisecond, "the restored terminal's output did not reach the log (%s)", next)
	require.Eventually(t, func() bool { return inspectJob(t, d, "rlazy-tty").LazyPages == "" }, 30*time.Second, 50*time.Millisecond)
	e.killAndDelete("rlazy-tty")
}
