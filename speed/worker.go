package speed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/backoff"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/stream"
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
	// DedupMaxBytes bounds the memory of the de-duplication windows of
	// every partition the worker holds together (schemas with a
	// dedup_window); default 256MiB.
	DedupMaxBytes int64
}

// topicViews is what one topic feeds: its schema and the views over it.
type topicViews struct {
	topic  string
	schema *schemas.Schema
	views  []*schemas.View
	plans  []*plan
}

// fields are the positions of the fields the views read (dimensions and
// metric fields) and the id when de-duplicating; the decoder converts only
// these, and checks the rest.
func (tv *topicViews) fields() []int {
	var out []int
	if tv.dedup() {
		out = append(out, tv.schema.FieldIndex(tv.schema.ID))
	}
	for _, p := range tv.plans {
		out = append(out, p.dimIdx...)
		for _, m := range p.metrics {
			if m.field >= 0 {
				out = append(out, m.field)
			}
		}
	}
	return out
}

// dedup reports whether the topic's partitions skip copies of events
// (schemas.NAME.dedup_window).
func (tv *topicViews) dedup() bool { return tv.schema.DedupWindow > 0 && tv.schema.ID != "" }

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
	if cfg.DedupMaxBytes <= 0 {
		cfg.DedupMaxBytes = 256 << 20
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	m.dedupBound.Set(float64(cfg.DedupMaxBytes))
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
			// Redis or Kafka not there yet: wait for them rather than exit.
			var reset bool
			err := backoff.Retry(ctx, backoff.Default, func(ctx context.Context) (err error) {
				reset, err = checkFingerprint(ctx, ResetConfig{Brokers: w.cfg.Brokers, Redis: w.cfg.Redis, View: v, Now: w.cfg.Now()})
				if errors.Is(err, errShards) {
					return backoff.Permanent(err) // a configuration error: say it and stop
				}
				return err
			}, func(_ int, err error) {
				w.m.redisErrors.Inc()
				w.log.Warn("checking the view's fingerprint failed; retrying", "view", v.Name, "err", err)
			})
			if errors.Is(err, errShards) {
				return err
			}
			if err != nil {
				return nil // ctx ended
			}
			if reset {
				w.log.Info("view definition, shard count or layout changed: hot windows reset, replaying from now - hot_retention",
					"view", v.Name, "shards", ShardCount(v))
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
	for {
		var gen *kafka.Generation
		err := backoff.Retry(ctx, backoff.Default, func(ctx context.Context) (err error) {
			gen, err = cg.Next(ctx)
			return err
		}, func(_ int, err error) {
			w.log.Warn("consumer group: next generation failed; retrying", "group", w.cfg.Group, "err", err)
		})
		if err != nil {
			return nil // ctx ended
		}
		// The dedup bound is shared evenly by the generation's partitions.
		held := 0
		for topic, parts := range gen.Assignments {
			if w.topics[topic].dedup() {
				held += len(parts)
			}
		}
		budget := w.cfg.DedupMaxBytes / int64(max(held, 1))
		for topic, parts := range gen.Assignments {
			if len(parts) > 0 {
				w.startTopic(gen, w.topics[topic], parts, budget)
			}
		}
	}
}

// topicRun is one generation's work on one topic: a loop per assigned
// partition that decodes and pre-aggregates, and one flusher that, every
// flush interval, takes what every partition holds and applies it per view
// in one script, so a cell touched by several partitions costs Redis once.
// Partitions keep consuming into a second set of aggregators while a flush
// is applied (double buffering); when that set is full too they wait
// (backpressure).
type topicRun struct {
	w        *Worker
	tv       *topicViews
	gen      *kafka.Generation
	parts    []*partition
	boundary []atomic.Int64 // per view, µs; math.MinInt64 when none
	// now is the clock (Unix µs) events are judged late or early by,
	// refreshed by the flusher every flush interval: reading the clock per
	// event costs more than a flush interval of staleness matters against
	// hot_retention.
	now     atomic.Int64
	kick    chan struct{} // a partition is full: flush now
	started chan struct{} // closed once the boundaries are known
	partsWG sync.WaitGroup
	log     *slog.Logger

	lastCommit, lastCheck time.Time
}

// partition is the state one partition loop shares with the flusher; mu
// guards every field below it.
type partition struct {
	id  int
	log *slog.Logger

	mu      sync.Mutex
	space   *sync.Cond    // signalled when the flusher takes the pending set or a reload is due
	aggs    []*aggregator // pending, per view
	spare   []*aggregator // handed back by the flusher after a flush
	from    []int64       // per view: start of the pending range (all below is applied or in flight)
	applied []int64       // per view: the stored offset as last known
	pos     int64         // next offset to read
	ready   bool          // offsets loaded and reader positioned
	reload  bool          // the flusher saw the stored offsets move: reload and re-seek
	cancel  context.CancelFunc
	events  int64 // consumed since the last flush
	// Per view, what happened to records since the last flush; added to
	// the Prometheus counters at each flush rather than per record, so the
	// partition loops do not contend on shared counters.
	counts []viewCounts
	// dedup remembers the ids applied within the schema's dedup_window;
	// nil when the schema does not de-duplicate.
	dedup *dedupWindow
}

type viewCounts struct{ accepted, late, future, expired, duplicate, boundary, malformed int64 }

func (w *Worker) startTopic(gen *kafka.Generation, tv *topicViews, assigned []kafka.PartitionAssignment, dedupBudget int64) {
	tr := &topicRun{w: w, tv: tv, gen: gen, boundary: make([]atomic.Int64, len(tv.views)),
		kick: make(chan struct{}, 1), started: make(chan struct{}), log: w.log.With("topic", tv.topic)}
	for _, a := range assigned {
		p := &partition{id: a.ID, log: tr.log.With("partition", a.ID), counts: make([]viewCounts, len(tv.views))}
		p.space = sync.NewCond(&p.mu)
		if tv.dedup() {
			p.dedup = newDedupWindow(tv.schema.DedupWindow, dedupBudget, p.log)
		}
		for _, pl := range tv.plans {
			p.aggs = append(p.aggs, newAggregator(pl))
			p.spare = append(p.spare, newAggregator(pl))
		}
		tr.parts = append(tr.parts, p)
	}
	// The flusher reads the boundaries first; the partition loops wait for
	// that (started) before judging any event.
	tr.partsWG.Add(len(tr.parts))
	gen.Start(tr.flushLoop)
	for _, p := range tr.parts {
		gen.Start(func(ctx context.Context) {
			defer tr.partsWG.Done()
			tr.consume(ctx, p)
		})
	}
}

// consume reads one partition until the generation ends.
func (tr *topicRun) consume(ctx context.Context, p *partition) {
	w := tr.w
	f := stream.NewFetcher(stream.FetcherConfig{Brokers: w.cfg.Brokers, Topic: tr.tv.topic, Partition: p.id,
		Offset: kafka.FirstOffset, OnError: func(err error) { p.log.Warn("fetch failed; retrying", "err", err) }})
	defer f.Close()
	s := tr.tv.schema
	dec := schemas.NewFieldDecoder(s, tr.tv.fields())
	var row schemas.Row
	buf := make([]byte, 0, 64<<10) // record values are read into it, not allocated
	lag := w.m.lag.WithLabelValues(tr.tv.topic, strconv.Itoa(p.id))
	position := w.m.position.WithLabelValues(tr.tv.topic, strconv.Itoa(p.id))
	// Reading a dedup window back needs only the id (and the time).
	var idDec *schemas.Decoder
	var key []byte
	if p.dedup != nil {
		idDec = schemas.NewFieldDecoder(s, []int{s.FieldIndex(s.ID)})
	}
	select {
	case <-tr.started:
	case <-ctx.Done():
		return
	}
	for ctx.Err() == nil {
		// (Re)load the stored offsets and seek to the lowest.
		next, ok := tr.load(ctx, p)
		if !ok {
			return
		}
		pos := slices.Min(next)
		// With de-duplication, the window is read back first: from the
		// records of its oldest hour up to pos, remembering their ids and
		// applying nothing (every view has applied them), so that the
		// first record applied is judged as the previous owner would have.
		// Every (re)load does it: a reload re-reads records whose ids the
		// window already took.
		start := pos
		if p.dedup != nil {
			var ok bool
			if start, ok = tr.readBackOffset(ctx, p); !ok {
				return
			}
			start = min(start, pos)
		}
		f.SetOffset(start)
		fctx, cancel := context.WithCancel(ctx)
		p.mu.Lock()
		for i := range p.aggs {
			p.aggs[i].reset()
		}
		p.from, p.applied, p.pos = next, slices.Clone(next), start
		p.ready, p.reload, p.cancel = true, false, cancel
		if p.dedup != nil {
			p.dedup.reset()
		}
		p.mu.Unlock()
		if p.dedup != nil {
			p.log.Info("partition assigned", "offset", pos, "dedup_read_back_from", start)
		} else {
			p.log.Info("partition assigned", "offset", pos)
		}
		readBack, readingBack := time.Now(), start < pos

		for {
			m, err := f.NextValue(fctx, buf) // fails only when fctx ends
			if err != nil {
				break // generation over, or a reload is due
			}
			if m.Offset < pos {
				// Reading the dedup window back: remember, never apply.
				p.mu.Lock()
				if p.reload || ctx.Err() != nil {
					p.mu.Unlock()
					break
				}
				if idDec.Decode(m.Bytes, &row) == nil && s.Admit(s.TimeMicros(&row), tr.now.Load()) == schemas.Admitted {
					key, _ = tr.remember(p, key, &row, tr.now.Load())
				}
				p.dedup.replayed++
				if m.Offset == pos-1 {
					readingBack = false
					p.log.Info("dedup window read back", "records", pos-start, "ids", p.dedup.ids, "bytes", p.dedup.bytes,
						"took", time.Since(readBack).Round(time.Millisecond))
				}
				p.mu.Unlock()
				buf = m.Bytes[:0]
				continue
			}
			if readingBack { // the records just before pos were not there to read
				readingBack = false
				p.log.Info("dedup window read back", "records", pos-start, "ids", p.dedup.ids, "bytes", p.dedup.bytes,
					"took", time.Since(readBack).Round(time.Millisecond))
			}
			p.mu.Lock()
			for p.size() >= w.cfg.MaxPending && !p.reload && ctx.Err() == nil {
				select {
				case tr.kick <- struct{}{}:
				default:
				}
				p.space.Wait()
			}
			if p.reload || ctx.Err() != nil {
				p.mu.Unlock()
				break
			}
			now := tr.now.Load()
			decoded, bad, dup := false, false, false
			verdict := schemas.Admitted
			if p.dedup != nil {
				// Every record passes the window, whichever views still
				// need it, so the window holds what the batch layer will
				// hold.
				bad = dec.Decode(m.Bytes, &row) != nil
				decoded = true
				if !bad {
					verdict = s.Admit(s.TimeMicros(&row), now)
					if verdict == schemas.Admitted {
						key, dup = tr.remember(p, key, &row, now)
					}
				}
			}
			for i, a := range p.aggs {
				if m.Offset < p.from[i] {
					continue // this view applied it before a restart
				}
				if !decoded {
					bad = dec.Decode(m.Bytes, &row) != nil
					decoded = true
					if !bad {
						// The admission rule both layers share comes
						// first: what the compactor dead-letters is
						// never counted here.
						verdict = tr.tv.schema.Admit(tr.tv.schema.TimeMicros(&row), now)
					}
				}
				c := &p.counts[i]
				switch {
				case bad:
					c.malformed++
					continue
				case verdict == schemas.Future:
					c.future++
					continue
				case verdict == schemas.Expired:
					c.expired++
					continue
				case dup:
					c.duplicate++
					continue
				}
				v := tr.tv.views[i]
				b := a.bucket(&row)
				switch {
				case b+v.Granularity.Microseconds()+v.HotRetention.Microseconds() <= now:
					c.late++ // its keys would expire at once
				case b < tr.boundary[i].Load():
					c.boundary++
				default:
					a.add(&row, b)
					c.accepted++
				}
			}
			p.pos = m.Offset + 1
			buf = m.Bytes[:0] // the decoder copied what it keeps
			p.events++
			p.mu.Unlock()
			lag.Set(float64(m.HighWaterMark - m.Offset - 1))
			position.Set(float64(m.Offset + 1))
		}
		cancel()
	}
}

func (p *partition) size() int {
	n := 0
	for _, a := range p.aggs {
		n += a.size()
	}
	return n
}

// load reads a partition's stored offsets, retrying Redis and Kafka errors
// and waiting out a rebuild. ok is false when ctx ends first.
func (tr *topicRun) load(ctx context.Context, p *partition) (next []int64, ok bool) {
	w := tr.w
	for failures := 0; ; {
		next, err := loadOffsets(ctx, w.cfg.Redis, w.cfg.Brokers, tr.tv.views, tr.tv.topic, p.id, w.cfg.Now())
		if err == nil {
			return next, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		var wait time.Duration
		switch {
		case errors.Is(err, errRebuilding):
			p.log.Info("waiting for a rebuild to finish", "err", err)
			wait = rebuildPoll
		case errors.Is(err, errFingerprint):
			p.log.Error("not feeding the view; restart this worker with the current config", "err", err)
			wait = backoff.Default.Max
		default:
			w.m.redisErrors.Inc()
			p.log.Warn("loading offsets failed; retrying", "err", err)
			wait = backoff.Default.Delay(failures)
			failures++
		}
		if !backoff.Sleep(ctx, wait) {
			return nil, false
		}
	}
}

// rebuildPoll is how often a partition waiting for a rebuild looks again.
const rebuildPoll = 500 * time.Millisecond

// flushLoop applies what the partitions hold every flush interval (or when
// one is full) until the generation ends; then, once every partition loop
// has stopped, it flushes the rest.
func (tr *topicRun) flushLoop(ctx context.Context) {
	w := tr.w
	tr.now.Store(w.cfg.Now().UnixMicro())
	if tr.refreshBoundaries(ctx) {
		close(tr.started)
	}
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, p := range tr.parts {
				p.mu.Lock()
				p.space.Broadcast()
				p.mu.Unlock()
			}
			tr.partsWG.Wait()
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := tr.flush(fctx); err != nil {
				tr.log.Error("final flush failed; the next owner replays from the stored offsets", "err", err)
			}
			cancel()
			for _, p := range tr.parts {
				if p.dedup != nil {
					tr.forgetDedupGauges(p) // the window's memory goes with the partition
				}
			}
			return
		case <-t.C:
		case <-tr.kick:
		}
		tr.now.Store(w.cfg.Now().UnixMicro())
		if err := tr.flush(ctx); err != nil && ctx.Err() == nil {
			tr.log.Warn("flush refused; partitions reload their offsets", "err", err)
		}
		tr.refreshBoundaries(ctx)
		if time.Since(tr.lastCheck) > time.Second {
			tr.lastCheck = time.Now()
			tr.checkOffsets(ctx)
		}
		if time.Since(tr.lastCommit) > time.Second {
			tr.lastCommit = time.Now()
			tr.commit()
		}
	}
}

