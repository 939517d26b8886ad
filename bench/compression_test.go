package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/checkpoint-restore/go-criu/v8/stats"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/internal/testutil"
)

// compressionTarget is the goal for a compressed dump: at most 1.15x the slower of the
// raw criu dump and compressing the same images alone, and faster than dumping, then compressing.
const compressionTarget = 1.15

// compRow is one row of BenchmarkCompression's table: one way of producing a checkpoint.
type compRow int

const (
	cRaw       compRow = iota // `criu dump` into a directory
	cNone                     // `cedana dump process --compression none`
	cZstd                     // `cedana dump process --compression zstd`
	cLZ4                      // `cedana dump process --compression lz4`
	cSeqZstd                  // `criu dump`, then archive.WriteDir of the images with zstd
	cSeqLZ4                   // the same with lz4
	cAloneZstd                // archive.WriteDir with zstd of images dumped before (untimed dump)
	cAloneLZ4                 // the same with lz4
	numCompRows
)

var compRowNames = [numCompRows]string{
	cRaw:       "raw criu dump",
	cNone:      "cedana none",
	cZstd:      "cedana zstd",
	cLZ4:       "cedana lz4",
	cSeqZstd:   "sequential zstd (dump+compress)",
	cSeqLZ4:    "sequential lz4 (dump+compress)",
	cAloneZstd: "compress-alone zstd",
	cAloneLZ4:  "compress-alone lz4",
}

func (r compRow) String() string { return compRowNames[r] }

// codec is the compression of the row.
func (r compRow) codec() archive.Codec {
	switch r {
	case cZstd, cSeqZstd, cAloneZstd:
		return archive.Zstd
	case cLZ4, cSeqLZ4, cAloneLZ4:
		return archive.LZ4
	}
	return archive.None
}

// compSample is one measurement of one row.
type compSample struct {
	wall   time.Duration // the CLI command, the dump plus WriteDir, or WriteDir
	frozen time.Duration // CRIU's frozen time (stats-dump); zero where nothing was frozen
	stored int64         // bytes of the directory or the archive
	images int64         // bytes of the uncompressed images (raw_bytes for cedana)
	// cpu is the CPU time (user+system, every process involved) the sample used: criu's for a
	// raw dump, ours for compressing, the daemon's, its CRIU's and the CLI's for cedana.
	cpu time.Duration
	// cedana: stats.total as "total" and stats.phases; sequential: "criu_dump" and "compress".
	phases map[string]time.Duration
}

// restoreSample is one restore: raw criu from the raw dump's directory, cedana from its archive.
type restoreSample struct {
	wall time.Duration
	// cpu (raw only) is CRIU's CPU time and the restored workload's: CRIU's children restore their
	// own memory and are not CRIU's to wait for after `-d`.
	cpu    time.Duration
	phases map[string]time.Duration // cedana: stats.total as "total" and stats.phases
}

// compResult holds the samples of one data kind and size.
type compResult struct {
	kind     string
	mib      int
	rows     [numCompRows][]compSample
	restores [numCompRows][]restoreSample // cRaw, cZstd, cLZ4

	elapsed  time.Duration // of the whole sub-benchmark
	pressure float64       // share of that time some task waited for a CPU (PSI), -1 if unknown
}

// compUnit is one workload's worth of an iteration: it starts a memhog and produces one or more
// rows from it.
type compUnit int

const (
	uRaw     compUnit = iota // raw dump; compress-alone zstd and lz4 of its images; raw restore
	uNone                    // cedana none dump
	uZstd                    // cedana zstd dump and restore
	uLZ4                     // cedana lz4 dump and restore
	uSeqZstd                 // raw dump, then zstd
	uSeqLZ4                  // raw dump, then lz4
	numCompUnits
)

