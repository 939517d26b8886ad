package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/store"
)

func stats() *daemonv1.Stats {
	return &daemonv1.Stats{
		Total:       durationpb.New(300 * time.Millisecond),
		Phases:      map[string]*durationpb.Duration{"criu_dump": durationpb.New(200 * time.Millisecond), "compress": durationpb.New(50 * time.Millisecond)},
		Frozen:      durationpb.New(150 * time.Millisecond),
		RawBytes:    3 << 20,
		StoredBytes: 1 << 20,
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{errs.Busy("dumping already"), "busy"},
		{errs.NotFound("no such workload"), "not_found"},
		{errors.New("plain"), "internal"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Outcome(tt.err), "%v", tt.err)
	}
}

func TestRecordDumpAndRestore(t *testing.T) {
	m := New(Options{Runtimes: []string{"alpha", "beta"}, CRIU: "4.1.1"})
	assert.Equal(t, 0.0, testutil.ToFloat64(m.dumps.WithLabelValues("beta", "ok")), "success counters start at 0")

	m.Dump("alpha", stats(), nil)
	m.Dump("alpha", nil, errs.Busy("busy"))
	m.Dump("made-up", nil, errs.Invalid("no such runtime"))
	m.Restore("beta", &daemonv1.Stats{Total: durationpb.New(time.Second), Phases: map[string]*durationpb.Duration{"criu_restore": durationpb.New(time.Second)}}, nil)
	m.Restore("", nil, errs.NotFound("no checkpoint"))

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"dump ok", testutil.ToFloat64(m.dumps.WithLabelValues("alpha", "ok")), 1},
		{"dump busy", testutil.ToFloat64(m.dumps.WithLabelValues("alpha", "busy")), 1},
		{"unknown runtime", testutil.ToFloat64(m.dumps.WithLabelValues("unknown", "invalid_argument")), 1},
		{"restore ok", testutil.ToFloat64(m.restores.WithLabelValues("beta", "ok")), 1},
		{"restore without a type", testutil.ToFloat64(m.restores.WithLabelValues("unknown", "not_found")), 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.got, tt.name)
	}
	// Failures add no observations; successes one per phase: two of the dump, one of the restore.
	assert.Equal(t, 3, testutil.CollectAndCount(m.phase))
	assert.Equal(t, 1, testutil.CollectAndCount(m.frozen))

	body := scrape(t, m, Path, http.StatusOK)
	for _, line := range []string{
		`cedana_dump_frozen_seconds_bucket{runtime="alpha",le="0.1"} 0`,
		`cedana_dump_frozen_seconds_bucket{runtime="alpha",le="0.25"} 1`,
		`cedana_phase_duration_seconds_count{operation="dump",phase="criu_dump"} 1`,
		`cedana_phase_duration_seconds_sum{operation="restore",phase="criu_restore"} 1`,
		`cedana_operation_duration_seconds_count{operation="dump",runtime="alpha"} 1`,
		`cedana_dump_raw_bytes_sum{runtime="alpha"} 3.145728e+06`,
		`cedana_dump_stored_bytes_sum{runtime="alpha"} 1.048576e+06`,
		`cedana_dumps_total{outcome="busy",runtime="alpha"} 1`,
		`cedana_build_info{commit="`,
		`criu="4.1.1"`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		assert.Contains(t, body, line)
	}

	var none *Metrics
	assert.NotPanics(t, func() { none.Dump("alpha", stats(), nil); none.Restore("alpha", nil, nil) })
}

// scrape GETs path from m's handler, checks the status and returns the body.
func scrape(t *testing.T, m *Metrics, path string, status int) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler(slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "GET %s: %s", path, body)
	return string(body)
}

func TestJobsByState(t *testing.T) {
	tests := []struct {
		name  string
		count JobCounter
		want  []string
		err   string
	}{
		{
			name: "every state, 0 when empty",
			count: func(context.Context) (map[store.JobStatus]int, error) {
				return map[store.JobStatus]int{store.JobRunning: 2}, nil
			},
			want: []string{`cedana_jobs{state="running"} 2`, `cedana_jobs{state="halted"} 0`, `cedana_jobs{state="unknown"} 0`},
		},
		{
			name:  "database unreadable",
			count: func(context.Context) (map[store.JobStatus]int, error) { return nil, errors.New("database is locked") },
			err:   "database is locked",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{Jobs: tt.count})
			_, err := m.Registry().Gather()
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			body := scrape(t, m, Path, http.StatusOK)
			for _, w := range tt.want {
				assert.Contains(t, body, w)
			}
		})
	}
}

func TestCountJobs(t *testing.T) {
	st, err := store.Open(context.Background(), t.TempDir()+"/db")
	require.NoError(t, err)
	defer st.Close()
	for jid, status := range map[string]store.JobStatus{"a": store.JobRunning, "b": store.JobHalted, "c": store.JobHalted} {
		require.NoError(t, st.CreateJob(context.Background(), store.Job{JID: jid, Type: "alpha", Status: status}))
	}
	n, err := CountJobs(st)(context.Background())
	require.NoError(t, err)
	assert.Equal(t, map[store.JobStatus]int{store.JobRunning: 1, store.JobHalted: 2}, n)
}

// TestOnlyMetricsServed: the endpoint serves /metrics and nothing else.
func TestOnlyMetricsServed(t *testing.T) {
	m := New(Options{})
	for _, path := range []string{"/", "/metrics/", "/debug/pprof/", "/cedana.daemon.v1.DaemonService/Dump", "/grpc.health.v1.Health/Check"} {
		scrape(t, m, path, http.StatusNotFound)
	}
	assert.Contains(t, scrape(t, m, Path, http.StatusOK), "cedana_build_info")
}

// TestServe: Serve listens, serves until stopped, and says which address is taken.
func TestServe(t *testing.T) {
	m := New(Options{})
	log := slog.New(slog.DiscardHandler)
	stop, err := m.Serve(context.Background(), "127.0.0.1:0", log)
	require.NoError(t, err)
	stop()

	stop, err = m.Serve(context.Background(), "127.0.0.1:0", log)
	require.NoError(t, err)
	defer stop()
	_, err = m.Serve(context.Background(), "256.0.0.1:1", log)
	require.ErrorContains(t, err, "listen for metrics on 256.0.0.1:1")
	require.ErrorContains(t, err, "metrics.address")
}
