package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/criu/imgstream"
	"github.com/cedana/cedana/internal/testutil"
)

// BenchmarkStreamFrozen compares the frozen time of a zstd dump of a random-memory workload
// (CEDANA_BENCH_SIZES, 1024 MiB by default) three ways, in rotating order, CEDANA_BENCH_ITER
// times: the raw criu dump into a directory, cedana's dump (CRIU writes files, a second pass
// archives them as they grow), and `criu dump --stream` into criu/imgstream's capture feeding a
// zstd archive writer. It prints the medians and spreads of the frozen time, of the time until
// CRIU is done, and of the time until the archive is complete.
func BenchmarkStreamFrozen(b *testing.B) {
	e := setup(b, testutil.RequireCRIU(b).Binary)
	iters := envInt(b, "CEDANA_BENCH_ITER", 5, 1)
	mib := 1024
	if os.Getenv("CEDANA_BENCH_SIZES") != "" {
		mib = envSizes(b, 256, 1024)[0]
	}
	load0 := loadAvg()
	names := []string{"raw criu dump (dir)", "cedana zstd (today)", "streamed zstd"}
	frozen, criuDone, archived := make([][]time.Duration, 3), make([][]time.Duration, 3), make([][]time.Duration, 3)
	var peak, spilled int64
	for i := range iters {
		for j := range 3 {
			u := (i + j) % 3
			w, err := e.startWorkload(mib)
			if err != nil {
				b.Fatal(err)
			}
			dir := filepath.Join(e.images, fmt.Sprintf("stream-%d-%d", i, u))
			var f, c, a time.Duration
			switch u {
			case 0:
				var s compSample
				s, err = e.rawDump(w.pid, dir)
				f, c, a = s.frozen, s.wall, s.wall
			case 1:
				f, a, err = e.cedanaZstd(w.pid, fmt.Sprintf("stream-%d", i))
				c = a
			case 2:
				var st imgstream.Stats
				f, c, a, st, err = e.streamZstd(w.pid, dir)
				peak, spilled = max(peak, st.PeakMemory), max(spilled, st.Spilled)
			}
			_ = os.RemoveAll(dir)
			if err == nil {
				err = dumpedGone(w)
			}
			w.kill()
			if err != nil {
				b.Fatalf("%s: %v\ndaemon log:\n%s", names[u], err, tail(e.daemonLog, 4096))
			}
			fmt.Fprintf(os.Stderr, "bench: %-22s frozen %9s  criu done %9s  archive done %9s\n", names[u], ms(f), ms(c), ms(a))
			frozen[u], criuDone[u], archived[u] = append(frozen[u], f), append(criuDone[u], c), append(archived[u], a)
		}
	}
	fmt.Printf("frozen time, %s random memory, %d rotating rounds (load %s -> %s):\n", sizeName(mib), iters, load0, loadAvg())
	for u, name := range names {
		fmt.Printf("  %-22s frozen %9s (%s)  criu done %9s  archive done %9s (%s)\n", name,
			ms(median(frozen[u])), spanOf(frozen[u]), ms(median(criuDone[u])), ms(median(archived[u])), spanOf(archived[u]))
	}
	fmt.Printf("  streamed: peak memory held %s, spilled %s\n", mibs(peak), mibs(spilled))
	b.ReportMetric(float64(median(frozen[2]))/float64(median(frozen[0])), "streamed-frozen-vs-raw")
	b.ReportMetric(float64(median(frozen[1]))/float64(median(frozen[0])), "cedana-frozen-vs-raw")
}

// cedanaZstd dumps pid with `cedana dump process --compression zstd` and returns CRIU's frozen
// time and the command's wall time.
func (e *env) cedanaZstd(pid int, name string) (frozen, wall time.Duration, err error) {
	path := filepath.Join(e.images, name+archive.Zstd.Extension())
	defer os.Remove(path)
	start := time.Now()
	stdout, stderr, err := e.run(e.cedanaEnv, e.cedana, "dump", "process", strconv.Itoa(pid),
		"--dir", e.images, "--name", name, "--compression", "zstd", "-o", "json")
	wall = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("cedana dump: %w: %s", err, stderr)
	}
	var resp compResponse
	if err := json.Unmarshal(stdout, &resp); err != nil {
		return 0, 0, fmt.Errorf("cedana dump -o json: %w: %s", err, stdout)
	}
	return resp.Stats.Frozen.d, wall, nil
}

// streamZstd dumps pid with `criu dump --stream` into a capture that writes a zstd archive next
// to dir, and returns CRIU's frozen time (from its --display-stats output), the time until CRIU
// exited and the time until the archive was complete.
func (e *env) streamZstd(pid int, dir string) (frozen, criuDone, archived time.Duration, st imgstream.Stats, err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 0, 0, 0, st, err
	}
	out, err := os.Create(dir + ".tar.zst")
	if err != nil {
		return 0, 0, 0, st, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	aw, err := archive.NewWriter(bw, archive.Zstd, 0)
	if err != nil {
		return 0, 0, 0, st, err
	}
	start := time.Now()
	c, err := imgstream.StartCapture(dir, 0, e.tmp, imgstream.ArchiveSink{W: aw})
	if err != nil {
		return 0, 0, 0, st, err
	}
	cmd := exec.Command(e.criu, "dump", "--stream", "-t", strconv.Itoa(pid), "-D", dir, "-o", "dump.log", "--display-stats")
	cmd.Env = e.criuEnv
	outp, err := cmd.CombinedOutput()
	if err != nil {
		c.Abort()
		return 0, 0, 0, st, fmt.Errorf("criu dump --stream: %w: %s%s", err, outp, logErrors(filepath.Join(dir, "dump.log")))
	}
	criuDone = time.Since(start)
	st, err = c.Wait()
	if err == nil {
		err = aw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	archived = time.Since(start)
	return printedFrozen(outp), criuDone, archived, st, err
}

// printedFrozen is the frozen time CRIU printed with --display-stats: a streamed dump has no
// stats-dump image, since CRIU writes it after it has dismissed the streamer.
func printedFrozen(out []byte) time.Duration {
	m := frozenLine.FindSubmatch(out)
	if m == nil {
		return 0
	}
	us, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return time.Duration(us) * time.Microsecond
}

var frozenLine = regexp.MustCompile(`Frozen time: (\d+) us`)

// spanOf is the range of ds.
func spanOf(ds []time.Duration) series {
	return series{med: median(ds), lo: slices.Min(ds), hi: slices.Max(ds)}
}