// BenchmarkCompression measures compressed checkpoints of a process holding 1 GiB of random
// (incompressible) and of compressible memory: the raw criu dump, `cedana dump --compression
// none|zstd|lz4`, the sequential design (raw criu dump, then archive.WriteDir of the images with
// the same codec and cores) and compressing the same images alone, plus the restores from the
// archives. It does its own iterations: run it with -benchtime 1x.
func BenchmarkCompression(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	iters := envInt(b, "CEDANA_BENCH_ITER", 3, 1)
	warmup := envInt(b, "CEDANA_BENCH_WARMUP", 1, 0)
	sizes := []int{1024}
	if os.Getenv("CEDANA_BENCH_SIZES") != "" {
		sizes = envSizes(b, 256, 1024)
	}
	kinds := envKinds(b)
	load0, start := loadAvg(), time.Now()

	// Untimed: a small round of every unit, so that the first timed one does not pay for cold
	// caches (the criu and cedana binaries, the daemon's first request).
	for i := range warmup {
		for u := range numCompUnits {
			var r compResult
			if err := e.runUnit(&r, u, kinds[0], 64, fmt.Sprintf("warmup%d", i)); err != nil {
				b.Fatalf("warm-up %s: %v\ndaemon log:\n%s", unitName(u), err, tail(e.daemonLog, 4096))
			}
		}
	}

	var results []*compResult
	for _, mib := range sizes {
		for _, kind := range kinds {
			b.Run(kind+"/"+sizeName(mib), func(b *testing.B) {
				r := &compResult{kind: kind, mib: mib}
				start, psi0 := time.Now(), cpuPressure()
				for i := range iters {
					// Rotate the order of the units, so that none always runs first or right after
					// the same other one.
					for j := range numCompUnits {
						u := (compUnit(i) + j) % numCompUnits
						label := fmt.Sprintf("iter%d", i)
						if err := e.runUnit(r, u, kind, mib, label); err != nil {
							b.Fatalf("%s %s %s %s: %v\ndaemon log:\n%s", kind, sizeName(mib), unitName(u), label, err, tail(e.daemonLog, 4096))
						}
					}
				}
				r.elapsed = time.Since(start)
				r.pressure = -1
				if psi1 := cpuPressure(); psi0 >= 0 && psi1 >= psi0 {
					r.pressure = float64(psi1-psi0) / float64(r.elapsed)
				}
				m := r.summarize()
				for _, c := range []compRow{cZstd, cLZ4} {
					b.ReportMetric(m.targetRatio(c), c.codec().String()+"-vs-max(raw,alone)")
					b.ReportMetric(m.seqRatio(c), c.codec().String()+"-vs-sequential")
					b.ReportMetric(float64(m.rows[c].med)/1e6, c.codec().String()+"-dump-ms")
					b.ReportMetric(m.boundRatio(c), c.codec().String()+"-vs-cpu-bound")
				}
				b.ReportMetric(float64(m.rows[cRaw].med)/1e6, "raw-dump-ms")
				results = append(results, r)
			})
		}
	}
	if len(results) == 0 {
		return
	}
	e.printCompression(os.Stdout, results, iters, warmup, load0, time.Since(start))
	if os.Getenv("CEDANA_BENCH_ENFORCE") == "1" {
		for _, r := range results {
			m := r.summarize()
			for _, c := range []compRow{cZstd, cLZ4} {
				if t, s := m.targetRatio(c), m.seqRatio(c); t > compressionTarget || s >= 1 {
					b.Errorf("%s %s %s: %.3fx max(raw dump, compress alone) (target <= %.2fx), %.3fx the sequential design (target < 1)",
						r.kind, sizeName(r.mib), c, t, compressionTarget, s)
				}
			}
		}
	}
}

func envKinds(b *testing.B) []string {
	b.Helper()
	v := os.Getenv("CEDANA_BENCH_KINDS")
	if v == "" {
		return []string{"random", "compressible"}
	}
	var kinds []string
	for k := range strings.SplitSeq(v, ",") {
		k = strings.TrimSpace(k)
		if k != "random" && k != "compressible" {
			b.Fatalf("CEDANA_BENCH_KINDS=%q: want a comma-separated list of random, compressible", v)
		}
		kinds = append(kinds, k)
	}
	return kinds
}

