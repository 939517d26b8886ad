package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/storage/storagetest"
)

// migrateToken is the bench daemons' bearer token.
const migrateToken = "bench-migrate"

// migrateSample is one move of a memhog from daemon A to daemon B.
type migrateSample struct {
	downtime time.Duration // the memhog's last step on A until its first step on B
	written  int64         // bytes daemon A (and the CRIUs it reaped) wrote to disk meanwhile
}

// tcpDaemon is a daemon on TCP that the bench started.
type tcpDaemon struct {
	addr string
	pid  int // its PID in our namespace
	env  []string
}

// BenchmarkMigrate moves a memhog of CEDANA_BENCH_SIZES MiB (default 256 and 1024) from daemon A
// to daemon B, both on loopback TCP with a token, B in a PID namespace of its own (as on another
// machine): with `cedana migrate process`, and by `dump process --dir s3://...` on A then
// `restore process --path s3://...` on B through the S3 server the tests use, alternately,
// CEDANA_BENCH_ITER (default 3) times each. It prints the downtime (the memhog's last step
// before the dump until its first step on B, from its progress file) and the bytes daemon A wrote
// to disk (its /proc/<pid>/io write_bytes, which includes the CRIUs it reaped) for each.
func BenchmarkMigrate(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	s3 := storagetest.Start(b)
	a := e.startTCPDaemon(b, "a", false, s3.Env())
	d := e.startTCPDaemon(b, "b", true, s3.Env())
	iters := envInt(b, "CEDANA_BENCH_ITER", 3, 1)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "size\tmigrate downtime\tS3 dump+restore downtime\tS3/migrate\tA's disk writes: migrate\tS3\tgoal (0 for the images)")
	for _, mib := range envSizes(b, 256, 1024) {
		var mig, viaS3 []migrateSample
		for i := range 2 * iters {
			s, err := e.migrateRound(a, d, mib, (i%2 == 0) == (i/2%2 == 0), "s3://"+s3.Bucket+"/bench")
			if err != nil {
				b.Fatalf("%s: %v\ndaemon log:\n%s", sizeName(mib), err, tail(e.daemonLog, 4096))
			}
			if (i%2 == 0) == (i/2%2 == 0) {
				mig = append(mig, s)
			} else {
				viaS3 = append(viaS3, s)
			}
		}
		md, sd := downtimes(mig), downtimes(viaS3)
		mw, sw := maxWritten(mig), maxWritten(viaS3)
		goal := "met"
		if mw >= 1<<20 {
			goal = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%s (%s)\t%s (%s)\t%.2fx\t%s\t%s\t%s\n", sizeName(mib), ms(md.med), md, ms(sd.med), sd,
			ratio(sd.med, md.med), mibs(mw), mibs(sw), goal)
	}
	_ = w.Flush()
}

// downtimes is the series of the samples' downtimes.
func downtimes(ss []migrateSample) series {
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = s.downtime
	}
	return spanOf(ds)
}

// maxWritten is the most any of the samples wrote.
func maxWritten(ss []migrateSample) int64 {
	var n int64
	for _, s := range ss {
		n = max(n, s.written)
	}
	return n
}

// migrateRound starts a memhog of mib MiB and moves it from a to b: migrated, or through S3 (s3Dir).
func (e *env) migrateRound(a, d *tcpDaemon, mib int, migrate bool, s3Dir string) (s migrateSample, err error) {
	prog := filepath.Join(e.tmp, fmt.Sprintf("migrate-progress-%d", mib))
	wl, err := e.startWorkload(mib, "-progress", prog)
	if err != nil {
		return s, err
	}
	defer wl.kill()
	defer killByArg(prog) // the memhog restored on b
	// memhog walks once it is ready
	for deadline := time.Now().Add(commandTimeout); ; {
		if p, err := readProgress(prog); err == nil && p[progSteps] > 0 {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("memhog made no step in %s", commandTimeout)
		}
		time.Sleep(time.Millisecond) // polling its progress file: it signals nothing else
	}
	before, err := ioWritten(a.pid)
	if err != nil {
		return s, err
	}
	pauses := make(chan [2]uint64, 1)
	stop := make(chan struct{})
	go watchPauses(prog, stop, pauses)
	pid := strconv.Itoa(wl.pid)
	if migrate {
		var out []byte
		if out, err = e.tcpCLI(a, "migrate", "process", pid, "--to", d.addr, "--stats"); err == nil && os.Getenv("CEDANA_BENCH_VERBOSE") != "" {
			fmt.Fprintf(os.Stderr, "migrate %d MiB:\n%s", mib, out)
		}
	} else {
		name := fmt.Sprintf("bench-%d-%d", mib, time.Now().UnixNano())
		if _, err = e.tcpCLI(a, "dump", "process", pid, "--dir", s3Dir, "--name", name, "--compression", "tar"); err == nil {
			_, err = e.tcpCLI(d, "restore", "process", "--path", s3Dir+"/"+name+".tar")
		}
	}
	if err != nil {
		close(stop)
		return s, err
	}
	err = waitRunning(prog, wallClock())
	close(stop)
	if err != nil {
		return s, err
	}
	after, err := ioWritten(a.pid)
	if err != nil {
		return s, err
	}
	pause := <-pauses
	if pause[0] == 0 {
		return s, errors.New("the memhog made no pause the watcher saw")
	}
	s.downtime = time.Duration(pause[0] - pause[1])
	s.written = after - before
	return s, nil
}

