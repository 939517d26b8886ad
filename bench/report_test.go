package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/internal/testutil"
)

// The goals of issue 14, which BenchmarkReport marks met or missed.
const (
	goalRaw      = 1.05                  // cedana <= 1.05x raw CRIU (dump, restore, frozen time)
	goalBound    = 1.10                  // durable archive <= 1.10x the work bound; archive restore <= 1.10x raw
	goalSmall    = 20 * time.Millisecond // small-process dump <= raw + 20 ms
	goalVersion  = 15 * time.Millisecond // `cedana --version`
	goalPs       = 20 * time.Millisecond // `cedana ps`
	goalRSSSlack = 64 << 20              // peak daemon RSS <= checkpoint.stream_memory_limit + 64 MiB
)

// reportCodecs are the compressions BenchmarkReport measures cedana with.
var reportCodecs = []archive.Codec{archive.None, archive.Zstd, archive.LZ4}

// cedSamples are one codec's cedana measurements over the iterations.
type cedSamples struct {
	dump, frozen, restore []time.Duration
	// decodeWall and decodeCPU: reading the restored archive alone (decodeArchive), after the restore.
	decodeWall, decodeCPU []time.Duration
	dumpHWM, restoreHWM   []int64 // the daemon's VmHWM during the dump, the restore
	dumpRSS0              []int64 // the daemon's VmRSS right before the dump
}

// kindSamples are one data kind's measurements over the iterations.
type kindSamples struct {
	kind                              string
	rawDump, rawFrozen, rawRestore    []time.Duration
	rawDumpCPU, rawRestoreCPU         []time.Duration
	compressWall, compressCPU, dtcSum map[archive.Codec][]time.Duration // dtc: dump-then-compress
	ced                               map[archive.Codec]*cedSamples
}

func newKindSamples(kind string) *kindSamples {
	k := &kindSamples{
		kind:         kind,
		compressWall: map[archive.Codec][]time.Duration{},
		compressCPU:  map[archive.Codec][]time.Duration{},
		dtcSum:       map[archive.Codec][]time.Duration{},
		ced:          map[archive.Codec]*cedSamples{},
	}
	for _, c := range reportCodecs {
		k.ced[c] = &cedSamples{}
	}
	return k
}

// smallSamples are the small-process dumps and the CLI round trips.
type smallSamples struct {
	rawSleep, cedSleep, version, ps []time.Duration
}

// BenchmarkReport is `just bench`: for random and compressible memory (CEDANA_BENCH_MIB, default
// 1 GiB) and for each of --compression none/zstd/lz4 it prints one table of cedana against raw CRIU
// and the goals (see printGoals). It does its own iterations: run it with -benchtime 1x.
func BenchmarkReport(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	e.rawFlags = nil // raw CRIU as a user runs it: its default log level, a log file
	mib := envInt(b, "CEDANA_BENCH_MIB", 1024, 1)
	iters := envInt(b, "CEDANA_BENCH_ITER", 5, 5)
	warmup := envInt(b, "CEDANA_BENCH_WARMUP", 1, 0)
	kinds := envKinds(b)
	limit, limitSrc := e.streamLimit()
	rep := report{mib: mib, iters: iters, limit: limit, limitSrc: limitSrc, load0: loadAvg(), psi0: cpuPressure()}
	start := time.Now()

	for i := range warmup {
		k := newKindSamples(kinds[0])
		for u := range numReportUnits {
			if err := e.reportUnit(k, u, min(mib, 64), fmt.Sprintf("warmup%d", i)); err != nil {
				b.Fatalf("warm-up %s: %v\ndaemon log:\n%s", u, err, tail(e.daemonLog, 4096))
			}
		}
	}
	for _, kind := range kinds {
		k := newKindSamples(kind)
		for i := range iters {
			// Rotate the order, so that no unit always goes first or after the same other one.
			for j := range numReportUnits {
				u := (reportUnit(i) + j) % numReportUnits
				if err := e.reportUnit(k, u, mib, fmt.Sprintf("iter%d", i)); err != nil {
					b.Fatalf("%s %s iter%d: %v\ndaemon log:\n%s", kind, u, i, err, tail(e.daemonLog, 4096))
				}
			}
		}
		rep.kinds = append(rep.kinds, k)
	}
	for i := range iters {
		if err := e.smallRound(&rep.small, i); err != nil {
			b.Fatalf("small process and CLI, iter%d: %v\ndaemon log:\n%s", i, err, tail(e.daemonLog, 4096))
		}
	}
	rep.elapsed = time.Since(start)
	rep.psi1 = cpuPressure()
	missed := rep.print(os.Stdout, e)
	if os.Getenv("CEDANA_BENCH_ENFORCE") == "1" && missed > 0 {
		b.Errorf("%d goal(s) missed", missed)
	}
}