func unitName(u compUnit) string {
	return [numCompUnits]string{"raw+compress-alone", "cedana-none", "cedana-zstd", "cedana-lz4", "sequential-zstd", "sequential-lz4"}[u]
}

// runUnit runs one unit on a fresh workload of kind and mib MiB and appends its samples to r.
// Every directory and archive it creates is removed before it returns.
func (e *env) runUnit(r *compResult, u compUnit, kind string, mib int, label string) (err error) {
	w, err := e.startWorkload(mib, "-mode", kind)
	if err != nil {
		return err
	}
	defer w.kill()
	pid := w.pid
	name := fmt.Sprintf("%s-%s-%s-%s", unitName(u), kind, sizeName(mib), label)
	dir := filepath.Join(e.images, name)
	defer os.RemoveAll(dir)
	logRestore := func(row compRow, rs restoreSample) {
		fmt.Fprintf(os.Stderr, "bench: %-12s %-7s %-7s %-32s restore %9s  %s\n", kind, sizeName(mib), label, row, ms(rs.wall), phaseList(rs.phases))
	}
	logf := func(row compRow, s compSample) {
		fmt.Fprintf(os.Stderr, "bench: %-12s %-7s %-7s %-32s wall %9s  frozen %9s  stored %10s  images %10s\n",
			kind, sizeName(mib), label, row, ms(s.wall), ms(s.frozen), mibs(s.stored), mibs(s.images))
	}

	switch u {
	case uRaw, uSeqZstd, uSeqLZ4:
		s, err := e.rawDump(pid, dir)
		if err != nil {
			return err
		}
		if u != uRaw {
			// The sequential design: the archive is written right after CRIU is done.
			row := cSeqZstd
			if u == uSeqLZ4 {
				row = cSeqLZ4
			}
			path := dir + row.codec().Extension()
			defer os.Remove(path)
			c, err := compressDir(dir, path, row.codec())
			if err != nil {
				return err
			}
			s.phases = map[string]time.Duration{"criu_dump": s.wall, "compress": c.wall}
			s.wall += c.wall
			s.cpu += c.cpu
			s.stored = c.stored
			r.rows[row] = append(r.rows[row], s)
			logf(row, s)
			return dumpedGone(w) // before the next unit starts its workload
		}
		r.rows[cRaw] = append(r.rows[cRaw], s)
		logf(cRaw, s)
		if err := dumpedGone(w); err != nil {
			return err
		}
		// Compressing the same images alone: the dumped workload is gone, so nothing else runs.
		for _, row := range []compRow{cAloneZstd, cAloneLZ4} {
			path := dir + row.codec().Extension()
			c, err := compressDir(dir, path, row.codec())
			os.Remove(path)
			if err != nil {
				return err
			}
			r.rows[row] = append(r.rows[row], c)
			logf(row, c)
		}
		rs, err := e.rawRestore(pid, dir)
		if err != nil {
			return err
		}
		r.restores[cRaw] = append(r.restores[cRaw], rs)
		logRestore(cRaw, rs)
		return nil
	}

	row := map[compUnit]compRow{uNone: cNone, uZstd: cZstd, uLZ4: cLZ4}[u]
	codec := row.codec()
	path := dir + codec.Extension()
	defer os.RemoveAll(path)
	defer os.RemoveAll(filepath.Join(e.images, "."+name+".images")) // a failed compressed dump's
	daemon0 := processCPU(e.daemonPID)
	resp, wall, cli, err := e.cedanaDump(pid, name, codec)
	s := compSample{wall: wall, cpu: cli + processCPU(e.daemonPID) - daemon0}
	if err != nil {
		return err
	}
	s.frozen = resp.Stats.Frozen.d
	s.images = resp.Stats.RawBytes
	s.stored = resp.Stats.StoredBytes
	if codec != archive.None {
		// The archive's size on disk, not only what the daemon says.
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("cedana's archive: %w", err)
		}
		s.stored = info.Size()
	}
	s.phases = resp.Stats.phases()
	r.rows[row] = append(r.rows[row], s)
	logf(row, s)

	if err := dumpedGone(w); err != nil {
		return err
	}
	if codec == archive.None {
		return nil // restoring a directory is BenchmarkCheckpointRestore's business
	}
	rs, err := e.cedanaRestore(pid, path)
	if err != nil {
		return err
	}
	r.restores[row] = append(r.restores[row], rs)
	logRestore(row, rs)
	return nil
}