// watchPauses sends on pauses, once stop is closed, the longest pause the memhog of progress file
// prog made meanwhile: the moment it resumed and its last step before (read every millisecond,
// so within a millisecond of the truth). The longest is the dump's: a busy machine may hold the
// memhog back for shorter pauses too.
func watchPauses(prog string, stop <-chan struct{}, pauses chan<- [2]uint64) {
	var longest [2]uint64
	var last, resumed uint64
	sample := func() {
		if p, err := readProgress(prog); err == nil {
			if resumed != 0 && p[progResumed] != resumed && last != 0 && p[progResumed]-last > longest[0]-longest[1] {
				longest = [2]uint64{p[progResumed], last}
			}
			resumed, last = p[progResumed], p[progLast]
		}
	}
	for {
		select {
		case <-stop:
			sample() // the restored memhog's first step, which the caller has seen
			pauses <- longest
			return
		default:
		}
		sample()
		time.Sleep(time.Millisecond) // a sampling period, not a wait for an event
	}
}

// waitRunning waits until the memhog of progress file prog makes a step after since (a
// wallClock reading): after the command that moved it returned, it runs on the destination.
func waitRunning(prog string, since uint64) error {
	for deadline := time.Now().Add(commandTimeout); ; {
		if p, err := readProgress(prog); err == nil && p[progLast] > since {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the moved memhog made no step in %s", commandTimeout)
		}
		time.Sleep(time.Millisecond) // polling its progress file: it signals nothing else
	}
}

// ioWritten is what process pid and the children it reaped wrote to disk (write_bytes).
func ioWritten(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io has no write_bytes", pid)
}

// killByArg kills every process whose command line has arg (a restored memhog in another PID
// namespace, whose PID there we cannot use here).
func killByArg(arg string) {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(data, []byte(arg)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// startTCPDaemon starts a daemon on a free loopback port with the token and extra environment;
// with ownPIDs, in a PID namespace of its own.
func (e *env) startTCPDaemon(b *testing.B, name string, ownPIDs bool, extra []string) *tcpDaemon {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := filepath.Join(e.tmp, "daemon-"+name)
	env := append(append([]string{}, e.cedanaEnv...), extra...)
	env = append(env, "CEDANA_PROTOCOL=tcp", "CEDANA_ADDRESS="+addr, "CEDANA_TOKEN="+migrateToken,
		"CEDANA_DB_PATH="+filepath.Join(dir, "cedana.db"), "CEDANA_JOBS_LOG_DIR="+filepath.Join(dir, "logs"))
	args := []string{e.cedana, "daemon", "start"}
	if ownPIDs {
		args = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, args...)
	}
	pid := launchDaemon(b, args, env, filepath.Join(e.tmp, "daemon-"+name+".log"), "tcp", addr, ownPIDs)
	return &tcpDaemon{addr: addr, pid: pid, env: env}
}

// tcpCLI runs the CLI against d.
func (e *env) tcpCLI(d *tcpDaemon, args ...string) ([]byte, error) {
	out, stderr, err := e.run(d.env, e.cedana, args...)
	if err != nil {
		return out, fmt.Errorf("cedana %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	return out, nil
}
