package bench

import (
	"context"
	"encoding/binary"
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
	running   time.Duration // the restore request until the command returns: the tree runs
	firstStep time.Duration // the restore request until the restored memhog's first step
	loaded    time.Duration // the restore request until every page is back (lazy: the server exited)
	loading   float64       // lazy: the memhog's steps per second between its first step and loaded
	after     float64       // lazy: its steps per second once every page is back
}

// rateWindow is how long a memhog's pace is sampled for.
const rateWindow = 300 * time.Millisecond

// BenchmarkLazyRestore is time to running, eager vs `--lazy`, of one directory checkpoint per size
// (CEDANA_BENCH_SIZES, default 256 MiB, 1 GiB and 4 GiB) of a memhog holding random data and
// walking it (-progress), restored CEDANA_BENCH_ITER times each way in alternating order: until
// the restore command returns, and until the restored memhog's first step. For the lazy restores,
// also the time until every page is back, and the memhog's pace meanwhile and after, against its
// pace before the dump. Each restored memhog's checksum of its whole memory is checked against
// the one before the dump. Run with -benchtime 1x (`just bench`).
func BenchmarkLazyRestore(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	iters := envInt(b, "CEDANA_BENCH_ITER", 5, 1)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "size\teager to running\tlazy to running\teager to 1st step\tlazy to 1st step\tlazy, all pages back\tpace loading / after / before\teager/lazy (1st step)\tlazy goal (≤ 250 ms)")
	for _, mib := range envSizes(b, 256, 1024, 4096) {
		eager, lazy, before, err := e.lazyRounds(mib, iters)
		if err != nil {
			b.Fatalf("%s: %v\ndaemon log:\n%s", sizeName(mib), err, tail(e.daemonLog, 4096))
		}
		er, lr := lazySeries(eager, lazyRunning), lazySeries(lazy, lazyRunning)
		ef, lf := lazySeries(eager, lazyFirstStep), lazySeries(lazy, lazyFirstStep)
		ll := lazySeries(lazy, func(s lazySample) time.Duration { return s.loaded })
		goal := "met"
		if lf.med > lazyGoal {
			goal = "MISSED"
		}
		loading, after := medianRate(lazy, func(s lazySample) float64 { return s.loading }), medianRate(lazy, func(s lazySample) float64 { return s.after })
		fmt.Fprintf(w, "%s\t%s (%s)\t%s (%s)\t%s (%s)\t%s (%s)\t%s (%s)\t%.0f / %.0f / %.0f steps/s (%.0f%% / %.0f%%)\t%.1fx\t%s\n", sizeName(mib),
			ms(er.med), er, ms(lr.med), lr, ms(ef.med), ef, ms(lf.med), lf, ms(ll.med), ll,
			loading, after, before, 100*loading/before, 100*after/before, float64(ef.med)/float64(max(lf.med, 1)), goal)
	}
	_ = w.Flush()
	fmt.Println("\nto running: until `cedana restore` returns; to 1st step: until the restored memhog completes its first step (a")
	fmt.Println("MiB of its memory read, page by page); all pages back: until the lazy-pages server exits. pace: the memhog's")
	fmt.Println("steps per second while its pages load, after they are all back, and before the dump (each a median). The goal")
	fmt.Println("applies to the first step.")
}

// lazyRunning and lazyFirstStep pick a lazySample's times.
func lazyRunning(s lazySample) time.Duration   { return s.running }
func lazyFirstStep(s lazySample) time.Duration { return s.firstStep }

// medianRate is the median of f over ss.
func medianRate(ss []lazySample, f func(lazySample) float64) float64 {
	rs := make([]float64, len(ss))
	for i, s := range ss {
		rs[i] = f(s)
	}
	slices.Sort(rs)
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)/2]
}