// cedanaDump runs `cedana dump process <pid> --name <name> --compression <codec> -o json` into
// e.images and checks that the checkpoint is where it should be. It returns the command's output,
// wall time and CPU time.
func (e *env) cedanaDump(pid int, name string, codec archive.Codec) (resp compResponse, wall, cpu time.Duration, err error) {
	start := time.Now()
	stdout, stderr, cpu, err := e.runCPU(e.cedanaEnv, e.cedana, "dump", "process", strconv.Itoa(pid),
		"--dir", e.images, "--name", name, "--compression", string(codec), "-o", "json")
	wall = time.Since(start)
	if err != nil {
		return resp, wall, cpu, fmt.Errorf("cedana dump --compression %s: %w: %s", codec, err, stderr)
	}
	if err := json.Unmarshal(stdout, &resp); err != nil {
		return resp, wall, cpu, fmt.Errorf("cedana dump -o json: %w: %s", err, stdout)
	}
	path := filepath.Join(e.images, name) + codec.Extension()
	if resp.Path != path {
		return resp, wall, cpu, fmt.Errorf("cedana dumped to %q, expected %q", resp.Path, path)
	}
	if _, err := os.Stat(path); err != nil {
		return resp, wall, cpu, fmt.Errorf("cedana's checkpoint after the dump returned: %w", err)
	}
	return resp, wall, cpu, nil
}

// rawDump dumps pid into dir (created here) with the criu CLI, as BenchmarkCheckpointRestore
// does, and reads CRIU's frozen time from its stats-dump.
func (e *env) rawDump(pid int, dir string) (compSample, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return compSample{}, err
	}
	start := time.Now()
	_, stderr, cpu, err := e.runCPU(e.criuEnv, e.criu, append([]string{"dump", "-t", strconv.Itoa(pid), "-D", dir, "-o", "dump.log"}, e.rawFlags...)...)
	s := compSample{wall: time.Since(start), cpu: cpu}
	if err != nil {
		return s, fmt.Errorf("criu dump: %w: %s%s", err, stderr, logErrors(filepath.Join(dir, "dump.log")))
	}
	s.frozen = frozenTime(dir)
	s.images = dirSize(dir)
	s.stored = s.images
	return s, nil
}

// frozenTime is the frozen time CRIU recorded in the stats-dump file of the images in dir.
func frozenTime(dir string) time.Duration {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := stats.CriuGetDumpStats(f)
	if err != nil {
		return 0
	}
	return time.Duration(st.GetFrozenTime()) * time.Microsecond
}

// decodeArchive reads every entry of the archive at path as a restore does (archive.OpenTar with
// every core), into nothing, and returns its wall and CPU time.
func decodeArchive(path string) (wall, cpu time.Duration, err error) {
	start, cpu0 := time.Now(), selfCPU()
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	ts, err := archive.OpenTar(f, runtime.NumCPU())
	if err != nil {
		return 0, 0, err
	}
	defer ts.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err = ts.Next(); err != nil {
			break
		}
		if _, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{ts}, buf); err != nil {
			break
		}
	}
	if !errors.Is(err, io.EOF) {
		return 0, 0, fmt.Errorf("decode %s: %w", path, err)
	}
	return time.Since(start), selfCPU() - cpu0, nil
}

