package bench

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
)

// report is everything BenchmarkReport measured, and the machine's state around it.
type report struct {
	mib, iters   int
	limit        int64 // checkpoint.stream_memory_limit in bytes, 0 if unknown
	limitSrc     string
	kinds        []*kindSamples
	small        smallSamples
	load0        string
	psi0, psi1   time.Duration
	elapsed      time.Duration
	missed, rows int
}

// dist is a median and its range.
type dist struct{ med, lo, hi float64 }

func distOf[T time.Duration | int64 | float64](xs []T) dist {
	if len(xs) == 0 {
		return dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := float64(s[n/2])
	if n%2 == 0 {
		med = (float64(s[n/2-1]) + float64(s[n/2])) / 2
	}
	return dist{med: med, lo: float64(s[0]), hi: float64(s[n-1])}
}

// goal says whether a figure is met: against a ratio of the medians, a difference of the medians,
// or an absolute bound.
type goal struct {
	text string
	ok   func(ced, ref dist) bool
}

func ratioGoal(g float64) goal {
	return goal{fmt.Sprintf("<= %.2fx", g), func(c, r dist) bool { return r.med > 0 && c.med/r.med <= g }}
}

func plusGoal(d time.Duration) goal {
	return goal{fmt.Sprintf("<= ref + %s", fmtMs(float64(d))), func(c, r dist) bool { return c.med-r.med <= float64(d) }}
}

func absGoal(d time.Duration) goal {
	return goal{fmt.Sprintf("<= %s", fmtMs(float64(d))), func(c, _ dist) bool { return c.med <= float64(d) }}
}

// pairedRatio is the median [min..max] of each iteration's ced[i]/ref[i], or "-": both ran in the
// same iteration, so a drift of the machine's speed over minutes moves both.
func pairedRatio(ced, ref []time.Duration) string {
	var rs []float64
	for i := range min(len(ced), len(ref)) {
		if ref[i] > 0 {
			rs = append(rs, float64(ced[i])/float64(ref[i]))
		}
	}
	if len(rs) == 0 {
		return "-"
	}
	d := distOf(rs)
	return fmt.Sprintf("%.2fx [%.2f..%.2fx]", d.med, d.lo, d.hi)
}

// pairedPlus is the median [min..max] of each iteration's ced[i]-ref[i], or "-".
func pairedPlus(ced, ref []time.Duration) string {
	var ds []float64
	for i := range min(len(ced), len(ref)) {
		ds = append(ds, float64(ced[i]-ref[i]))
	}
	if len(ds) == 0 {
		return "-"
	}
	return cell(distOf(ds), func(ns float64) string { return fmt.Sprintf("%+.1f ms", ns/1e6) })
}

func fmtMs(ns float64) string { return fmt.Sprintf("%.1f ms", ns/1e6) }

func fmtMiB(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }

// cell is a median with its min..max.
func cell(d dist, unit func(float64) string) string {
	if d == (dist{}) {
		return "-"
	}
	lo := strings.Fields(unit(d.lo))[0] // the number without its unit
	return fmt.Sprintf("%s [%s..%s]", unit(d.med), lo, unit(d.hi))
}

// row prints one figure, with paired (pairedRatio's or pairedPlus's, or "-"); g.text == "" prints
// it without a goal.
func (r *report) row(tw io.Writer, kind, what, refName string, ced, ref dist, paired string, unit func(float64) string, g goal) {
	cmp, verdict := "-", "-"
	if ref != (dist{}) && ref.med > 0 {
		cmp = fmt.Sprintf("%.2fx", ced.med/ref.med)
	}
	if g.ok != nil {
		r.rows++
		verdict = "met"
		if ced == (dist{}) || !g.ok(ced, ref) {
			verdict = "MISSED"
			r.missed++
		}
	} else if g.text != "" {
		verdict = "n/a"
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", kind, what, cell(ced, unit), refName, cell(ref, unit), cmp, paired, g.text, verdict)
}

// dumpBounds are, per iteration, the 2-CPU work bound of a durable archive of c: no less than the
// raw dump, and no less than the CPU time of all the work, CRIU's dump and compressing its images
// (alone, with every core), shared out over ncpu cores. Compressing alone's wall time is no bound:
// the archive writer compresses a zstd stream on one core (zstdWorkers), which says nothing of what
// a design compressing chunks side by side can do.
func (k *kindSamples) dumpBounds(c archive.Codec, ncpu int) []time.Duration {
	n := min(len(k.rawDump), len(k.rawDumpCPU), len(k.compressCPU[c]))
	bounds := make([]time.Duration, n)
	for i := range n {
		bounds[i] = max(k.rawDump[i], (k.rawDumpCPU[i]+k.compressCPU[c][i])/time.Duration(ncpu))
	}
	return bounds
}

// restoreBounds are, per iteration, the least time in which any design could restore from c's
// archive here: no less than the raw restore or than decoding the archive alone, and no less than
// their CPU time shared out over ncpu cores. Where it exceeds the goal's 1.10x of the raw restore,
// decoding costs more than this machine has, whatever the design.
func (k *kindSamples) restoreBounds(c archive.Codec, ncpu int) []time.Duration {
	ced := k.ced[c]
	n := min(len(k.rawRestore), len(k.rawRestoreCPU), len(ced.decodeWall), len(ced.decodeCPU))
	bounds := make([]time.Duration, n)
	for i := range n {
		bounds[i] = max(k.rawRestore[i], ced.decodeWall[i], (k.rawRestoreCPU[i]+ced.decodeCPU[i])/time.Duration(ncpu))
	}
	return bounds
}

// print writes the table and returns how many goals were missed.
func (r *report) print(w io.Writer, e *env) int {
	criuVersion := "?"
	if out, err := exec.Command(e.criu, "--version").Output(); err == nil {
		criuVersion = strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], "Version: ")
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	ncpu := runtime.NumCPU()
	fmt.Fprintf(w, "\n=== cedana vs raw CRIU (issue 14's goals), %s of memory per workload ===\n", sizeName(r.mib))
	fmt.Fprintf(w, "criu %s, kernel %s, %d CPUs; images and archives in %s (%s); %s in all\n",
		criuVersion, unix.ByteSliceToString(uts.Release[:]), ncpu, e.images, e.imagesFS, r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "load average %s at the start, %s at the end", r.load0, loadAvg())
	if r.psi0 >= 0 && r.psi1 >= r.psi0 && r.elapsed > 0 {
		fmt.Fprintf(w, "; some task waited for a CPU %.0f%% of the time (PSI)", 100*float64(r.psi1-r.psi0)/float64(r.elapsed))
	}
	fmt.Fprintf(w, "\neach figure: median [min..max] of %d runs, the runs of each kind in rotating order; ratio = median/median\n\n", r.iters)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "memory\tfigure\tcedana\treference\t\tratio\tpaired\tgoal\tverdict")
	raw := ratioGoal(goalRaw)
	bound := ratioGoal(goalBound)
	for _, k := range r.kinds {
		rawDump, rawRestore := distOf(k.rawDump), distOf(k.rawRestore)
		none := k.ced[archive.None]
		r.row(tw, k.kind, "dump, none", "raw criu dump", distOf(none.dump), rawDump, pairedRatio(none.dump, k.rawDump), fmtMs, raw)
		r.row(tw, k.kind, "restore, none", "raw criu restore", distOf(none.restore), rawRestore, pairedRatio(none.restore, k.rawRestore), fmtMs, raw)
		for _, c := range reportCodecs {
			r.row(tw, k.kind, "frozen, "+string(c), "raw criu frozen", distOf(k.ced[c].frozen), distOf(k.rawFrozen), pairedRatio(k.ced[c].frozen, k.rawFrozen), fmtMs, raw)
		}
		for _, c := range []archive.Codec{archive.Zstd, archive.LZ4} {
			bounds := k.dumpBounds(c, ncpu)
			dump := distOf(k.ced[c].dump)
			r.row(tw, k.kind, "durable archive, "+string(c), "work bound", dump, distOf(bounds), pairedRatio(k.ced[c].dump, bounds), fmtMs, bound)
			r.row(tw, k.kind, "durable archive, "+string(c), "dump-then-compress", dump, distOf(k.dtcSum[c]), pairedRatio(k.ced[c].dump, k.dtcSum[c]), fmtMs, ratioGoal(1))
		}
		for _, c := range []archive.Codec{archive.Zstd, archive.LZ4} {
			r.row(tw, k.kind, "restore from archive, "+string(c), "raw criu restore", distOf(k.ced[c].restore), rawRestore, pairedRatio(k.ced[c].restore, k.rawRestore), fmtMs, bound)
		}
		for _, c := range []archive.Codec{archive.Zstd, archive.LZ4} {
			bounds := k.restoreBounds(c, ncpu)
			r.row(tw, k.kind, "restore work bound, "+string(c), "raw criu restore", distOf(bounds), rawRestore, pairedRatio(bounds, k.rawRestore), fmtMs, goal{})
			r.row(tw, k.kind, "restore from archive, "+string(c), "restore work bound", distOf(k.ced[c].restore), distOf(bounds), pairedRatio(k.ced[c].restore, bounds), fmtMs, goal{})
		}
		rss := goal{text: "<= limit + 64 MiB"}
		if r.limit > 0 {
			lim := float64(r.limit + goalRSSSlack)
			rss.ok = func(c, _ dist) bool { return c.hi <= lim } // "never exceeds": the worst run
		}
		for _, c := range reportCodecs {
			r.row(tw, k.kind, "peak daemon RSS, dump "+string(c), "", distOf(k.ced[c].dumpHWM), dist{}, "-", fmtMiB, rss)
		}
		var before []int64
		for _, c := range reportCodecs {
			before = append(before, k.ced[c].dumpRSS0...)
		}
		r.row(tw, k.kind, "daemon RSS before a dump", "", distOf(before), dist{}, "-", fmtMiB, goal{})
		for _, c := range reportCodecs {
			r.row(tw, k.kind, "peak daemon RSS, restore "+string(c), "", distOf(k.ced[c].restoreHWM), dist{}, "-", fmtMiB, goal{})
		}
	}
	r.row(tw, "sleep", "dump of a small process", "raw criu dump", distOf(r.small.cedSleep), distOf(r.small.rawSleep), pairedPlus(r.small.cedSleep, r.small.rawSleep), fmtMs, plusGoal(goalSmall))
	r.row(tw, "-", "cedana --version", "", distOf(r.small.version), dist{}, "-", fmtMs, absGoal(goalVersion))
	r.row(tw, "-", "cedana ps", "", distOf(r.small.ps), dist{}, "-", fmtMs, absGoal(goalPs))
	tw.Flush()

	fmt.Fprintf(w, "\ncedana: the wall time of `cedana dump|restore process ... -o json` (the real CLI through the daemon); frozen: CRIU's\n")
	fmt.Fprintf(w, "frozen time (cedana's stats.frozen; raw: stats-dump). raw criu: `criu dump|restore -D <dir> -o <log>` at its default\n")
	fmt.Fprintf(w, "log level. durable archive: the dump command's wall time with --compression; work bound = max(raw criu dump,\n")
	fmt.Fprintf(w, "(the CPU time of the raw dump + of compressing its images alone with every core) / %d CPUs), per iteration;\n", ncpu)
	fmt.Fprintf(w, "dump-then-compress = raw criu dump + compressing its directory into an fsynced archive\n")
	fmt.Fprintf(w, "(goal: faster, <= 1.00x). With none, the durable checkpoint is the directory: see \"dump, none\". peak daemon\n")
	fmt.Fprintf(w, "RSS: VmHWM of the daemon, reset (clear_refs 5, which sets it to the RSS the daemon holds then: \"RSS before a\n")
	fmt.Fprintf(w, "dump\") before each command; the goal is the worst run <= the stream memory limit + 64 MiB (limit: ")
	if r.limit > 0 {
		fmt.Fprintf(w, "%s, from %s).\n", fmtMiB(float64(r.limit)), r.limitSrc)
	} else {
		fmt.Fprintf(w, "unknown, %s: n/a).\n", r.limitSrc)
	}
	fmt.Fprintf(w, "restore work bound (no goal) = max(raw criu restore, decoding the archive alone, (the CPU time of the raw\n")
	fmt.Fprintf(w, "restore, CRIU's and the restored workload's, + the decoding's) / %d CPUs), per iteration: the least any design\n", ncpu)
	fmt.Fprintf(w, "restoring from that archive could take here: where it exceeds 1.10x the raw restore, no design meets that goal.\n")
	fmt.Fprintf(w, "small process: `sleep` dumped by raw criu and `cedana dump process`, alternating; the CLI: %d calls each.\n",
		len(r.small.version))
	fmt.Fprintf(w, "paired: the median [min..max] of each iteration's own ratio (difference for the small process), cedana's run\n")
	fmt.Fprintf(w, "against the reference's of the same iteration, which ran minutes apart at most: where the machine's speed\n")
	fmt.Fprintf(w, "drifts, it moves both. The verdict is on the ratio of the medians.\n")
	fmt.Fprintf(w, "\n%d of %d goals met, %d missed\n\n", r.rows-r.missed, r.rows, r.missed)
	return r.missed
}
