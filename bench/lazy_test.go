package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/sysinfo"
)

// lazyGoal is issue 15's goal for a lazy restore's time to running, whatever the memory's size.
const lazyGoal = 250 * time.Millisecond

// lazySample is one restore of a checkpoint, eager or lazy.
type lazySample struct {
	running time.Duration // the restore request until the command returns: the tree runs
	first   time.Duration // the restore request until the restored memhog's first step
	loaded  time.Duration // the restore request until every page is back (lazy: the server exited)
	// The restored memhog's walk, in MiB a second (a step reads every page of a MiB): from its
	// first step until every page is back (lazy only), and over paceWindow after that.
	paceLoading, paceLoaded float64
}

// paceWindow is how long the walk's pace is measured for once every page is back.
const paceWindow = 300 * time.Millisecond

// BenchmarkLazyRestore is time to running, eager vs `--lazy`, of one directory checkpoint per size
// (CEDANA_BENCH_SIZES, default 256 MiB, 1 GiB and 4 GiB, the sizes memory allows) of a memhog
// holding random data and walking it (-progress), restored CEDANA_BENCH_ITER times each way in
// alternating order. Time to running is the restore request until the restored memhog's first
// step of its walk (the command's own return is shown too); for the lazy restores, also the time
// until every page is back and the walk's pace meanwhile, against its pace afterwards. Each
// restored memhog's checksum of its whole memory is checked against the one before the dump.
// Run with -benchtime 1x (`just bench`).
func BenchmarkLazyRestore(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	iters := envInt(b, "CEDANA_BENCH_ITER", 5, 1)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "size\teager: first step (command)\tlazy: first step (command)\tlazy: all pages back\t"+
		"walk while loading / after (MiB/s)\teager/lazy\tlazy goal (≤ 250 ms, flat)")
	for _, mib := range envSizes(b, 256, 1024, 4096) {
		// The memhog, the checkpoint (on tmpfs by default) and a restored memhog at once.
		if need := int64(3*mib+1024) << 20; sysinfo.MemAvailable() < need {
			fmt.Fprintf(w, "%s\tskipped: %d MiB of memory available, %d MiB needed\n", sizeName(mib), sysinfo.MemAvailable()>>20, need>>20)
			continue
		}
		eager, lazy, err := e.lazyRounds(mib, iters)
		if err != nil {
			b.Fatalf("%s: %v\ndaemon log:\n%s", sizeName(mib), err, tail(e.daemonLog, 4096))
		}
		of := lazySeries
		running := func(s lazySample) time.Duration { return s.running }
		first := func(s lazySample) time.Duration { return s.first }
		ef, lf := of(eager, first), of(lazy, first)
		ll := of(lazy, func(s lazySample) time.Duration { return s.loaded })
		goal := "met"
		if lf.med > lazyGoal {
			goal = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%s (%s; %s)\t%s (%s; %s)\t%s (%s)\t%.0f / %.0f\t%.1fx\t%s\n", sizeName(mib),
			ms(ef.med), ef, ms(of(eager, running).med), ms(lf.med), lf, ms(of(lazy, running).med), ms(ll.med), ll,
			medianOf(lazy, func(s lazySample) float64 { return s.paceLoading }),
			medianOf(lazy, func(s lazySample) float64 { return s.paceLoaded }),
			float64(ef.med)/float64(max(lf.med, 1)), goal)
	}
	_ = w.Flush()
}

// medianOf is the median of f over ss.
func medianOf(ss []lazySample, f func(lazySample) float64) float64 {
	vs := make([]float64, len(ss))
	for i, s := range ss {
		vs[i] = f(s)
	}
	slices.Sort(vs)
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)/2]
}

