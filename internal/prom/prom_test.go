package prom

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "lambdalake_test_total", Help: "A test counter."}
	a, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	a.Inc()
	b.Inc()
	if got := testutil.ToFloat64(a); got != 2 || a != b {
		t.Errorf("the second registration did not reuse the first collector: %v", got)
	}
	vec, err := Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_vec_total", Help: "h"}, []string{"view"}))
	if err != nil {
		t.Fatal(err)
	}
	vec2, err := Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_vec_total", Help: "h"}, []string{"view"}))
	if err != nil || vec2 != vec {
		t.Errorf("vec reuse: %v", err)
	}

	// Same name, different labels: a conflict, never a shared series.
	if _, err := Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_test_total", Help: "A test counter."}, []string{"x"})); err == nil {
		t.Error("a metric with another label set under a registered name was accepted")
	}
	// Same description as a collector of another Go type: refused too.
	if _, err := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "lambdalake_test_total", Help: "A test counter."})); err == nil {
		t.Error("a gauge under a counter's name was accepted")
	}
}
