package recompute

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/internal/prom"
)

// recomputeMetrics are the recompute job's Prometheus series.
type recomputeMetrics struct {
	hours     *prometheus.CounterVec   // view: hours recomputed
	rows      *prometheus.CounterVec   // view: raw rows read (after overlap and id dedup)
	misplaced *prometheus.CounterVec   // view: raw rows outside their file's hour (skipped)
	hourSec   *prometheus.HistogramVec // view: seconds to recompute one hour
	ahead     *prometheus.CounterVec   // view: runs that found B past the wall clock
	merges    *prometheus.CounterVec   // view: merges into _state.json retried (a shared run)
	lag       *lagCollector            // view: now − B, seconds, computed at scrape
}

var _ prometheus.Collector = (*lagCollector)(nil)

// lagCollector reports now − B per view when scraped, so the lag keeps
// growing between runs when recompute falls behind.
type lagCollector struct {
	desc *prometheus.Desc
	now  func() time.Time
	mu   sync.Mutex
	b    map[string]time.Time
}

func (c *lagCollector) set(view string, b time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b[view] = b
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for view, b := range c.b {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, now.Sub(b).Seconds(), view)
	}
}

func newRecomputeMetrics(reg prometheus.Registerer, now func() time.Time) (*recomputeMetrics, error) {
	m := &recomputeMetrics{
		hours: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_recompute_hours_total",
			Help: "View hours recomputed."}, []string{"view"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_recompute_rows_read_total",
			Help: "Raw rows aggregated into view hours (after overlap and duplicate-id drops)."}, []string{"view"}),
		misplaced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_recompute_misplaced_rows_total",
			Help: "Raw rows whose event time lies outside their file's hour; skipped."}, []string{"view"}),
		hourSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lambdalake_recompute_hour_seconds",
			Help: "Seconds to recompute one view hour (read, aggregate, write).", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)},
			[]string{"view"}),
		ahead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_recompute_boundary_ahead_total",
			Help: "Recompute runs that found the view's B past the wall clock (left as it is: run `lambdalake batch repair-boundary`)."}, []string{"view"}),
		merges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_recompute_state_merge_retries_total",
			Help: "Merges into _state.json retried because another runner of a shared run merged first."}, []string{"view"}),
		lag: &lagCollector{now: now, b: map[string]time.Time{}, desc: prometheus.NewDesc("lambdalake_boundary_lag_seconds",
			"Now minus the view's boundary B: how far behind wall time batch coverage ends.", []string{"view"}, nil)},
	}
	// Several recomputers may share a registry (the jobs' and a command's,
	// tests): they count into the same series (internal/prom).
	var err error
	if m.hours, err = prom.Register(reg, m.hours); err != nil {
		return nil, err
	}
	if m.rows, err = prom.Register(reg, m.rows); err != nil {
		return nil, err
	}
	if m.misplaced, err = prom.Register(reg, m.misplaced); err != nil {
		return nil, err
	}
	if m.hourSec, err = prom.Register(reg, m.hourSec); err != nil {
		return nil, err
	}
	if m.ahead, err = prom.Register(reg, m.ahead); err != nil {
		return nil, err
	}
	if m.merges, err = prom.Register(reg, m.merges); err != nil {
		return nil, err
	}
	if m.lag, err = prom.Register(reg, m.lag); err != nil {
		return nil, err
	}
	return m, nil
}
