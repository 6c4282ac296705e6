package speed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/schemas"
)

// Config configures a Worker.
type Config struct {
	Brokers []string
	Group   string // Kafka consumer group (partition assignment only; offsets live in Redis)
	// Views to maintain. The worker consumes the topics of their schemas and
	// feeds every event to every view on its schema.
	Views []*schemas.View
	Redis redis.UniversalClient

	FlushInterval  time.Duration // default 200ms
	MaxPending     int           // flush early above this many cells + uniq values per partition; default 100000
	SessionTimeout time.Duration // consumer group session; default 10s
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
	Now            func() time.Time // wall clock, for late/future skips and TTLs
}

// topicViews is what one topic feeds: its schema and the views over it.
type topicViews struct {
	topic  string
	schema *schemas.Schema
	views  []*schemas.View
	plans  []*plan
}

// Worker consumes Kafka and keeps the views' hot windows in Redis.
type Worker struct {
	cfg    Config
	topics map[string]*topicViews
	m      *metrics
	log    *slog.Logger
}

// New checks cfg and returns a worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("speed: no Kafka brokers")
	}
	if cfg.Group == "" {
		return nil, errors.New("speed: no consumer group")
	}
	if cfg.Redis == nil {
		return nil, errors.New("speed: no Redis client")
	}
	if len(cfg.Views) == 0 {
		return nil, errors.New("speed: no views")
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100_000
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.DefaultRegisterer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, topics: map[string]*topicViews{}, m: m, log: cfg.Logger.With("role", "speed")}
	for _, v := range cfg.Views {
		p, err := newPlan(v)
		if err != nil {
			return nil, err
		}
		tv := w.topics[v.Schema.Topic]
		if tv == nil {
			tv = &topicViews{topic: v.Schema.Topic, schema: v.Schema}
			w.topics[v.Schema.Topic] = tv
		}
		if tv.schema != v.Schema {
			return nil, fmt.Errorf("speed: topic %s carries two schemas (%s, %s)", tv.topic, tv.schema.Name, v.Schema.Name)
		}
		tv.views = append(tv.views, v)
		tv.plans = append(tv.plans, p)
	}
	return w, nil
}

// Run consumes until ctx ends, then flushes what it holds and returns nil.
// Partitions are assigned by the consumer group; each assigned partition is
// read from the offsets stored in Redis, whatever Kafka has committed.
func (w *Worker) Run(ctx context.Context) error {
	for _, tv := range w.topics {
		for _, v := range tv.views {
			reset, err := checkFingerprint(ctx, ResetConfig{Brokers: w.cfg.Brokers, Redis: w.cfg.Redis, View: v, Now: w.cfg.Now()})
			if err != nil {
				return err
			}
			if reset {
				w.log.Info("view definition changed: hot windows reset, replaying from now - hot_retention", "view", v.Name)
			}
		}
	}
	topics := make([]string, 0, len(w.topics))
	for t := range w.topics {
		topics = append(topics, t)
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: w.cfg.Group, Brokers: w.cfg.Brokers, Topics: topics,
		SessionTimeout: w.cfg.SessionTimeout, RebalanceTimeout: w.cfg.SessionTimeout,
		HeartbeatInterval: w.cfg.SessionTimeout / 5, JoinGroupBackoff: time.Second,
		WatchPartitionChanges: true, PartitionWatchInterval: 10 * time.Second,
		Timeout: 10 * time.Second, StartOffset: kafka.FirstOffset,
	})
	if err != nil {
		return fmt.Errorf("speed: consumer group %s: %w", w.cfg.Group, err)
	}
	// Close ends the current generation and waits for its partition loops,
	// which flush on the way out.
	defer cg.Close()
	for attempt := 0; ; {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Warn("consumer group: next generation failed; retrying", "group", w.cfg.Group, "err", err)
			if !sleep(ctx, backoff(attempt)) {
				return nil
			}
			attempt++
			continue
		}
		attempt = 0
		for topic, parts := range gen.Assignments {
			tv := w.topics[topic]
			for _, p := range parts {
				gen.Start(func(gctx context.Context) { w.consume(gctx, gen, tv, p.ID) })
			}
		}
	}
}

// PartitionReaderConfig is how the worker reads one partition (exported so
// the benchmark's raw-consume baseline reads the same way).
func PartitionReaderConfig(brokers []string, topic string, partition int) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond,
		QueueCapacity: 2000, ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
	}
}

// partition is the state of one assigned partition: one aggregator per view
// and, per view, the next offset that view still has to apply.
type partition struct {
	w          *Worker
	tv         *topicViews
	id         int
	log        *slog.Logger
	aggs       []*aggregator
	next       []int64
	boundary   []int64 // µs; math.MinInt64 when the view has none
	applied    []prometheus.Counter
	skipped    []map[string]prometheus.Counter
	lastCommit time.Time
	lastCheck  time.Time
}

