package speed

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/internal/prom"
)

// Skip reasons, the values of the "reason" label of
// lambdalake_speed_skipped_total.
const (
	SkipLate      = "late"      // bucket already past hot_retention
	SkipFuture    = "future"    // not admitted: more than the schema's max_future ahead of now (schemas.Future)
	SkipExpired   = "expired"   // not admitted: in an hour sealed by the raw lake's retention (schemas.Expired)
	SkipBoundary  = "boundary"  // bucket before the view's boundary B (batch owns it)
	SkipMalformed = "malformed" // not decodable with the schema (batch keeps it)
	SkipRejected  = "rejected"  // accepted, but Redis rejected its flush for a deterministic reason (skipped)
	SkipDuplicate = "duplicate" // a copy of an event its partition applied within the schema's dedup_window (schemas.SameEvent)
)

type metrics struct {
	events      *prometheus.CounterVec   // topic
	accepted    *prometheus.CounterVec   // view: events taken into pending windows
	skipped     *prometheus.CounterVec   // view, reason
	lag         *prometheus.GaugeVec     // topic, partition
	position    *prometheus.GaugeVec     // topic, partition
	flushCells  *prometheus.HistogramVec // view
	flushTime   *prometheus.HistogramVec // view
	redisErrors prometheus.Counter
	conflicts   *prometheus.CounterVec // view
	rejected    *prometheus.CounterVec // view
	overflowed  *prometheus.CounterVec // view
	uniqErrors  *prometheus.CounterVec // view

	// De-duplication windows (dedup.go).
	dedupBytes        *prometheus.GaugeVec   // topic, partition
	dedupIDs          *prometheus.GaugeVec   // topic, partition
	dedupStart        *prometheus.GaugeVec   // topic, partition
	dedupBound        prometheus.Gauge       // bytes, the whole process
	dedupShrunk       *prometheus.CounterVec // topic
	dedupUnremembered *prometheus.CounterVec // topic
	dedupReplayed     *prometheus.CounterVec // topic
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_events_total", Help: "Kafka records consumed by the speed layer.",
		}, []string{"topic"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_accepted_events_total", Help: "Events taken into a view's pending windows (not skipped); Redis gets them at the next flush.",
		}, []string{"view"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_skipped_total", Help: "Records a view skipped, by reason (malformed, future, expired, duplicate, late, boundary, rejected).",
		}, []string{"view", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdalake_speed_lag", Help: "Records between the last one consumed and the partition's end.",
		}, []string{"topic", "partition"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdalake_speed_read_offset", Help: "Next offset a partition loop reads; minus the stored offset, what it holds unapplied.",
		}, []string{"topic", "partition"}),
		flushCells: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambdalake_speed_flush_cells", Help: "(bucket, dimensions) cells plus distinct uniq values per flush.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"view"}),
		flushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambdalake_speed_flush_seconds", Help: "Time to apply one flush to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"view"}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lambdalake_speed_redis_errors_total", Help: "Failed Redis calls (each is retried with backoff).",
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_offset_conflicts_total", Help: "Flushes refused because the stored offset had moved (replay, rebalance or rebuild).",
		}, []string{"view"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_rejected_flushes_total", Help: "Flushes Redis refused for a deterministic reason (not retried: skipped, their records counted as skipped{reason=rejected}).",
		}, []string{"view"}),
		overflowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_overflowed_sums_total", Help: "Sum cells that overflowed their type and are stored as overflowed (schemas.IntSum/FloatSum).",
		}, []string{"view"}),
		uniqErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_uniq_errors_total", Help: "PFADDs Redis refused (a uniq key of another type); the rest of their flush is applied.",
		}, []string{"view"}),
		dedupBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdalake_speed_dedup_bytes", Help: "Memory a partition's de-duplication window holds (fingerprint tables).",
		}, []string{"topic", "partition"}),
		dedupIDs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdalake_speed_dedup_ids", Help: "Ids a partition's de-duplication window remembers.",
		}, []string{"topic", "partition"}),
		dedupStart: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdalake_speed_dedup_window_start_seconds", Help: "Start (Unix s) of the oldest event hour a partition's de-duplication window covers; later than now - dedup_window, floored to the hour, once the memory bound shrank it.",
		}, []string{"topic", "partition"}),
		dedupBound: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdalake_speed_dedup_max_bytes", Help: "speed.dedup_max_bytes: the bound on every de-duplication window of the process together.",
		}),
		dedupShrunk: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_dedup_shrunk_hours_total", Help: "Event hours a de-duplication window dropped (oldest first) to stay within speed.dedup_max_bytes.",
		}, []string{"topic"}),
		dedupUnremembered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_dedup_unremembered_total", Help: "Ids not remembered because the window's memory bound left no room even without its older hours (their copies are counted).",
		}, []string{"topic"}),
		dedupReplayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_dedup_replayed_total", Help: "Records read back from Kafka, without applying them, to rebuild de-duplication windows after a (re)assignment.",
		}, []string{"topic"}),
	}
	var err error
	if m.events, err = prom.Register(reg, m.events); err != nil {
		return nil, err
	}
	if m.accepted, err = prom.Register(reg, m.accepted); err != nil {
		return nil, err
	}
	if m.skipped, err = prom.Register(reg, m.skipped); err != nil {
		return nil, err
	}
	if m.lag, err = prom.Register(reg, m.lag); err != nil {
		return nil, err
	}
	if m.position, err = prom.Register(reg, m.position); err != nil {
		return nil, err
	}
	if m.flushCells, err = prom.Register(reg, m.flushCells); err != nil {
		return nil, err
	}
	if m.flushTime, err = prom.Register(reg, m.flushTime); err != nil {
		return nil, err
	}
	if m.redisErrors, err = prom.Register(reg, m.redisErrors); err != nil {
		return nil, err
	}
	if m.conflicts, err = prom.Register(reg, m.conflicts); err != nil {
		return nil, err
	}
	if m.rejected, err = prom.Register(reg, m.rejected); err != nil {
		return nil, err
	}
	if m.overflowed, err = prom.Register(reg, m.overflowed); err != nil {
		return nil, err
	}
	if m.uniqErrors, err = prom.Register(reg, m.uniqErrors); err != nil {
		return nil, err
	}
	if m.dedupBytes, err = prom.Register(reg, m.dedupBytes); err != nil {
		return nil, err
	}
	if m.dedupIDs, err = prom.Register(reg, m.dedupIDs); err != nil {
		return nil, err
	}
	if m.dedupStart, err = prom.Register(reg, m.dedupStart); err != nil {
		return nil, err
	}
	if m.dedupBound, err = prom.Register(reg, m.dedupBound); err != nil {
		return nil, err
	}
	if m.dedupShrunk, err = prom.Register(reg, m.dedupShrunk); err != nil {
		return nil, err
	}
	if m.dedupUnremembered, err = prom.Register(reg, m.dedupUnremembered); err != nil {
		return nil, err
	}
	if m.dedupReplayed, err = prom.Register(reg, m.dedupReplayed); err != nil {
		return nil, err
	}
	return m, nil
}
