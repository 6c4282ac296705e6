// Package prom registers lambdalake's Prometheus collectors. Every role
// (speed, compact, jobs, serving) registers its metrics when it is built,
// and several of them may be built in one process (`lambdalake all`, `dev`,
// tests): the second registration of a metric reuses the first collector
// rather than failing, so both count into the one series /metrics shows.
package prom

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the collector of the same
// description registered before. A different collector under the same name
// (another type, labels or help) is an error, not silently shared.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if old, ok := are.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("prom: register metric: %w", err)
}