// lazyRounds dumps a memhog of mib MiB once, after measuring its pace (before), then restores it
// iters times eagerly and iters times lazily, alternating which goes first.
func (e *env) lazyRounds(mib, iters int) (eager, lazy []lazySample, before float64, err error) {
	sum := filepath.Join(e.tmp, fmt.Sprintf("sum-%d", mib))
	prog := filepath.Join(e.tmp, fmt.Sprintf("progress-%d", mib))
	wl, err := e.startWorkload(mib, "-sum", sum, "-progress", prog)
	if err != nil {
		return nil, nil, 0, err
	}
	defer wl.kill()
	defer os.Remove(prog)
	if before, err = pace(prog); err != nil {
		return nil, nil, 0, err
	}
	name := "lazy-" + sizeName(mib)
	dir := filepath.Join(e.images, name)
	defer os.RemoveAll(dir)
	if _, stderr, err := e.run(e.cedanaEnv, e.cedana, "dump", "process", strconv.Itoa(wl.pid), "--dir", e.images, "--name", name, "--compression", "none"); err != nil {
		return nil, nil, 0, fmt.Errorf("cedana dump: %w: %s", err, stderr)
	}
	<-wl.exited
	if err := waitGone(wl.pid, goneTimeout); err != nil {
		return nil, nil, 0, err
	}
	for i := range 2 * iters {
		isLazy := (i%2 == 1) != (i/2%2 == 1) // eager, lazy, then lazy, eager, ...
		s, err := e.lazyRound(dir, wl.pid, sum, prog, isLazy)
		if err != nil {
			return nil, nil, 0, err
		}
		if isLazy {
			lazy = append(lazy, s)
		} else {
			eager = append(eager, s)
		}
	}
	return eager, lazy, before, nil
}

// lazyRound restores the checkpoint in dir (of PID pid) once, times the restored memhog's first
// step and pace from its progress file prog, checks the restored memory against the checksum in
// sum, and kills the restored process.
func (e *env) lazyRound(dir string, pid int, sum, prog string, lazy bool) (s lazySample, err error) {
	args := []string{"restore", "process", "--path", dir}
	if lazy {
		args = append(args, "--lazy")
	}
	startMono := monotonic()
	start := time.Now()
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
	if server := lazyServer(dir); lazy && server > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(commandTimeout))
		werr := sysinfo.WaitExit(ctx, server, 0)
		cancel()
		if werr != nil {
			return s, fmt.Errorf("the lazy-pages server still serves %s after %s", dir, commandTimeout)
		}
	}
	s.loaded = time.Since(start)
	loadedMono := monotonic()
	p, err := waitStep(prog, startMono, start)
	if err != nil {
		return s, err
	}
	s.firstStep = time.Duration(p[progResumed] - startMono)
	if lazy {
		if p[progResumed] < loadedMono {
			s.loading = float64(p[progSteps]-p[progResumedAt]) / time.Duration(loadedMono-p[progResumed]).Seconds()
		}
		if s.after, err = pace(prog); err != nil {
			return s, err
		}
	}
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

// Words of memhog's -progress file (bench/memhog walk).
const (
	progSteps = iota
	progLast
	progResumed
	progResumedAt
	progWords
)

// readProgress reads memhog's progress file.
func readProgress(path string) ([progWords]uint64, error) {
	var p [progWords]uint64
	data, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if len(data) < 8*progWords {
		return p, fmt.Errorf("%s: %d bytes, want %d", path, len(data), 8*progWords)
	}
	for i := range p {
		p[i] = binary.NativeEndian.Uint64(data[8*i:])
	}
	return p, nil
}

// waitStep waits until the memhog of progress file prog has made a step since startMono (a
// CLOCK_MONOTONIC reading) and returns its counters then.
func waitStep(prog string, startMono uint64, start time.Time) ([progWords]uint64, error) {
	for {
		p, err := readProgress(prog)
		if err != nil {
			return p, err
		}
		if p[progResumed] > startMono {
			return p, nil
		}
		if time.Since(start) > commandTimeout {
			return p, fmt.Errorf("the restored memhog made no step in %s", commandTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// pace is a running memhog's steps per second over rateWindow, from its progress file.
func pace(prog string) (float64, error) {
	p0, err := readProgress(prog)
	if err != nil {
		return 0, err
	}
	time.Sleep(rateWindow) // the measurement window, not a wait for an event
	p1, err := readProgress(prog)
	if err != nil {
		return 0, err
	}
	if p1[progLast] <= p0[progLast] {
		return 0, fmt.Errorf("memhog made no step in %s", rateWindow)
	}
	return float64(p1[progSteps]-p0[progSteps]) / time.Duration(p1[progLast]-p0[progLast]).Seconds(), nil
}

// monotonic is CLOCK_MONOTONIC in ns, the clock memhog stamps its steps with.
func monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
