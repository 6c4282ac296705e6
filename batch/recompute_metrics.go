package batch

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// recomputeMetrics are the recompute job's Prometheus series.
type recomputeMetrics struct {
	hours     *prometheus.CounterVec   // view: hours recomputed
	rows      *prometheus.CounterVec   // view: raw rows read (after overlap and id dedup)
	misplaced *prometheus.CounterVec   // view: raw rows outside their file's hour (skipped)
	hourSec   *prometheus.HistogramVec // view: seconds to recompute one hour
	lag       *prometheus.GaugeVec     // view: now − B, seconds
}

func newRecomputeMetrics(reg prometheus.Registerer) (*recomputeMetrics, error) {
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
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lambdalake_boundary_lag_seconds",
			Help: "Now minus the view's boundary B: how far behind wall time batch coverage ends."}, []string{"view"}),
	}
	for _, c := range []prometheus.Collector{m.hours, m.rows, m.misplaced, m.hourSec, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("batch: register recompute metrics (one recomputer per registry): %w", err)
		}
	}
	return m, nil
}
