package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	loaded  time.Duration // the restore request until every page is back (lazy: the server exited)
}

// BenchmarkLazyRestore is time to running, eager vs `--lazy`, of one directory checkpoint per size
// (CEDANA_BENCH_SIZES, default 256 MiB and 1 GiB) of a memhog holding random data, restored
// CEDANA_BENCH_ITER times each way in alternating order; and, for the lazy restores, the time until
// every page is back. Each restored memhog's checksum of its whole memory is checked against the
// one before the dump. Run with -benchtime 1x (`just bench`).
func BenchmarkLazyRestore(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	iters := envInt(b, "CEDANA_BENCH_ITER", 5, 1)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "size\teager to running\tlazy to running\tlazy, all pages back\teager/lazy\tlazy goal (≤ 250 ms)")
	for _, mib := range envSizes(b, 256, 1024) {
		eager, lazy, err := e.lazyRounds(mib, iters)
		if err != nil {
			b.Fatalf("%s: %v\ndaemon log:\n%s", sizeName(mib), err, tail(e.daemonLog, 4096))
		}
		run := func(ss []lazySample) series {
			return lazySeries(ss, func(s lazySample) time.Duration { return s.running })
		}
		er, lr := run(eager), run(lazy)
		ll := lazySeries(lazy, func(s lazySample) time.Duration { return s.loaded })
		goal := "met"
		if lr.med > lazyGoal {
			goal = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%s (%s)\t%s (%s)\t%s (%s)\t%.1fx\t%s\n", sizeName(mib), ms(er.med), er, ms(lr.med), lr, ms(ll.med), ll,
			float64(er.med)/float64(max(lr.med, 1)), goal)
	}
	_ = w.Flush()
}

// lazyRounds dumps a memhog of mib MiB once, then restores it iters times eagerly and iters times
// lazily, alternating which goes first.
func (e *env) lazyRounds(mib, iters int) (eager, lazy []lazySample, err error) {
	sum := filepath.Join(e.tmp, fmt.Sprintf("sum-%d", mib))
	wl, err := e.startWorkload(mib, "-sum", sum)
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
		s, err := e.lazyRound(dir, wl.pid, sum, isLazy)
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

// lazyRound restores the checkpoint in dir (of PID pid) once, checks the restored memory against
// the checksum in sum, and kills the restored process.
func (e *env) lazyRound(dir string, pid int, sum string, lazy bool) (s lazySample, err error) {
	args := []string{"restore", "process", "--path", dir}
	if lazy {
		args = append(args, "--lazy")
	}
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
