package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cedana/cedana/store"
)

// JobCounter counts the managed jobs by state (store.JobStatus values).
type JobCounter func(ctx context.Context) (map[store.JobStatus]int, error)

// CountJobs is a JobCounter that reads st.
func CountJobs(st *store.Store) JobCounter {
	return func(ctx context.Context) (map[store.JobStatus]int, error) {
		jobs, err := st.ListJobs(ctx)
		if err != nil {
			return nil, err
		}
		n := map[store.JobStatus]int{}
		for _, j := range jobs {
			n[j.Status]++
		}
		return n, nil
	}
}

// scrapeTimeout bounds the reading of the jobs at one scrape.
const scrapeTimeout = 5 * time.Second

// jobStates are the states cedana_jobs always reports, 0 when no job is in them.
var jobStates = []store.JobStatus{store.JobRunning, store.JobHalted, store.JobUnknown}

var jobsDesc = prometheus.NewDesc("cedana_jobs", "Managed jobs by state (running, halted, unknown), read from the state database at each scrape.", []string{"state"}, nil)

// jobsCollector reports cedana_jobs from the state database when scraped.
type jobsCollector struct{ count JobCounter }

// Describe implements prometheus.Collector.
func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

// Collect implements prometheus.Collector; a database that cannot be read fails the scrape of
// this metric alone, with the error.
func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	for _, s := range jobStates {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n[s]), string(s))
	}
}
