package compact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Config configures a Compactor.
type Config struct {
	Brokers []string
	Group   string // consumer group; also names the lake checkpoints
	Store   lake.Store
	// Schemas to compact, each from its own topic.
	Schemas []*schemas.Schema
	// Lateness per schema name: the largest lateness of the views over it.
	// The watermark trails the events by it. Missing: 0.
	Lateness map[string]time.Duration

	Budget       int64         // bytes held per process (buffered + in flight); default 256 MiB
	MaxFileRows  int           // rows per file before a flush; default 1,000,000
	MaxFileBytes int64         // buffered bytes per file before a flush; default 64 MiB
	MaxFileAge   time.Duration // oldest buffered record's wait before a flush; default 1m
	// SessionTimeout is the consumer group session; a dead member's
	// partitions move after it. Default 10s.
	SessionTimeout time.Duration

	Registerer prometheus.Registerer // default prometheus.DefaultRegisterer
	Logger     *slog.Logger          // default slog.Default()
	// Now is the wall clock (tests); default time.Now.
	Now func() time.Time
}

// Compactor runs compaction for a set of schemas. Run it once.
type Compactor struct {
	cfg     Config
	log     *slog.Logger
	byTopic map[string]*topicInfo
	budget  *budget
	metrics *compactMetrics
	client  *kafka.Client
}

type topicInfo struct {
	schema   *schemas.Schema
	layout   *schemas.RawLayout
	ps       *parquet.Schema // rawSchema(layout)
	lateness time.Duration
}

// New checks cfg and returns a compactor.
func New(cfg Config) (*Compactor, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("compact: no brokers")
	}
	if cfg.Group == "" {
		return nil, errors.New("compact: no group")
	}
	if cfg.Store == nil {
		return nil, errors.New("compact: no lake store")
	}
	if len(cfg.Schemas) == 0 {
		return nil, errors.New("compact: no schemas")
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 256 << 20
	}
	if cfg.MaxFileRows <= 0 {
		cfg.MaxFileRows = 1_000_000
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 64 << 20
	}
	if cfg.MaxFileAge <= 0 {
		cfg.MaxFileAge = time.Minute
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
	c := &Compactor{cfg: cfg, log: cfg.Logger.With("role", "compact"), byTopic: map[string]*topicInfo{},
		budget: newBudget(cfg.Budget), client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}}
	for _, s := range cfg.Schemas {
		if prev, dup := c.byTopic[s.Topic]; dup {
			return nil, fmt.Errorf("compact: schemas %s and %s share topic %s", prev.schema.Name, s.Name, s.Topic)
		}
		layout := s.RawLayout()
		c.byTopic[s.Topic] = &topicInfo{schema: s, layout: layout, ps: rawSchema(layout), lateness: cfg.Lateness[s.Name]}
	}
	m, err := newCompactMetrics(cfg.Registerer, c.budget)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	return c, nil
}

// Run consumes until ctx ends, then flushes what it holds and leaves the
// group. Partitions are taken per group generation; each assigned
// partition resumes from its lake checkpoint.
func (c *Compactor) Run(ctx context.Context) error {
	topics := slices.Sorted(maps.Keys(c.byTopic))
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.Group,
		Brokers:           c.cfg.Brokers,
		Topics:            topics,
		SessionTimeout:    c.cfg.SessionTimeout,
		HeartbeatInterval: c.cfg.SessionTimeout / 5,
		RebalanceTimeout:  c.cfg.SessionTimeout * 3,
		JoinGroupBackoff:  time.Second,
		// Rebalances wait for every partition to flush on the way out.
		Timeout: 10 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("compact: consumer group %s: %w", c.cfg.Group, err)
	}
	c.log.Info("compactor started", "group", c.cfg.Group, "topics", topics, "budget", c.cfg.Budget)
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return fmt.Errorf("compact: %w", err)
			}
			// kafka-go rejoins by itself after a back-off.
			c.log.Warn("consumer group generation failed", "err", err)
			continue
		}
		c.log.Info("partitions assigned", "generation", gen.ID, "assignments", describe(gen.Assignments))
		for topic, parts := range gen.Assignments {
			for _, pa := range parts {
				topic, partition := topic, int32(pa.ID)
				gen.Start(func(gctx context.Context) {
					commit := func(next int64) error {
						return gen.CommitOffsets(map[string]map[int]int64{topic: {int(partition): next}})
					}
					c.runPartition(gctx, topic, partition, commit)
				})
			}
		}
	}
	// Closing the group ends the generation, which waits for every
	// partition to flush and stop.
	if err := cg.Close(); err != nil {
		c.log.Warn("leave consumer group", "err", err)
	}
	c.log.Info("compactor stopped")
	return nil
}

func describe(a map[string][]kafka.PartitionAssignment) map[string][]int {
	out := map[string][]int{}
	for t, ps := range a {
		for _, p := range ps {
			out[t] = append(out[t], p.ID)
		}
		slices.Sort(out[t])
	}
	return out
}

// retry runs op until it succeeds or ctx ends. The lake store already
// retries each request; this outer loop is what carries a flush through an
// outage of any length. Each failure is counted and logged (the first and
// every tenth at warn level).
func (c *Compactor) retry(ctx context.Context, what string, op func(context.Context) error) error {
	return retryForever(ctx, op, func(attempt int, err error) {
		c.metrics.flushErrors.Inc()
		lvl := slog.LevelDebug
		if attempt == 1 || attempt%10 == 0 {
			lvl = slog.LevelWarn
		}
		c.log.Log(ctx, lvl, "lake write failed; retrying", "what", what, "attempt", attempt, "err", err)
	})
}