// flush takes every ready partition's pending aggregators and applies them,
// per view, with their offset ranges. Redis errors are retried with backoff
// until ctx ends; meanwhile partitions fill their second set and then wait.
// On a conflict every partition is told to reload.
func (tr *topicRun) flush(ctx context.Context) error {
	batch := tr.take()
	defer tr.giveBack(batch)
	for i := range tr.tv.plans {
		if err := tr.applyView(ctx, i, batch); err != nil {
			return err
		}
	}
	return nil
}

// taken is what a flush took from one partition: its pending aggregators
// (per view) and the offset range they cover, per view [from[i], to).
type taken struct {
	p    *partition
	aggs []*aggregator
	from []int64
	to   int64
}

// take moves the pending aggregators of every ready partition into a flush,
// hands each its spare set to fill meanwhile, and adds what the partitions
// read since the last flush to the counters.
func (tr *topicRun) take() []taken {
	var batch []taken
	var events int64
	counts := make([]viewCounts, len(tr.tv.views))
	for _, p := range tr.parts {
		p.mu.Lock()
		if p.ready && !p.reload {
			batch = append(batch, taken{p: p, aggs: p.aggs, from: slices.Clone(p.from), to: p.pos})
			p.aggs, p.spare = p.spare, nil
			for i := range p.from {
				p.from[i] = max(p.from[i], p.pos)
			}
			p.space.Broadcast()
		}
		// Counted even for a partition about to reload: these records
		// were read, whatever becomes of them.
		events += p.events
		p.events = 0
		for i, c := range p.counts {
			counts[i].accepted += c.accepted
			counts[i].late += c.late
			counts[i].future += c.future
			counts[i].expired += c.expired
			counts[i].duplicate += c.duplicate
			counts[i].boundary += c.boundary
			counts[i].malformed += c.malformed
		}
		clear(p.counts)
		if d := p.dedup; d != nil {
			tr.reportDedup(p)
		}
		p.mu.Unlock()
	}
	m := tr.w.m
	m.events.WithLabelValues(tr.tv.topic).Add(float64(events))
	for i, v := range tr.tv.views {
		c := counts[i]
		m.accepted.WithLabelValues(v.Name).Add(float64(c.accepted))
		for _, r := range []struct {
			reason string
			n      int64
		}{{SkipLate, c.late}, {SkipFuture, c.future}, {SkipExpired, c.expired}, {SkipDuplicate, c.duplicate}, {SkipBoundary, c.boundary}, {SkipMalformed, c.malformed}} {
			m.skipped.WithLabelValues(v.Name, r.reason).Add(float64(r.n))
		}
	}
	return batch
}

