package compact

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/internal/prom"
)

// compactMetrics are the compactor's Prometheus series. Rates (rows/s,
// bytes/s) are the rate() of the counters.
type compactMetrics struct {
	rows        *prometheus.CounterVec // schema
	bytes       *prometheus.CounterVec // schema: Parquet bytes uploaded
	files       *prometheus.CounterVec // schema, kind=raw|deadletter
	deadletters *prometheus.CounterVec // schema, reason=malformed|future|expired
	dirty       *prometheus.CounterVec // schema: late records in closed hours
	flushSec    prometheus.Histogram
	flushErrors prometheus.Counter
	fenced      prometheus.Counter   // checkpoint writes refused: another compactor owns the partition now
	lag         *prometheus.GaugeVec // topic, partition
	watermark   *prometheus.GaugeVec // topic, partition: Unix seconds
	stored      *prometheus.GaugeVec // topic, partition: the checkpoint's next offset
	buffered    prometheus.GaugeFunc
	// waiting is time partitions spent not reading because a flush was
	// still being written (one in flight per partition) or the budget
	// was reached: the backpressure an S3 outage turns into.
	waiting *prometheus.CounterVec // reason=flusher|budget
}

func newCompactMetrics(reg prometheus.Registerer, b *budget) (*compactMetrics, error) {
	m := &compactMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_compact_rows_total",
			Help: "Rows written to raw lake files."}, []string{"schema"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_compact_bytes_total",
			Help: "Parquet bytes uploaded to the raw lake (dead letters included)."}, []string{"schema"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_compact_files_total",
			Help: "Files written, by kind (raw, deadletter)."}, []string{"schema", "kind"}),
		deadletters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_compact_deadletters_total",
			Help: "Records written to deadletter/ instead of a raw file, by reason (malformed, future, expired)."}, []string{"schema", "reason"}),
		dirty: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_compact_dirty_hours_total",
			Help: "Dirty markers written for late records in closed hours."}, []string{"schema"}),
		flushSec: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lambdalake_compact_flush_seconds",
			Help: "Time from cut to checkpoint of one partition flush.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalake_compact_flush_errors_total",
			Help: "Failed lake writes during flushes (each is retried)."}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalake_compact_checkpoints_refused_total",
			Help: "Checkpoint writes refused because another compactor wrote the checkpoint since (this one lost the partition)."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lambdalake_compact_lag",
			Help: "Records in Kafka not yet consumed by the compactor."}, []string{"topic", "partition"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lambdalake_compact_watermark_seconds",
			Help: "Published event-time watermark of a partition, Unix seconds."}, []string{"topic", "partition"}),
		stored: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lambdalake_compact_stored_offset",
			Help: "Next offset of a partition's last checkpoint: every record below it is in the lake."}, []string{"topic", "partition"}),
		waiting: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalake_compact_backpressure_seconds_total",
			Help: "Time partitions waited instead of reading: on their flusher or on the memory budget."}, []string{"reason"}),
		buffered: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lambdalake_compact_memory_bytes",
			Help: "Bytes held against compact.budget (buffered and in flight)."}, func() float64 { return float64(b.used()) }),
	}
	// Several compactors may share a registry (tests, `all`): they count
	// into the same series (internal/prom). The memory gauge reads the
	// first compactor's budget then; one compactor per process is the
	// deployment.
	var err error
	if m.rows, err = prom.Register(reg, m.rows); err != nil {
		return nil, err
	}
	if m.bytes, err = prom.Register(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.files, err = prom.Register(reg, m.files); err != nil {
		return nil, err
	}
	if m.deadletters, err = prom.Register(reg, m.deadletters); err != nil {
		return nil, err
	}
	if m.dirty, err = prom.Register(reg, m.dirty); err != nil {
		return nil, err
	}
	if m.flushSec, err = prom.Register(reg, m.flushSec); err != nil {
		return nil, err
	}
	if m.flushErrors, err = prom.Register(reg, m.flushErrors); err != nil {
		return nil, err
	}
	if m.fenced, err = prom.Register(reg, m.fenced); err != nil {
		return nil, err
	}
	if m.lag, err = prom.Register(reg, m.lag); err != nil {
		return nil, err
	}
	if m.watermark, err = prom.Register(reg, m.watermark); err != nil {
		return nil, err
	}
	if m.stored, err = prom.Register(reg, m.stored); err != nil {
		return nil, err
	}
	if m.buffered, err = prom.Register(reg, m.buffered); err != nil {
		return nil, err
	}
	if m.waiting, err = prom.Register(reg, m.waiting); err != nil {
		return nil, err
	}
	return m, nil
}