// retryForever calls op until it succeeds or ctx ends; after each failure
// it calls failed, then waits from 100 ms doubling up to 5 s. It is the
// compactor's whole backoff policy, kept in one function for a backoff
// helper shared with the speed layer to replace.
func retryForever(ctx context.Context, op func(context.Context) error, failed func(attempt int, err error)) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failed(attempt, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// store writes one flush: hour files and dead letters (in parallel), dirty
// markers for hours already closed, then the checkpoint. Only then is the
// flush's progress durable. prev is the checkpoint published before it.
func (c *Compactor) store(ctx context.Context, ti *topicInfo, b *flush, prev raw.Checkpoint) (raw.Checkpoint, error) {
	start := time.Now()
	name := ti.schema.Name
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	var mu sync.Mutex
	var uploaded int64
	for _, f := range b.files {
		g.Go(func() error {
			body, err := encodeHour(f)
			if err != nil {
				return fmt.Errorf("encode %s: %w", b.key(f), err)
			}
			// The encoded file is all that is needed now; the columns'
			// chunks go back to the pool for the next buffers.
			if f.cols != nil {
				f.cols.Release()
			}
			f.buf, f.cols = nil, nil
			if err := c.retry(gctx, b.key(f), func(ctx context.Context) error {
				return lake.PutBytes(ctx, c.cfg.Store, b.key(f), body)
			}); err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			mu.Lock()
			uploaded += int64(len(body))
			mu.Unlock()
			c.metrics.files.WithLabelValues(name, "raw").Inc()
			c.metrics.rows.WithLabelValues(name).Add(float64(f.rows))
			return nil
		})
	}
	for _, d := range b.dead {
		g.Go(func() error {
			body, err := encodeDead(d)
			if err != nil {
				return fmt.Errorf("encode %s: %w", b.deadKey(d), err)
			}
			if err := c.retry(gctx, b.deadKey(d), func(ctx context.Context) error {
				return lake.PutBytes(ctx, c.cfg.Store, b.deadKey(d), body)
			}); err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			mu.Lock()
			uploaded += int64(len(body))
			mu.Unlock()
			c.metrics.files.WithLabelValues(name, "deadletter").Inc()
			c.metrics.deadletters.WithLabelValues(name).Add(float64(len(d.recs)))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return prev, err
	}
	c.metrics.bytes.WithLabelValues(name).Add(float64(uploaded))

	// A file that lands in an hour the published watermark had already
	// closed may have been missed by a recompute: mark the hour dirty.
	// The files are stored first, so a recompute that sees the marker
	// also sees them.
	for _, f := range b.files {
		if prev.Watermark.IsZero() || f.hour.Add(time.Hour).After(prev.Watermark) {
			continue
		}
		key := lake.DirtyKey(name, f.hour)
		if err := c.retry(ctx, key, func(ctx context.Context) error {
			return lake.PutBytes(ctx, c.cfg.Store, key, nil)
		}); err != nil {
			return prev, fmt.Errorf("mark dirty: %w", err)
		}
		c.metrics.dirty.WithLabelValues(name).Inc()
	}

	cp := raw.Checkpoint{NextOffset: b.next, Watermark: nextWatermark(prev.Watermark, b, ti.lateness), MaxEvent: prev.MaxEvent}
	if b.maxEvent.After(cp.MaxEvent) {
		cp.MaxEvent = b.maxEvent
	}
	key := lake.CheckpointKey(c.cfg.Group, b.topic, b.partition)
	if err := c.retry(ctx, key, func(ctx context.Context) error {
		return writeCheckpoint(ctx, c.cfg.Store, c.cfg.Group, b.topic, b.partition, cp)
	}); err != nil {
		return prev, fmt.Errorf("checkpoint: %w", err)
	}
	if !cp.Watermark.IsZero() {
		c.metrics.watermark.WithLabelValues(b.topic, fmt.Sprint(b.partition)).Set(float64(cp.Watermark.UnixMilli()) / 1000)
	}
	c.metrics.flushSec.Observe(time.Since(start).Seconds())
	c.log.Debug("flushed", "topic", b.topic, "partition", b.partition, "rows", b.rows, "files", len(b.files),
		"dead_files", len(b.dead), "bytes", uploaded, "next_offset", cp.NextOffset, "took", time.Since(start), "since_cut", time.Since(b.cutAt))
	return cp, nil
}

// nextWatermark is the partition's watermark after a flush: its latest
// event time (or the wall clock at the cut, if the partition was caught up,
// so idle partitions do not hold hours open) minus lateness, never moving
// back.
func nextWatermark(prev time.Time, b *flush, lateness time.Duration) time.Time {
	base := b.maxEvent
	if b.caughtUp && b.cutAt.After(base) {
		base = b.cutAt
	}
	if base.IsZero() {
		return prev
	}
	wm := base.Add(-lateness).UTC()
	if wm.Before(prev) {
		return prev
	}
	return wm
}

// writeCheckpoint stores a partition's checkpoint (package raw reads it).
func writeCheckpoint(ctx context.Context, store lake.Store, group, topic string, partition int32, cp raw.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return lake.PutBytes(ctx, store, lake.CheckpointKey(group, topic, partition), b)
}