// reportUnit is one workload's worth of an iteration of BenchmarkReport.
type reportUnit int

const (
	uReportRaw  reportUnit = iota // raw criu dump; compress its images (zstd, lz4); raw restore
	uReportNone                   // cedana --compression none: dump, restore
	uReportZstd                   // cedana --compression zstd: dump, restore from the archive
	uReportLZ4                    // cedana --compression lz4: dump, restore from the archive
	numReportUnits
)

func (u reportUnit) String() string {
	return [numReportUnits]string{"raw", "cedana-none", "cedana-zstd", "cedana-lz4"}[u]
}

// reportUnit runs unit u on a fresh workload of k.kind and mib MiB and appends its samples to k.
func (e *env) reportUnit(k *kindSamples, u reportUnit, mib int, label string) error {
	w, err := e.startWorkload(mib, "-mode", k.kind)
	if err != nil {
		return err
	}
	defer w.kill()
	name := fmt.Sprintf("b14-%s-%s-%s-%s", u, k.kind, sizeName(mib), label)
	dir := filepath.Join(e.images, name)
	defer os.RemoveAll(dir)

	if u == uReportRaw {
		s, err := e.rawDump(w.pid, dir)
		if err != nil {
			return err
		}
		k.rawDump, k.rawFrozen, k.rawDumpCPU = append(k.rawDump, s.wall), append(k.rawFrozen, s.frozen), append(k.rawDumpCPU, s.cpu)
		if err := dumpedGone(w); err != nil {
			return err
		}
		// Restore right after the dump, as cedana's units do: the dumped workload's memory has
		// just been freed for both.
		rs, err := e.rawRestore(w.pid, dir)
		if err != nil {
			return err
		}
		k.rawRestore, k.rawRestoreCPU = append(k.rawRestore, rs.wall), append(k.rawRestoreCPU, rs.cpu)
		_ = os.Remove(filepath.Join(dir, "restore.log")) // not one of the images compressed next
		for _, c := range []archive.Codec{archive.Zstd, archive.LZ4} {
			path := dir + c.Extension()
			cs, err := compressDir(dir, path, c)
			_ = os.Remove(path)
			if err != nil {
				return err
			}
			k.compressWall[c] = append(k.compressWall[c], cs.wall)
			k.compressCPU[c] = append(k.compressCPU[c], cs.cpu)
			k.dtcSum[c] = append(k.dtcSum[c], s.wall+cs.wall)
		}
		fmt.Fprintf(os.Stderr, "bench: %-12s %-7s raw dump %s (CPU %s) frozen %s restore %s; compress alone zstd %s (CPU %s) lz4 %s (CPU %s)\n",
			k.kind, label, ms(s.wall), ms(s.cpu), ms(s.frozen), ms(rs.wall),
			ms(k.compressWall[archive.Zstd][len(k.compressWall[archive.Zstd])-1]), ms(k.compressCPU[archive.Zstd][len(k.compressCPU[archive.Zstd])-1]),
			ms(k.compressWall[archive.LZ4][len(k.compressWall[archive.LZ4])-1]), ms(k.compressCPU[archive.LZ4][len(k.compressCPU[archive.LZ4])-1]))
		return nil
	}

	codec := map[reportUnit]archive.Codec{uReportNone: archive.None, uReportZstd: archive.Zstd, uReportLZ4: archive.LZ4}[u]
	path := dir + codec.Extension()
	defer os.RemoveAll(path)
	defer os.RemoveAll(filepath.Join(e.images, "."+name+".images")) // a failed compressed dump's
	c := k.ced[codec]

	resetPeakRSS(e.daemonPID)
	c.dumpRSS0 = append(c.dumpRSS0, peakRSS(e.daemonPID))
	resp, wall, _, err := e.cedanaDump(w.pid, name, codec)
	hwm := peakRSS(e.daemonPID)
	if err != nil {
		return err
	}
	c.dump, c.frozen, c.dumpHWM = append(c.dump, wall), append(c.frozen, resp.Stats.Frozen.d), append(c.dumpHWM, hwm)
	if err := dumpedGone(w); err != nil {
		return err
	}
	resetPeakRSS(e.daemonPID)
	rs, err := e.cedanaRestore(w.pid, path)
	if err != nil {
		return err
	}
	c.restore, c.restoreHWM = append(c.restore, rs.wall), append(c.restoreHWM, peakRSS(e.daemonPID))
	if codec != archive.None {
		wall, cpu, err := decodeArchive(path)
		if err != nil {
			return err
		}
		c.decodeWall, c.decodeCPU = append(c.decodeWall, wall), append(c.decodeCPU, cpu)
	}
	fmt.Fprintf(os.Stderr, "bench: %-12s %-7s cedana %-4s dump %s frozen %s restore %s daemon peak RSS %s\n",
		k.kind, label, codec, ms(wall), ms(resp.Stats.Frozen.d), ms(rs.wall), mibs(hwm))
	return nil
}