// compressDir archives the images in dir into path as the daemon writes its archives (through a
// 1 MiB buffer, then fsync), with codec and every core. The sample is timed from creating the file
// to closing it.
func compressDir(dir, path string, codec archive.Codec) (compSample, error) {
	start, cpu0 := time.Now(), selfCPU()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return compSample{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	n, err := archive.WriteDir(dir, bw, codec, runtime.NumCPU())
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	s := compSample{wall: time.Since(start), images: n, cpu: selfCPU() - cpu0}
	if err != nil {
		return s, fmt.Errorf("archive %s with %s: %w", dir, codec, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return s, err
	}
	s.stored = info.Size()
	return s, nil
}

// dumpedGone waits until the dumped workload (which CRIU killed) is reaped and out of /proc, so
// that its PID can be restored.
func dumpedGone(w *workload) error {
	select {
	case <-w.exited:
	case <-time.After(goneTimeout):
		return fmt.Errorf("workload %d still alive %s after the dump", w.pid, goneTimeout)
	}
	return waitGone(w.pid, goneTimeout)
}

// rawRestore restores the images in dir with the criu CLI, checks that pid runs memhog again and
// kills it.
func (e *env) rawRestore(pid int, dir string) (rs restoreSample, err error) {
	defer e.reapStrays()
	start := time.Now()
	_, stderr, cpu, err := e.runCPU(e.criuEnv, e.criu, append([]string{"restore", "-D", dir, "-o", "restore.log", "-d"}, e.rawFlags...)...)
	rs.wall = time.Since(start)
	rs.cpu = cpu + processCPU(pid) // the restored workload has done nothing since but restore
	return rs, e.checkRestored(raw, pid, err, func() string {
		return fmt.Sprintf("criu restore: %s%s", stderr, logErrors(filepath.Join(dir, "restore.log")))
	})
}

// cedanaRestore restores the checkpoint at path with `cedana restore process`, checks that pid
// runs memhog again and kills it.
func (e *env) cedanaRestore(pid int, path string) (rs restoreSample, err error) {
	defer e.reapStrays()
	start := time.Now()
	stdout, stderr, err := e.run(e.cedanaEnv, e.cedana, "restore", "process", "--path", path, "-o", "json")
	rs.wall = time.Since(start)
	if err := e.checkRestored(ced, pid, err, func() string { return fmt.Sprintf("cedana restore --path %s: %s", path, stderr) }); err != nil {
		return rs, err
	}
	var resp compResponse
	if err := json.Unmarshal(stdout, &resp); err != nil {
		return rs, fmt.Errorf("cedana restore -o json: %w: %s", err, stdout)
	}
	if resp.PID != pid {
		return rs, fmt.Errorf("cedana restored PID %d, expected %d", resp.PID, pid)
	}
	rs.phases = resp.Stats.phases()
	return rs, nil
}

// checkRestored kills the restored workload, if any, and reports the restore's error, or that pid
// does not run memhog.
func (e *env) checkRestored(t tool, pid int, runErr error, what func() string) error {
	alive, comm := isAlive(pid), procComm(pid)
	if alive {
		if err := e.killRestored(t, pid); err != nil {
			return err
		}
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("%w: %s", runErr, what())
	case !alive:
		return fmt.Errorf("%s restore succeeded but PID %d is not running", t, pid)
	case comm != "memhog":
		return fmt.Errorf("restored PID %d runs %q, not memhog", pid, comm)
	}
	return nil
}

// compResponse is the part of cedana's -o json dump and restore output that this benchmark reads.
type compResponse struct {
	Path  string    `json:"path"`
	PID   int       `json:"pid"`
	Stats compStats `json:"stats"`
}

type compStats struct {
	Total       jsonDuration            `json:"total"`
	Frozen      jsonDuration            `json:"frozen"`
	Phases      map[string]jsonDuration `json:"phases"`
	RawBytes    int64                   `json:"raw_bytes,string"`
	StoredBytes int64                   `json:"stored_bytes,string"`
}

// phases returns the phases, and the total as "total".
func (s compStats) phases() map[string]time.Duration {
	m := map[string]time.Duration{"total": s.Total.d}
	for name, d := range s.Phases {
		m[name] = d.d
	}
	return m
}

// compSeries summarizes one row over the iterations (medians, and the range of the wall time).
type compSeries struct {
	n                    int
	med, lo, hi          time.Duration // wall
	frozen, cpu          time.Duration
	stored, images       int64
	phases               map[string]time.Duration
	restore              time.Duration
	restoreLo, restoreHi time.Duration
	restorePhases        map[string]time.Duration
}

type compSummary struct {
	rows [numCompRows]compSeries
}

func (r *compResult) summarize() compSummary {
	var m compSummary
	for row := range numCompRows {
		ss := r.rows[row]
		s := compSeries{n: len(ss), phases: map[string]time.Duration{}, restorePhases: map[string]time.Duration{}}
		if len(ss) > 0 {
			walls := pick(ss, func(s compSample) time.Duration { return s.wall })
			s.med, s.lo, s.hi = median(walls), slices.Min(walls), slices.Max(walls)
			s.frozen = median(pick(ss, func(s compSample) time.Duration { return s.frozen }))
			s.cpu = median(pick(ss, func(s compSample) time.Duration { return s.cpu }))
			s.stored = medianInt(pick(ss, func(s compSample) int64 { return s.stored }))
			s.images = medianInt(pick(ss, func(s compSample) int64 { return s.images }))
			s.phases = medianPhases(pick(ss, func(s compSample) map[string]time.Duration { return s.phases }))
		}
		if rs := r.restores[row]; len(rs) > 0 {
			walls := pick(rs, func(s restoreSample) time.Duration { return s.wall })
			s.restore, s.restoreLo, s.restoreHi = median(walls), slices.Min(walls), slices.Max(walls)
			s.restorePhases = medianPhases(pick(rs, func(s restoreSample) map[string]time.Duration { return s.phases }))
		}
		m.rows[row] = s
	}
	return m
}

// alone is the compress-alone row of c's codec; seq its sequential row.
func alone(c compRow) compRow {
	if c.codec() == archive.LZ4 {
		return cAloneLZ4
	}
	return cAloneZstd
}

func seq(c compRow) compRow {
	if c.codec() == archive.LZ4 {
		return cSeqLZ4
	}
	return cSeqZstd
}

// targetRatio is cedana's compressed dump over max(raw criu dump, compressing alone).
func (m compSummary) targetRatio(c compRow) float64 {
	return ratio(m.rows[c].med, max(m.rows[cRaw].med, m.rows[alone(c)].med))
}

// bound is the least wall time any pipelined design can take on this machine: no less than the raw
// dump or compressing alone, and no less than their CPU time shared out over every core (work
// conservation: running both at once cannot use more cores than there are).
func (m compSummary) bound(c compRow) time.Duration {
	work := (m.rows[cRaw].cpu + m.rows[alone(c)].cpu) / time.Duration(runtime.NumCPU())
	return max(m.rows[cRaw].med, m.rows[alone(c)].med, work)
}

// boundRatio is cedana's compressed dump over bound.
func (m compSummary) boundRatio(c compRow) float64 { return ratio(m.rows[c].med, m.bound(c)) }

// seqRatio is cedana's compressed dump over the sequential design.
func (m compSummary) seqRatio(c compRow) float64 { return ratio(m.rows[c].med, m.rows[seq(c)].med) }

func pick[S, T any](ss []S, f func(S) T) []T {
	out := make([]T, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func medianInt(ns []int64) int64 {
	ds := make([]time.Duration, len(ns))
	for i, n := range ns {
		ds[i] = time.Duration(n)
	}
	return int64(median(ds))
}

// medianPhases is the median of each phase over the samples that have it.
func medianPhases(ms []map[string]time.Duration) map[string]time.Duration {
	all := map[string][]time.Duration{}
	for _, m := range ms {
		for name, d := range m {
			all[name] = append(all[name], d)
		}
	}
	out := map[string]time.Duration{}
	for name, ds := range all {
		out[name] = median(ds)
	}
	return out
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuPressure is the total time some task waited for a CPU since boot (/proc/pressure/cpu), or -1.
func cpuPressure() time.Duration {
	data, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(data), "\n") // "some avg10=... total=<µs>"
	i := strings.Index(line, "total=")
	if i < 0 {
		return -1
	}
	us, err := strconv.ParseInt(strings.TrimSpace(line[i+len("total="):]), 10, 64)
	if err != nil {
		return -1
	}
	return time.Duration(us) * time.Microsecond
}

func optMs(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return ms(d)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// phaseList formats phases in a fixed order (total first, then by name), skipping absent ones.
func phaseList(m map[string]time.Duration) string {
	names := make([]string, 0, len(m))
	for name := range m {
		if name != "total" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var parts []string
	if d, ok := m["total"]; ok {
		parts = append(parts, "total "+ms(d))
	}
	for _, name := range names {
		parts = append(parts, name+" "+ms(m[name]))
	}
	return strings.Join(parts, ", ")
}

func verdictIf(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// printCompression prints one table per data kind and size, the breakdown, the target check and
// the restores.
// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time of pid and of its children it has waited for (the daemon's CRIU),
// from /proc/<pid>/stat; 0 if unknown.
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 15 {
		return 0
	}
	var ticks int64
	for _, f := range fields[11:15] { // utime stime cutime cstime
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func (e *env) printCompression(w io.Writer, results []*compResult, iters, warmup int, load0 string, elapsed time.Duration) {
	criuVersion := "?"
	if out, err := exec.Command(e.criu, "--version").Output(); err == nil {
		criuVersion = strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], "Version: ")
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)

	fmt.Fprintf(w, "\n=== compressed checkpoints: cedana --compression vs raw criu dump, dump-then-compress and compress alone ===\n")
	fmt.Fprintf(w, "criu %s (%s), kernel %s, %d CPUs (compression uses %d workers); images and archives in %s (%s)\n",
		criuVersion, e.criu, unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU(), runtime.NumCPU(), e.images, e.imagesFS)
	fmt.Fprintf(w, "median of %d iteration(s) after %d small warm-up round(s), %s in all; load average %s at the start, %s at the end\n",
		iters, warmup, secs(elapsed), load0, loadAvg())
	fmt.Fprintf(w, "wall: the CLI command (`criu dump`, `cedana dump process`), the raw dump plus archive.WriteDir (sequential),\n")
	fmt.Fprintf(w, "or archive.WriteDir alone of a raw dump's images; frozen: CRIU's own frozen time (stats-dump, cedana's stats.frozen)\n")

	for _, r := range results {
		m := r.summarize()
		rawRow := m.rows[cRaw]
		fmt.Fprintf(w, "\n--- %s memory, %s (%s", r.kind, sizeName(r.mib), secs(r.elapsed))
		if r.pressure >= 0 {
			fmt.Fprintf(w, "; CPU pressure: some task was waiting for a CPU %.0f%% of the time", 100*r.pressure)
		}
		fmt.Fprintf(w, ") ---\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "row\twall\tmin-max\twall/raw\tCPU\tfrozen\tfrozen/raw\tstored\timages/stored\t")
		for row := range numCompRows {
			s := m.rows[row]
			cr := "-"
			if s.stored > 0 {
				cr = fmt.Sprintf("%.2fx", float64(s.images)/float64(s.stored))
			}
			fr := "-"
			if s.frozen > 0 {
				fr = fmt.Sprintf("%.2fx", ratio(s.frozen, rawRow.frozen))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s-%s\t%.2fx\t%s\t%s\t%s\t%s\t%s\t\n", row, ms(s.med), ms(s.lo), ms(s.hi),
				ratio(s.med, rawRow.med), ms(s.cpu), optMs(s.frozen), fr, mibs(s.stored), cr)
		}
		tw.Flush()

		fmt.Fprintf(w, "\ntarget: cedana compressed dump <= %.2fx max(raw criu dump, compress-alone) and < sequential\n", compressionTarget)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "codec\tcedana\traw dump\tcompress alone\tcedana/max\t<= 1.15x\tsequential\tcedana/seq\t< seq\tbound\tbound/max\tcedana/bound\t")
		for _, c := range []compRow{cZstd, cLZ4} {
			t, sq := m.targetRatio(c), m.seqRatio(c)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3fx\t%s\t%s\t%.3fx\t%s\t%s\t%.3fx\t%.3fx\t\n", c.codec(), ms(m.rows[c].med), ms(rawRow.med),
				ms(m.rows[alone(c)].med), t, verdictIf(t <= compressionTarget), ms(m.rows[seq(c)].med), sq, verdictIf(sq < 1),
				ms(m.bound(c)), ratio(m.bound(c), max(rawRow.med, m.rows[alone(c)].med)), m.boundRatio(c))
		}
		tw.Flush()
		fmt.Fprintf(w, "bound: max(raw dump, compress alone, (their CPU time)/%d CPUs), the least a design running both at once can take here;\n", runtime.NumCPU())
		fmt.Fprintf(w, "bound/max above %.2fx means the target cannot be met on this machine, whatever the design\n", compressionTarget)

		fmt.Fprintf(w, "\nwhere the time goes (medians; cedana: CLI+RPC = wall - stats.total, phases from stats.phases):\n")
		for _, row := range []compRow{cNone, cZstd, cLZ4} {
			s := m.rows[row]
			fmt.Fprintf(w, "  %-32s wall %s, CLI+RPC %s, %s\n", row.String()+":", ms(s.med), ms(s.med-s.phases["total"]), phaseList(s.phases))
		}
		for _, row := range []compRow{cSeqZstd, cSeqLZ4} {
			s := m.rows[row]
			fmt.Fprintf(w, "  %-32s wall %s = criu dump %s + compress %s\n", row.String()+":", ms(s.med), ms(s.phases["criu_dump"]), ms(s.phases["compress"]))
		}
		for _, row := range []compRow{cAloneZstd, cAloneLZ4} {
			s := m.rows[row]
			fmt.Fprintf(w, "  %-32s %s of images at %.0f MiB/s\n", row.String()+":", mibs(s.images), float64(s.images)/(1<<20)/s.med.Seconds())
		}

		fmt.Fprintf(w, "\nrestore (wall of `criu restore -d` of the raw dump's directory, `cedana restore process --path` of cedana's archive):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "from\twall\tmin-max\twall/raw\tdecompress\tcriu_restore\twait_pids\t")
		for _, row := range []compRow{cRaw, cZstd, cLZ4} {
			s := m.rows[row]
			from := map[compRow]string{cRaw: "raw criu (dir)", cZstd: "cedana zstd archive", cLZ4: "cedana lz4 archive"}[row]
			fmt.Fprintf(tw, "%s\t%s\t%s-%s\t%.2fx\t%s\t%s\t%s\t\n", from, ms(s.restore), ms(s.restoreLo), ms(s.restoreHi),
				ratio(s.restore, rawRow.restore), optMs(s.restorePhases["decompress"]), optMs(s.restorePhases["criu_restore"]), optMs(s.restorePhases["wait_pids"]))
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nsummary:\n")
	for _, r := range results {
		m := r.summarize()
		for _, c := range []compRow{cZstd, cLZ4} {
			fmt.Fprintf(w, "  %-12s %-6s %-4s %s = %.3fx max(raw, alone) [%s], %.3fx sequential [%s], %.3fx the %d-CPU bound (itself %.3fx max), stored %.2fx smaller\n",
				r.kind, sizeName(r.mib), c.codec(), secs(m.rows[c].med), m.targetRatio(c), verdictIf(m.targetRatio(c) <= compressionTarget),
				m.seqRatio(c), verdictIf(m.seqRatio(c) < 1), m.boundRatio(c), runtime.NumCPU(),
				ratio(m.bound(c), max(m.rows[cRaw].med, m.rows[alone(c)].med)), float64(m.rows[c].images)/float64(max(m.rows[c].stored, 1)))
		}
	}
	fmt.Fprintln(w)
}
