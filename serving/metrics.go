package serving

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/internal/prom"
)

// apiMetrics are the query path's own counters.
type apiMetrics struct {
	shared     prometheus.Counter
	cacheHits  prometheus.Counter
	cacheStale prometheus.Counter
	compute    prometheus.Histogram
	waiting    prometheus.Gauge
	accepted   prometheus.Counter
	rejected   prometheus.Counter
	// refused counts requests turned away to protect the server, by
	// reason: rate (a token over its rate), token_slots (over its share of
	// concurrent queries), server_slots (all query slots taken), cold
	// (raw-lake computations full).
	refused *prometheus.CounterVec
}

// Reasons of lambdalake_serving_refused_total.
const (
	refusedRate        = "rate"
	refusedTokenSlots  = "token_slots"
	refusedServerSlots = "server_slots"
	refusedCold        = "cold"
)

// httpMetrics are per-route request counts and latencies.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newAPIMetrics(reg prometheus.Registerer) (*apiMetrics, error) {
	var m apiMetrics
	var err error
	for _, x := range []struct {
		dst  *prometheus.Counter
		name string
		help string
	}{
		{&m.shared, "lambdalake_serving_singleflight_shared_total", "Query answers shared with an identical concurrent query instead of computed again."},
		{&m.cacheHits, "lambdalake_serving_cache_hits_total", "Query answers served from the short answer cache."},
		{&m.cacheStale, "lambdalake_serving_cache_stale_total", "Query answers served from the cache past cache_ttl while a background refresh ran."},
		{&m.accepted, "lambdalake_serving_events_accepted_total", "Events API lines produced to Kafka."},
		{&m.rejected, "lambdalake_serving_events_rejected_total", "Events API lines rejected by the schema."},
	} {
		if *x.dst, err = prom.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: x.name, Help: x.help})); err != nil {
			return nil, err
		}
	}
	if m.refused, err = prom.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lambdalake_serving_refused_total", Help: "Requests refused to protect the server, by reason (rate, token_slots, server_slots, cold).",
	}, []string{"reason"})); err != nil {
		return nil, err
	}
	if m.waiting, err = prom.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lambdalake_serving_queries_waiting", Help: "Query requests waiting for a computation of their answer (their own or one they share).",
	})); err != nil {
		return nil, err
	}
	if m.compute, err = prom.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "lambdalake_serving_compute_seconds", Help: "Time to compute and encode one query answer (cache misses and refreshes).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})); err != nil {
		return nil, err
	}
	return &m, nil
}

// registerCacheMetrics exports the counters of the serving caches, by
// cache: answers (encoded answers), rollups (batch hours rolled up to a
// query's shape) and cubes (batch hours indexed by dimension values). A
// cube miss builds a cube from the hour's view rows, which is what a
// dashboard with many shapes pays for.
func registerCacheMetrics(reg prometheus.Registerer, caches map[string]func() cacheStats) error {
	for name, stats := range caches {
		labels := prometheus.Labels{"cache": name}
		for _, c := range []prometheus.Collector{
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lambdalake_serving_cache_lookups_total", Help: "Lookups in a serving cache, by cache and result (hit: the entry was there).", ConstLabels: prometheus.Labels{"cache": name, "result": "hit"}},
				func() float64 { return float64(stats().hits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lambdalake_serving_cache_lookups_total", Help: "Lookups in a serving cache, by cache and result (hit: the entry was there).", ConstLabels: prometheus.Labels{"cache": name, "result": "miss"}},
				func() float64 { return float64(stats().misses) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lambdalake_serving_cache_evictions_total", Help: "Entries a serving cache dropped to stay within its bytes, by cache.", ConstLabels: labels},
				func() float64 { return float64(stats().evictions) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lambdalake_serving_cache_bytes", Help: "Bytes a serving cache holds by its own accounting, by cache.", ConstLabels: labels},
				func() float64 { return float64(stats().bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lambdalake_serving_cache_entries", Help: "Entries a serving cache holds, by cache.", ConstLabels: labels},
				func() float64 { return float64(stats().entries) }),
		} {
			if _, err := prom.Register(reg, c); err != nil {
				return err
			}
		}
	}
	return nil
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	req, err := prom.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lambdalake_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"}))
	if err != nil {
		return nil, err
	}
	lat, err := prom.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lambdalake_http_request_seconds", Help: "HTTP request latency by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"route"}))
	if err != nil {
		return nil, err
	}
	return &httpMetrics{requests: req, latency: lat}, nil
}

// statusWriter remembers the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

var _ http.ResponseWriter = (*statusWriter)(nil)

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times requests by route pattern (not path, so a
// view name or a scanner's random paths do not explode the label set).
func (m *httpMetrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		route := r.Pattern // set by the ServeMux on this request
		if route == "" || route == "/" {
			route = "other"
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