// smallRound dumps a `sleep` with raw CRIU and with cedana (alternating who goes first) and times
// `cedana --version` and `cedana ps`.
func (e *env) smallRound(s *smallSamples, i int) error {
	order := []tool{raw, ced}
	if i%2 == 1 {
		order = []tool{ced, raw}
	}
	for _, t := range order {
		d, err := e.sleepDump(t, fmt.Sprintf("iter%d", i))
		if err != nil {
			return err
		}
		if t == raw {
			s.rawSleep = append(s.rawSleep, d)
		} else {
			s.cedSleep = append(s.cedSleep, d)
		}
	}
	// The CLI alone is cheap: take three samples of each per iteration.
	for range 3 {
		for _, c := range []struct {
			args []string
			into *[]time.Duration
		}{{[]string{"--version"}, &s.version}, {[]string{"ps"}, &s.ps}} {
			start := time.Now()
			if _, stderr, err := e.run(e.cedanaEnv, e.cedana, c.args...); err != nil {
				return fmt.Errorf("cedana %s: %w: %s", strings.Join(c.args, " "), err, stderr)
			}
			*c.into = append(*c.into, time.Since(start))
		}
	}
	return nil
}

// sleepDump starts a `sleep` in its own session and dumps it with t; it returns the dump's wall time.
func (e *env) sleepDump(t tool, label string) (time.Duration, error) {
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start sleep: %w", err)
	}
	w := &workload{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	defer w.kill()
	name := fmt.Sprintf("b14-sleep-%s-%s", t, label)
	dir := filepath.Join(e.images, name)
	defer os.RemoveAll(dir)
	var d time.Duration
	if t == raw {
		s, err := e.rawDump(w.pid, dir)
		if err != nil {
			return 0, err
		}
		d = s.wall
	} else {
		start := time.Now()
		_, stderr, err := e.run(e.cedanaEnv, e.cedana, "dump", "process", strconv.Itoa(w.pid), "--dir", e.images, "--name", name)
		d = time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("cedana dump of sleep: %w: %s", err, stderr)
		}
	}
	return d, dumpedGone(w)
}

// resetPeakRSS resets pid's VmHWM to its current RSS (clear_refs 5); errors show as a peak of 0.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// peakRSS is pid's VmHWM in bytes, or 0 if unknown.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// streamLimit is checkpoint.stream_memory_limit from `cedana config show` with the daemon's
// environment, in bytes, and what it was read from; 0 when this build has no such setting.
func (e *env) streamLimit() (int64, string) {
	out, _, err := e.run(e.cedanaEnv, e.cedana, "config", "show")
	if err != nil {
		return 0, "`cedana config show` failed"
	}
	var cfg struct {
		Checkpoint map[string]any `json:"checkpoint"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return 0, "`cedana config show` is not JSON"
	}
	v, ok := cfg.Checkpoint["stream_memory_limit"]
	if !ok {
		return 0, "no checkpoint.stream_memory_limit in this build"
	}
	n, err := parseBytes(v)
	if err != nil {
		return 0, fmt.Sprintf("checkpoint.stream_memory_limit %v: %v", v, err)
	}
	return n, "checkpoint.stream_memory_limit"
}

// parseBytes reads a size from JSON: a number of bytes, or a string such as "256MiB" or "1G".
func parseBytes(v any) (int64, error) {
	switch v := v.(type) {
	case float64:
		return int64(v), nil
	case string:
		s := strings.TrimSpace(v)
		i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		num, unit := s, ""
		if i >= 0 {
			num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("not a size: %w", err)
		}
		mult := map[string]float64{
			"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
			"mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
		}[unit]
		if mult == 0 {
			return 0, fmt.Errorf("unknown unit %q", unit)
		}
		return int64(f * mult), nil
	}
	return 0, fmt.Errorf("not a number or a string")
}