// lazyRounds dumps a memhog of mib MiB once, then restores it iters times eagerly and iters times
// lazily, alternating which goes first.
func (e *env) lazyRounds(mib, iters int) (eager, lazy []lazySample, err error) {
	sum := filepath.Join(e.tmp, fmt.Sprintf("sum-%d", mib))
	prog := filepath.Join(e.tmp, fmt.Sprintf("lazy-progress-%d", mib))
	wl, err := e.startWorkload(mib, "-sum", sum, "-progress", prog)
	if err != nil {
		return nil, nil, err
	}
	defer wl.kill()
	name := "lazy-" + sizeName(mib)
	dir := filepath.Join(e.images, name)
	defer os.RemoveAll(dir)
	if _, stderr, err := e.run(e.cedanaEnv, e.cedana, "dump", "process", strconv.Itoa(wl.pid), "--dir", e.images, "--name", name, "--compression", "none"); err != nil {
		return nil, nil, fmt.Errorf("cedana dump: %w: %s", err, stderr)
	}
	<-wl.exited
	if err := waitGone(wl.pid, goneTimeout); err != nil {
		return nil, nil, err
	}
	for i := range 2 * iters {
		isLazy := (i%2 == 1) != (i/2%2 == 1) // eager, lazy, then lazy, eager, ...
		s, err := e.lazyRound(dir, wl.pid, sum, prog, isLazy)
		if err != nil {
			return nil, nil, err
		}
		if isLazy {
			lazy = append(lazy, s)
		} else {
			eager = append(eager, s)
		}
	}
	return eager, lazy, nil
}

// lazyRound restores the checkpoint in dir (of PID pid) once, times the restored memhog's first
// step and its pace (progress file prog), checks the restored memory against the checksum in
// sum, and kills the restored process.
func (e *env) lazyRound(dir string, pid int, sum, prog string, lazy bool) (s lazySample, err error) {
	args := []string{"restore", "process", "--path", dir}
	if lazy {
		args = append(args, "--lazy")
	}
	start, since := time.Now(), wallClock()
	_, stderr, err := e.run(e.cedanaEnv, e.cedana, args...)
	s.running = time.Since(start)
	if err != nil {
		return s, fmt.Errorf("cedana %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	defer func() {
		if kerr := e.killRestored(ced, pid); kerr != nil && err == nil {
			err = kerr
		}
	}()
	if err := waitRunning(prog, since); err != nil {
		return s, err
	}
	p0, err := readProgress(prog)
	if err != nil {
		return s, err
	}
	s.first = time.Duration(p0[progResumed] - since)
	if server := lazyServer(dir); lazy && server > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(commandTimeout))
		werr := sysinfo.WaitExit(ctx, server, 0)
		cancel()
		if werr != nil {
			return s, fmt.Errorf("the lazy-pages server still serves %s after %s", dir, commandTimeout)
		}
	}
	s.loaded = time.Since(start)
	p1, err := readProgress(prog)
	if err != nil {
		return s, err
	}
	if lazy {
		s.paceLoading = pace(p0[progResumedAt], p0[progResumed], p1)
	}
	time.Sleep(paceWindow) // a measurement window, not a wait for an event
	p2, err := readProgress(prog)
	if err != nil {
		return s, err
	}
	s.paceLoaded = pace(p1[progSteps], p1[progLast], p2)
	again := sum + ".again"
	_ = os.Remove(again)
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		return s, fmt.Errorf("ask the restored memhog for its checksum: %w", err)
	}
	for {
		got, err := os.ReadFile(again)
		if err == nil {
			if want, _ := os.ReadFile(sum); string(got) != string(want) {
				return s, fmt.Errorf("restored memory differs: checksum %q, %q before the dump", got, want)
			}
			return s, nil
		}
		if time.Since(start) > commandTimeout {
			return s, fmt.Errorf("no checksum from the restored memhog: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pace is the walk's MiB a second from steps made by wallClock time since to progress p.
func pace(steps, since uint64, p [progWords]uint64) float64 {
	if p[progLast] <= since {
		return 0
	}
	return float64(p[progSteps]-steps) / (float64(p[progLast]-since) / float64(time.Second))
}

// lazyServer is the PID of the `criu lazy-pages` that serves the images in dir, 0 when none does
// (any more).
func lazyServer(dir string) int {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "lazy-pages\x00-D\x00"+dir+"\x00") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return pid
		}
	}
	return 0
}

// lazySeries summarizes one measurement of the samples.
func lazySeries(ss []lazySample, f func(lazySample) time.Duration) series {
	conv := make([]sample, len(ss))
	for i, s := range ss {
		conv[i] = sample{restore: f(s)}
	}
	return newSeries(conv, func(s sample) time.Duration { return s.restore })
}
