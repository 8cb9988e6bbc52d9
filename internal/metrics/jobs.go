package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replicatord/replicatord/internal/job"
)

// JobCount is the number of jobs in one state for one destination region
// and policy ("" for jobs submitted by hand).
type JobCount struct {
	State  job.State
	Region string
	Policy string
	Count  int
}

// JobStats is what the scheduler reports at scrape time.
type JobStats struct {
	Counts []JobCount
	// OldestQueuedAge is how long the oldest QUEUED job has waited; zero
	// when none is queued.
	OldestQueuedAge time.Duration
	// Overdue is, per destination region, how far the copy most past its
	// expected end runs over it; regions without one may be left out.
	Overdue map[string]time.Duration
}

// jobCollector asks its source at every scrape.
type jobCollector struct {
	mu     sync.Mutex
	source func() JobStats

	// regions are the destination regions to export overdue for (at 0
	// when none of their copies is overdue).
	regions func() []string

	jobs    *prometheus.Desc
	oldest  *prometheus.Desc
	overdue *prometheus.Desc
}

func newJobCollector() *jobCollector {
	return &jobCollector{
		jobs: prometheus.NewDesc(namespace+"_jobs",
			"Jobs by state, destination region and policy.",
			[]string{"state", "region", "policy"}, nil),
		oldest: prometheus.NewDesc(namespace+"_oldest_queued_job_age_seconds",
			"How long the oldest queued job has waited for a copy slot; 0 when none waits.",
			nil, nil),
		overdue: prometheus.NewDesc(namespace+"_copy_overdue_seconds",
			"By destination region, how long the copy furthest past its expected end (when ECS started it plus the route's learned copy time for its size) has run over it; 0 when none has.",
			[]string{"region"}, nil),
	}
}

func (c *jobCollector) set(f func() JobStats) {
	c.mu.Lock()
	c.source = f
	c.mu.Unlock()
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
	ch <- c.overdue
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f := c.source
	c.mu.Unlock()
	var st JobStats
	if f != nil {
		st = f()
	}
	// Duplicate label sets would make the whole scrape fail; sum them.
	type key struct {
		state          job.State
		region, policy string
	}
	sums := map[key]int{}
	var order []key
	for _, jc := range st.Counts {
		k := key{jc.State, jc.Region, jc.Policy}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += jc.Count
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(sums[k]), stateLabel(k.state), k.region, k.policy)
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, max(st.OldestQueuedAge, 0).Seconds())
	over := map[string]time.Duration{}
	if c.regions != nil {
		for _, r := range c.regions() {
			over[r] = 0
		}
	}
	for r, d := range st.Overdue {
		over[r] = max(over[r], d, 0)
	}
	for r, d := range over {
		ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, d.Seconds(), r)
	}
}
