package jobs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/internal/prom"
)

type metrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	items    *prometheus.CounterVec
	running  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_job_runs_total", Help: "Job runs by outcome (ok, failed, lost_lease, stopped).",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambdalake_job_duration_seconds", Help: "Duration of job runs.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"job"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_job_items_total", Help: "Items (hours, files) finished by job runs.",
		}, []string{"job"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdalake_job_running", Help: "1 while this runner runs the job.",
		}, []string{"job"}),
	}
	var err error
	if m.runs, err = prom.Register(reg, m.runs); err != nil {
		return nil, err
	}
	if m.duration, err = prom.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.items, err = prom.Register(reg, m.items); err != nil {
		return nil, err
	}
	if m.running, err = prom.Register(reg, m.running); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(r Record) {
	m.runs.WithLabelValues(r.Job, r.Outcome).Inc()
	m.duration.WithLabelValues(r.Job).Observe(r.End.Sub(r.Start).Seconds())
	m.items.WithLabelValues(r.Job).Add(float64(r.Items))
}
