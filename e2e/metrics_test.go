package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/internal/testutil"
)

// scrapeAs fetches url with the real curl as the unprivileged user nobody, with extra curl
// arguments, and returns the body and the HTTP status.
func scrapeAs(t *testing.T, extra []string, url string) (body string, status int) {
	t.Helper()
	setpriv := testutil.RequireTool(t, "setpriv")
	testutil.RequireTool(t, "curl")
	args := append([]string{"--reuid", nobody, "--regid", "nogroup", "--clear-groups", "curl", "-sS", "-w", "\n%{http_code}"}, extra...)
	r := runCmd(t, setpriv, os.Environ(), append(args, url)...)
	require.Equal(t, 0, r.code, r.String())
	i := strings.LastIndex(r.stdout, "\n")
	_, err := fmt.Sscan(r.stdout[i+1:], &status)
	require.NoError(t, err, r.stdout)
	return r.stdout[:i], status
}

// TestMetricsEndpoint: a daemon with metrics.address counts a process dump, a failing dump and a
// restore; an unprivileged user scrapes /metrics and finds the counters and histograms with their
// labels, and gets 404 for everything else there, while the daemon's socket stays closed to them.
// The endpoint goes away with the daemon.
func TestMetricsEndpoint(t *testing.T) {
	requireE2E(t)
	addr := freeLoopbackAddr(t)
	url := "http://" + addr
	d := startDaemon(t, cedanaBin, "CEDANA_METRICS_ADDRESS="+addr)
	openForOthers(t, d)
	require.Eventually(t, func() bool { return strings.Contains(d.log.String(), "serving metrics") }, 10*time.Second, 20*time.Millisecond)

	w := startCounter(t, false)
	path := dump(t, d, w)
	w.waitExited(t)
	reapAll(w.pid)
	restore(t, d, w, path)
	r := d.cli("dump", "process", "4194303") // no such process (above pid_max's highest)
	require.NotEqual(t, 0, r.code, r.String())
	r = d.cli("restore", "process", "--path", filepath.Join(d.dir, "no-such-checkpoint"))
	require.NotEqual(t, 0, r.code, r.String())

	body, status := scrapeAs(t, nil, url+"/metrics")
	require.Equal(t, 200, status, body)
	for _, line := range []string{
		`cedana_dumps_total{outcome="ok",runtime="process"} 1`,
		`cedana_dumps_total{outcome="not_found",runtime="process"} 1`,
		`cedana_restores_total{outcome="ok",runtime="process"} 1`,
		`cedana_restores_total{outcome="not_found",runtime="process"} 1`,
		`cedana_operation_duration_seconds_count{operation="dump",runtime="process"} 1`,
		`cedana_operation_duration_seconds_count{operation="restore",runtime="process"} 1`,
		`cedana_phase_duration_seconds_count{operation="dump",phase="criu_dump"} 1`,
		`cedana_phase_duration_seconds_count{operation="restore",phase="wait_pids"} 1`,
		`cedana_phase_duration_seconds_count{operation="restore",phase="criu_restore"} 1`,
		`cedana_dump_frozen_seconds_count{runtime="process"} 1`,
		`cedana_dump_raw_bytes_count{runtime="process"} 1`,
		`cedana_dump_stored_bytes_count{runtime="process"} 1`,
		`cedana_dump_frozen_seconds_bucket{runtime="process",le="+Inf"} 1`,
		`cedana_jobs{state="running"} 0`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		assert.Contains(t, body, line)
	}
	assert.Regexp(t, regexp.MustCompile(`(?m)^cedana_build_info\{commit="[^"]+",criu="4\.\d+\.\d+",go="go1\.[^"]+",version="[^"]+"\} 1$`), body)
	assert.Regexp(t, regexp.MustCompile(`(?m)^cedana_dump_raw_bytes_sum\{runtime="process"\} [1-9]`), body, "a dump's raw size is not 0")

	// Nothing but /metrics: no API, no health, no debugging, whatever the method.
	for _, p := range []string{"/", "/metrics/x", "/debug/pprof/", "/grpc.health.v1.Health/Check", "/cedana.daemon.v1.DaemonService/ListJobs"} {
		body, status := scrapeAs(t, nil, url+p)
		assert.Equal(t, 404, status, "GET %s: %s", p, body)
	}
	body, status = scrapeAs(t, []string{"-H", "Content-Type: application/json", "-d", `{"type":"process","process":{"path":"/bin/true"}}`},
		url+"/cedana.daemon.v1.DaemonService/Run")
	assert.Equal(t, 404, status, body)
	_, status = scrapeAs(t, []string{"-X", "POST"}, url+"/metrics")
	assert.Equal(t, 405, status)

	// The daemon's socket is still root's alone.
	r = asNobody(t, d, nil, nil, "ps")
	requireOneLineError(t, r, "permission denied")

	d.stop()
	_, err := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the metrics endpoint outlived the daemon")
}

// TestMetricsBesideTCPAPI: with the API on TCP (token required) and --metrics-address, the API
// still refuses an unprivileged caller without the token, the API port serves no metrics, and the
// metrics port serves them to anyone.
func TestMetricsBesideTCPAPI(t *testing.T) {
	requireE2E(t)
	apiAddr, metricsAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	d := startTCPDaemonArgs(t, apiAddr, []string{"--metrics-address", metricsAddr}, "CEDANA_TOKEN_FILE="+tokenFile)
	require.Eventually(t, func() bool { return strings.Contains(d.log.String(), "serving metrics") }, 10*time.Second, 20*time.Millisecond)

	body, status := scrapeAs(t, nil, "http://"+metricsAddr+"/metrics")
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `cedana_dumps_total{outcome="ok",runtime="process"} 0`)

	out := curlAs(t, nobody, nil, fmt.Sprintf("http://%s/cedana.daemon.v1.DaemonService/ListJobs", apiAddr), `{}`)
	assert.Contains(t, out, `"code":"unauthenticated"`)
	_, status = scrapeAs(t, []string{"-H", "Authorization: Bearer s3cret"}, "http://"+apiAddr+"/metrics")
	assert.Equal(t, 404, status, "the API port serves no metrics")

	// The metrics port cannot be the API's.
	r := runCmd(t, cedanaBin, d.env, "daemon", "start", "--protocol", "tcp", "--address", apiAddr, "--metrics-address", apiAddr)
	requireOneLineError(t, r, "metrics.address", "port of its own")
}