// consume runs one partition until the generation ends, then flushes.
func (w *Worker) consume(ctx context.Context, gen *kafka.Generation, tv *topicViews, id int) {
	p := &partition{w: w, tv: tv, id: id, log: w.log.With("topic", tv.topic, "partition", id)}
	for i, pl := range tv.plans {
		p.aggs = append(p.aggs, newAggregator(pl))
		v := tv.views[i].Name
		p.applied = append(p.applied, w.m.applied.WithLabelValues(v))
		sk := map[string]prometheus.Counter{}
		for _, r := range []string{SkipLate, SkipFuture, SkipBoundary, SkipMalformed} {
			sk[r] = w.m.skipped.WithLabelValues(v, r)
		}
		p.skipped = append(p.skipped, sk)
	}
	p.boundary = make([]int64, len(tv.views))
	if !p.load(ctx) || !p.refreshBoundaries(ctx) {
		return
	}
	r := kafka.NewReader(PartitionReaderConfig(w.cfg.Brokers, tv.topic, id))
	defer r.Close()
	pos := p.minNext()
	if err := r.SetOffset(pos); err != nil {
		p.log.Error("seek failed", "offset", pos, "err", err)
		return
	}
	p.log.Info("partition assigned", "offset", pos)
	events := w.m.events.WithLabelValues(tv.topic)
	lag := w.m.lag.WithLabelValues(tv.topic, strconv.Itoa(id))
	dec := schemas.NewDecoder(tv.schema)
	var row schemas.Row
	late := make([]int64, len(tv.views))
	future := make([]int64, len(tv.views))
	for {
		now := w.cfg.Now().UnixMicro()
		for i, v := range tv.views {
			// A bucket whose keys would expire at once is late.
			late[i] = now - v.HotRetention.Microseconds() - v.Granularity.Microseconds()
			future[i] = now + v.HotRetention.Microseconds()
		}
		fctx, cancel := context.WithTimeout(ctx, w.cfg.FlushInterval)
		var n int64
		for {
			m, err := r.FetchMessage(fctx)
			if err != nil {
				if fctx.Err() == nil {
					p.log.Warn("fetch failed", "err", err)
					sleep(fctx, 100*time.Millisecond)
				}
				break
			}
			n++
			p.handle(&m, dec, &row, late, future)
			pos = m.Offset + 1
			lag.Set(float64(m.HighWaterMark - pos))
			if p.pending() >= w.cfg.MaxPending {
				break
			}
		}
		cancel()
		events.Add(float64(n))

		done := ctx.Err() != nil
		flushCtx := ctx
		if done {
			// The generation (or the process) is ending: flush what is held
			// with a deadline of its own.
			var c context.CancelFunc
			flushCtx, c = context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
		}
		err := p.flush(flushCtx, pos)
		var conflict *errConflict
		switch {
		case errors.As(err, &conflict):
			p.log.Warn("stored offset moved; reloading and re-seeking", "err", err)
			for _, a := range p.aggs {
				a.reset()
			}
			if done || !p.load(ctx) {
				return
			}
			pos = p.minNext()
			if err := r.SetOffset(pos); err != nil {
				p.log.Error("seek failed", "offset", pos, "err", err)
				return
			}
		case err != nil:
			if done {
				p.log.Error("final flush failed; the next owner replays from the stored offsets", "err", err)
			}
		}
		if done {
			return
		}
		if time.Since(p.lastCommit) > time.Second {
			// Advisory: the stored offsets are the truth; this only keeps
			// Kafka tooling's lag figures meaningful.
			if err := gen.CommitOffsets(map[string]map[int]int64{tv.topic: {id: p.minNext()}}); err != nil {
				p.log.Debug("advisory commit failed", "err", err)
			}
			p.lastCommit = time.Now()
		}
		if !p.refreshBoundaries(ctx) {
			return
		}
		if time.Since(p.lastCheck) > time.Second {
			// An idle partition never flushes, so it would not notice a
			// rebuild moving its offsets; look at them now and then.
			p.lastCheck = time.Now()
			if moved, err := p.offsetsMoved(ctx); err != nil {
				p.log.Warn("checking stored offsets failed", "err", err)
			} else if moved {
				p.log.Info("stored offsets moved (rebuild?); reloading and re-seeking")
				for _, a := range p.aggs {
					a.reset()
				}
				if !p.load(ctx) {
					return
				}
				pos = p.minNext()
				if err := r.SetOffset(pos); err != nil {
					p.log.Error("seek failed", "offset", pos, "err", err)
					return
				}
			}
		}
	}
}