// giveBack empties a flush's aggregators and returns them to their
// partitions as the spare set, applied or not: what was not applied is
// replayed from the stored offsets.
func (tr *topicRun) giveBack(batch []taken) {
	for _, t := range batch {
		for _, a := range t.aggs {
			a.reset()
		}
		t.p.mu.Lock()
		t.p.spare = t.aggs
		t.p.mu.Unlock()
	}
}

// applyView applies view i's part of a flush, one atomic step per shard
// (each shard's partitions, with their offsets), and records the
// partitions' new stored offsets. A conflict (the stored offsets moved)
// makes every partition reload and is returned at once.
func (tr *topicRun) applyView(ctx context.Context, i int, batch []taken) error {
	v := tr.tv.plans[i].view
	byShard := map[int]*shardFlush{}
	var order []*shardFlush
	for _, t := range batch {
		if t.to <= t.from[i] {
			continue
		}
		sh := PartitionShard(v, t.p.id)
		sf := byShard[sh.Index]
		if sf == nil {
			sf = &shardFlush{sh: sh}
			byShard[sh.Index] = sf
			order = append(order, sf)
		}
		sf.taken = append(sf.taken, t)
		sf.aggs = append(sf.aggs, t.aggs[i])
		sf.spans = append(sf.spans, span{field: offsetField(tr.tv.topic, t.p.id), from: t.from[i], to: t.to})
	}
	if len(order) == 1 {
		return tr.applyShard(ctx, i, order[0])
	}
	// Shards are independent atomic steps, on different Cluster nodes as
	// often as not: applied side by side, a flush takes as long as its
	// slowest shard, not their sum.
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for k, sf := range order {
		wg.Go(func() { errs[k] = tr.applyShard(ctx, i, sf) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// shardFlush is the part of a view's flush that goes to one shard.
type shardFlush struct {
	sh    Shard
	taken []taken
	aggs  []*aggregator
	spans []span
}

// applyShard applies one shard's part of view i's flush, retrying Redis
// errors until ctx ends. A flush Redis rejects for a deterministic reason
// (errRejected) is skipped: its offsets are moved past it with nothing
// written, so its records are counted zero times in the hot windows, never
// twice, and the partitions go on.
func (tr *topicRun) applyShard(ctx context.Context, i int, sf *shardFlush) error {
	w, pl := tr.w, tr.tv.plans[i]
	v := pl.view.Name
	size := 0
	var events int64
	for _, a := range sf.aggs {
		size += a.size()
		events += a.added
	}
	start := time.Now()
	var res applied
	try := func(aggs []*aggregator, rejectedIsFinal bool) error {
		return backoff.Retry(ctx, backoff.Default, func(ctx context.Context) error {
			var err error
			res, err = apply(ctx, w.cfg.Redis, pl, sf.sh, aggs, sf.spans, w.cfg.Now())
			if _, ok := errors.AsType[*errConflict](err); ok {
				return backoff.Permanent(err)
			}
			if _, ok := errors.AsType[*errRejected](err); ok && rejectedIsFinal {
				return backoff.Permanent(err)
			}
			if err != nil {
				w.m.redisErrors.Inc()
			}
			return err
		}, func(attempt int, err error) {
			tr.log.Warn("flush failed; retrying", "view", v, "shard", sf.sh.Tag(), "attempt", attempt, "err", err)
		})
	}
	err := try(sf.aggs, true)
	if rej, ok := errors.AsType[*errRejected](err); ok {
		w.m.rejected.WithLabelValues(v).Inc()
		w.m.skipped.WithLabelValues(v, SkipRejected).Add(float64(events))
		tr.log.Error("Redis rejected a flush for a reason retrying cannot change: skipping it (its records are not counted in the hot windows; the batch layer has them)",
			"view", v, "shard", sf.sh.Tag(), "events", events, "err", rej.err)
		// Only the offsets move now. If even that is refused, the
		// shard's offsets hash itself is unusable: retried, not skipped.
		err = try(nil, false)
	}
	if _, ok := errors.AsType[*errConflict](err); ok {
		w.m.conflicts.WithLabelValues(v).Inc()
		tr.reloadAll()
		return err
	}
	if err != nil {
		// ctx ended. Not applied: the stored offsets still say so, and
		// the next owner of these partitions replays the range.
		return err
	}
	if res.overflowed > 0 {
		w.m.overflowed.WithLabelValues(v).Add(float64(res.overflowed))
		tr.log.Warn("sums overflowed: stored as overflowed (answered as null, listed under overflow)", "view", v, "shard", sf.sh.Tag(), "sums", res.overflowed)
	}
	if len(res.uniqErrs) > 0 {
		w.m.uniqErrors.WithLabelValues(v).Add(float64(len(res.uniqErrs)))
		tr.log.Error("Redis refused uniq values (a uniq key of another type); the flush's other figures are applied",
			"view", v, "shard", sf.sh.Tag(), "refused", len(res.uniqErrs), "err", res.uniqErrs[0])
	}
	w.m.flushCells.WithLabelValues(v).Observe(float64(size))
	w.m.flushTime.WithLabelValues(v).Observe(time.Since(start).Seconds())
	for _, t := range sf.taken {
		t.p.mu.Lock()
		t.p.applied[i] = t.to
		t.p.mu.Unlock()
	}
	return nil
}

// reloadAll makes every partition drop what it holds, reload the stored
// offsets and re-seek.
func (tr *topicRun) reloadAll() {
	for _, p := range tr.parts {
		p.mu.Lock()
		if p.ready {
			p.ready, p.reload = false, true
			p.cancel()
			p.space.Broadcast()
		}
		p.mu.Unlock()
	}
}

// checkOffsets notices stored offsets that moved under an idle partition (a
// rebuild); a busy one notices at its next flush.
func (tr *topicRun) checkOffsets(ctx context.Context) {
	for _, p := range tr.parts {
		p.mu.Lock()
		if !p.ready {
			p.mu.Unlock()
			continue
		}
		known := slices.Clone(p.applied)
		p.mu.Unlock()
		field := offsetField(tr.tv.topic, p.id)
		for i, v := range tr.tv.views {
			s, err := tr.w.cfg.Redis.HGet(ctx, PartitionShard(v, p.id).OffsetsKey(), field).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				tr.log.Warn("checking stored offsets failed", "err", err)
				return
			}
			if s != strconv.FormatInt(known[i], 10) {
				tr.log.Info("stored offsets moved (rebuild?); reloading", "view", v.Name, "partition", p.id, "stored", s)
				tr.reloadAll()
				return
			}
		}
	}
}

// commit records the applied offsets in Kafka. Advisory: the stored offsets
// in Redis are the truth; this keeps Kafka tooling's lag figures meaningful.
func (tr *topicRun) commit() {
	offs := map[int]int64{}
	for _, p := range tr.parts {
		p.mu.Lock()
		if p.ready {
			offs[p.id] = slices.Min(p.applied)
		}
		p.mu.Unlock()
	}
	if len(offs) == 0 {
		return
	}
	if err := tr.gen.CommitOffsets(map[string]map[int]int64{tr.tv.topic: offs}); err != nil {
		tr.log.Debug("advisory commit failed", "err", err)
	}
}

// refreshBoundaries re-reads every view's boundary B (batch moves it a few
// times an hour; reading it each flush keeps replicas in step cheaply).
func (tr *topicRun) refreshBoundaries(ctx context.Context) bool {
	for i, v := range tr.tv.views {
		err := backoff.Retry(ctx, backoff.Default, func(ctx context.Context) error {
			b, ok, err := boundary.Read(ctx, tr.w.cfg.Redis, v.Name)
			if err != nil {
				return err
			}
			us := int64(math.MinInt64)
			if ok {
				us = b.UnixMicro()
			}
			tr.boundary[i].Store(us)
			return nil
		}, func(_ int, err error) {
			tr.w.m.redisErrors.Inc()
			tr.log.Warn("reading boundary failed; retrying", "view", v.Name, "err", err)
		})
		if err != nil {
			return false // ctx ended
		}
	}
	return true
}
