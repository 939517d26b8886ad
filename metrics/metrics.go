// Package metrics is the daemon's Prometheus metrics: counters and histograms of dumps and
// restores, the jobs by state, build information, and the Go runtime's and the process's own
// metrics, all in a registry of their own (nothing global), served by Handler on metrics.address.
package metrics

import (
	"runtime"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/version"
)

// Operations, the values of the operation label.
const (
	OpDump    = "dump"
	OpRestore = "restore"
)

// Outcome label values besides the error kinds of errs.KindName.
const (
	OutcomeOK = "ok"
	// UnknownRuntime stands for a runtime label that is empty or not one of this binary's, so
	// that a request cannot create label values at will.
	UnknownRuntime = "unknown"
)

// Buckets of the histograms: durations from 5 ms to 10 min, sizes from 1 MiB to 256 GiB.
var (
	durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	sizeBuckets     = prometheus.ExponentialBuckets(1<<20, 4, 10)
)

// Options are what the metrics describe besides what they record.
type Options struct {
	// Runtimes are the runtime label's values; any other runtime is recorded as UnknownRuntime.
	Runtimes []string
	// CRIU is the CRIU version, as in cedana_build_info ("4.1.1", or "unknown").
	CRIU string
	// Jobs counts the jobs by state at each scrape; nil: no cedana_jobs.
	Jobs JobCounter
}

// Metrics records the daemon's work. A nil *Metrics records nothing.
type Metrics struct {
	reg      *prometheus.Registry
	runtimes []string

	dumps, restores *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	phase           *prometheus.HistogramVec
	frozen          *prometheus.HistogramVec
	rawBytes        *prometheus.HistogramVec
	storedBytes     *prometheus.HistogramVec
}

// New makes the metrics and registers them, with the Go runtime and process collectors, in a new
// registry.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		runtimes: slices.Clone(opts.Runtimes),
		dumps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cedana_dumps_total",
			Help: "Dumps the daemon answered, by runtime and outcome (ok, or the error's kind).",
		}, []string{"runtime", "outcome"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cedana_restores_total",
			Help: "Restores the daemon answered, by runtime and outcome (ok, or the error's kind).",
		}, []string{"runtime", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cedana_operation_duration_seconds", Buckets: durationBuckets,
			Help: "Wall time of successful dumps and restores inside the daemon, by operation and runtime.",
		}, []string{"operation", "runtime"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cedana_phase_duration_seconds", Buckets: durationBuckets,
			Help: "Duration of each phase of successful dumps and restores (the phases of --stats), by operation and phase.",
		}, []string{"operation", "phase"}),
		frozen: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cedana_dump_frozen_seconds", Buckets: durationBuckets,
			Help: "How long successful dumps kept the workload frozen, by runtime.",
		}, []string{"runtime"}),
		rawBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cedana_dump_raw_bytes", Buckets: sizeBuckets,
			Help: "Uncompressed size of the CRIU images of successful dumps, by runtime.",
		}, []string{"runtime"}),
		storedBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cedana_dump_stored_bytes", Buckets: sizeBuckets,
			Help: "Stored size (the archive's, or the images' for a directory) of successful dumps, by runtime.",
		}, []string{"runtime"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cedana_build_info",
		Help: "Always 1: the daemon's version, commit, Go version and CRIU version as labels.",
		ConstLabels: prometheus.Labels{
			"version": version.Version, "commit": version.BuildCommit(), "go": runtime.Version(), "criu": opts.CRIU,
		},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(m.dumps, m.restores, m.duration, m.phase, m.frozen, m.rawBytes, m.storedBytes, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Jobs != nil {
		m.reg.MustRegister(jobsCollector{count: opts.Jobs})
	}
	// Every runtime's success counters exist from the start, at 0, so that rates work from the
	// first dump.
	for _, rt := range m.runtimes {
		m.dumps.WithLabelValues(rt, OutcomeOK)
		m.restores.WithLabelValues(rt, OutcomeOK)
	}
	return m
}

// Registry is where the metrics are registered, for Handler and tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Dump records a dump of runtime (the request's type) that ended with err; the durations and
// sizes of stats only when it succeeded.
func (m *Metrics) Dump(runtime string, stats *daemonv1.Stats, err error) {
	if m == nil {
		return
	}
	rt, ok := m.count(m.dumps, OpDump, runtime, stats, err)
	if !ok {
		return
	}
	if stats.Frozen != nil {
		m.frozen.WithLabelValues(rt).Observe(stats.Frozen.AsDuration().Seconds())
	}
	m.rawBytes.WithLabelValues(rt).Observe(float64(stats.RawBytes))
	m.storedBytes.WithLabelValues(rt).Observe(float64(stats.StoredBytes))
}

// Restore records a restore of runtime (the request's type, else the checkpoint's) that ended
// with err; the durations of stats only when it succeeded.
func (m *Metrics) Restore(runtime string, stats *daemonv1.Stats, err error) {
	if m != nil {
		m.count(m.restores, OpRestore, runtime, stats, err)
	}
}

// count counts an operation of runtime that ended with err in counter and, when it succeeded
// with stats, records its durations; it returns the runtime label and whether it did.
func (m *Metrics) count(counter *prometheus.CounterVec, op, runtime string, stats *daemonv1.Stats, err error) (string, bool) {
	rt := m.runtime(runtime)
	counter.WithLabelValues(rt, Outcome(err)).Inc()
	if err != nil || stats == nil {
		return rt, false
	}
	m.observe(op, rt, stats)
	return rt, true
}

// observe records the total and each phase's duration.
func (m *Metrics) observe(op, rt string, stats *daemonv1.Stats) {
	if stats.Total != nil {
		m.duration.WithLabelValues(op, rt).Observe(stats.Total.AsDuration().Seconds())
	}
	for phase, d := range stats.Phases {
		m.phase.WithLabelValues(op, phase).Observe(d.AsDuration().Seconds())
	}
}

// runtime is the runtime label for name.
func (m *Metrics) runtime(name string) string {
	if slices.Contains(m.runtimes, name) {
		return name
	}
	return UnknownRuntime
}

// Outcome is the outcome label for an operation that ended with err: "ok", or the error's kind
// (errs.KindName: "invalid_argument", "not_found", "busy", "internal", ...).
func Outcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	return errs.KindName(err)
}