// offsetsMoved reports whether any view's stored offset differs from the one
// this loop holds. Called right after a flush, when nothing is pending.
func (p *partition) offsetsMoved(ctx context.Context) (bool, error) {
	field := offsetField(p.tv.topic, p.id)
	for i, v := range p.tv.views {
		s, err := p.w.cfg.Redis.HGet(ctx, OffsetsKey(v.Name), field).Result()
		if errors.Is(err, redis.Nil) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("speed: read offset view=%s %s: %w", v.Name, field, err)
		}
		if s != strconv.FormatInt(p.next[i], 10) {
			return true, nil
		}
	}
	return false, nil
}

// handle decodes one record once and folds it into every view that has not
// applied its offset yet.
func (p *partition) handle(m *kafka.Message, dec *schemas.Decoder, row *schemas.Row, late, future []int64) {
	decoded, bad := false, false
	for i, a := range p.aggs {
		if m.Offset < p.next[i] {
			continue // this view applied it before a restart
		}
		if !decoded {
			bad = dec.Decode(m.Value, row) != nil
			decoded = true
		}
		if bad {
			p.skipped[i][SkipMalformed].Inc()
			continue
		}
		b := a.bucket(row)
		switch {
		case b <= late[i]:
			p.skipped[i][SkipLate].Inc()
		case b > future[i]:
			p.skipped[i][SkipFuture].Inc()
		case b < p.boundary[i]:
			p.skipped[i][SkipBoundary].Inc()
		default:
			a.add(row, b)
			p.applied[i].Inc()
		}
	}
}

func (p *partition) pending() int {
	n := 0
	for _, a := range p.aggs {
		n += a.size()
	}
	return n
}

func (p *partition) minNext() int64 {
	m := int64(math.MaxInt64)
	for _, n := range p.next {
		m = min(m, n)
	}
	return m
}

// flush applies each view's pending cells with the offsets up to pos. Redis
// errors are retried with backoff until ctx ends; meanwhile nothing is
// fetched (backpressure) and nothing unapplied is acknowledged.
func (p *partition) flush(ctx context.Context, pos int64) error {
	w := p.w
	for i, a := range p.aggs {
		if pos <= p.next[i] {
			continue
		}
		v := p.tv.views[i].Name
		start := time.Now()
		size := a.size()
		for attempt := 0; ; attempt++ {
			err := apply(ctx, w.cfg.Redis, a, p.tv.topic, p.id, p.next[i], pos, w.cfg.Now())
			if err == nil {
				break
			}
			var conflict *errConflict
			if errors.As(err, &conflict) {
				w.m.conflicts.WithLabelValues(v).Inc()
				return err
			}
			w.m.redisErrors.Inc()
			if ctx.Err() != nil {
				return err
			}
			p.log.Warn("flush failed; retrying", "view", v, "attempt", attempt+1, "err", err)
			if !sleep(ctx, backoff(attempt)) {
				return err
			}
		}
		w.m.flushCells.WithLabelValues(v).Observe(float64(size))
		w.m.flushTime.WithLabelValues(v).Observe(time.Since(start).Seconds())
		p.next[i] = pos
		a.reset()
	}
	return nil
}

// load reads the stored offsets, retrying Redis and Kafka errors and
// waiting out a rebuild. It returns false when ctx ends first.
func (p *partition) load(ctx context.Context) bool {
	for attempt := 0; ; attempt++ {
		next, err := loadOffsets(ctx, p.w.cfg.Redis, p.w.cfg.Brokers, p.tv.views, p.tv.topic, p.id, p.w.cfg.Now())
		if err == nil {
			p.next = next
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errRebuilding) {
			p.log.Info("waiting for a rebuild to finish", "err", err)
			attempt = 2 // poll about every half second
		} else {
			p.w.m.redisErrors.Inc()
			p.log.Warn("loading offsets failed; retrying", "err", err)
		}
		if !sleep(ctx, backoff(attempt)) {
			return false
		}
	}
}

// refreshBoundaries re-reads every view's boundary B (batch moves it a few
// times an hour; reading it each flush keeps replicas in step cheaply).
func (p *partition) refreshBoundaries(ctx context.Context) bool {
	for i, v := range p.tv.views {
		for attempt := 0; ; attempt++ {
			b, ok, err := Boundary(ctx, p.w.cfg.Redis, v.Name)
			if err == nil {
				p.boundary[i] = math.MinInt64
				if ok {
					p.boundary[i] = b.UnixMicro()
				}
				break
			}
			if ctx.Err() != nil {
				return false
			}
			p.w.m.redisErrors.Inc()
			p.log.Warn("reading boundary failed; retrying", "view", v.Name, "err", err)
			if !sleep(ctx, backoff(attempt)) {
				return false
			}
		}
	}
	return true
}

// backoff is 100ms doubling up to 5s.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
