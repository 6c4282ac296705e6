package compact

import (
	"context"
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
	"github.com/lambdalake/lambdalake/internal/backoff"
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

// retry runs op until it succeeds, fails for good (backoff.Permanent, e.g.
// a conditional write refused), or ctx ends. The lake store already
// retries each request; this outer loop, with the backoff every
// long-running loop shares (internal/backoff), is what carries a flush
// through an outage of any length. Each failure is counted and logged (the
// first and every tenth at warn level).
func (c *Compactor) retry(ctx context.Context, what string, op func(context.Context) error) error {
	return backoff.Retry(ctx, backoff.Default, op, func(attempt int, err error) {
		c.metrics.flushErrors.Inc()
		lvl := slog.LevelDebug
		if attempt == 1 || attempt%10 == 0 {
			lvl = slog.LevelWarn
		}
		c.log.Log(ctx, lvl, "lake write failed; retrying", "what", what, "attempt", attempt, "err", err)
	})
}

// store writes one flush: hour files and dead letters (in parallel), dirty
// markers for hours already closed, then the checkpoint. Only then is the
// flush's progress durable. prev is the checkpoint published before it and
// etag the ETag of its object ("": none yet): the checkpoint is written only
// over that version, so a compactor that lost the partition to another
// (which wrote since) fails here instead of moving it. It returns the new
// checkpoint and its ETag.
func (c *Compactor) store(ctx context.Context, ti *topicInfo, b *flush, prev raw.Checkpoint, etag string) (raw.Checkpoint, string, error) {
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
			for _, r := range d.recs {
				c.metrics.deadletters.WithLabelValues(name, r.Reason).Inc()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return prev, etag, err
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
			return prev, etag, fmt.Errorf("mark dirty: %w", err)
		}
		c.metrics.dirty.WithLabelValues(name).Inc()
	}

	cp := raw.Checkpoint{NextOffset: b.next, Watermark: nextWatermark(prev.Watermark, b, ti.lateness),
		MaxEvent: saneMaxEvent(prev.MaxEvent, b.cutAt, ti.schema)}
	if b.maxEvent.After(cp.MaxEvent) {
		cp.MaxEvent = b.maxEvent
	}
	key := lake.CheckpointKey(c.cfg.Group, b.topic, b.partition)
	if err := c.retry(ctx, key, func(ctx context.Context) error {
		next, err := raw.WriteCheckpoint(ctx, c.cfg.Store, c.cfg.Group, b.topic, b.partition, cp, etag)
		if errors.Is(err, lake.ErrPreconditionFailed) {
			return backoff.Permanent(err) // another owner wrote it: retrying changes nothing
		}
		etag = next
		return err
	}); err != nil {
		if errors.Is(err, lake.ErrPreconditionFailed) {
			c.metrics.fenced.Inc()
		}
		return prev, etag, fmt.Errorf("checkpoint: %w", err)
	}
	part := fmt.Sprint(b.partition)
	if !cp.Watermark.IsZero() {
		c.metrics.watermark.WithLabelValues(b.topic, part).Set(float64(cp.Watermark.UnixMilli()) / 1000)
	}
	c.metrics.stored.WithLabelValues(b.topic, part).Set(float64(cp.NextOffset))
	c.metrics.flushSec.Observe(time.Since(start).Seconds())
	c.log.Debug("flushed", "topic", b.topic, "partition", b.partition, "rows", b.rows, "files", len(b.files),
		"dead_files", len(b.dead), "bytes", uploaded, "next_offset", cp.NextOffset, "took", time.Since(start), "since_cut", time.Since(b.cutAt))
	return cp, etag, nil
}

// nextWatermark is the partition's watermark after a flush: its latest
// admitted event time (or the wall clock at the cut, if the partition was
// caught up, so idle partitions do not hold hours open) minus lateness. It
// never passes the wall clock at the cut minus lateness, whatever the data
// says (admission lets events up to max_future ahead through), so hours
// close by the wall clock's hour at the latest. It never moves back, except
// from a watermark past the wall clock itself: only data from before
// admission existed can have left one (a 9999-12-31 event time), and
// keeping it would keep every hour closed for everyone.
func nextWatermark(prev time.Time, b *flush, lateness time.Duration) time.Time {
	base := b.maxEvent
	if b.caughtUp && b.cutAt.After(base) {
		base = b.cutAt
	}
	if !b.cutAt.IsZero() && base.After(b.cutAt) {
		base = b.cutAt
	}
	if base.IsZero() {
		return prev
	}
	wm := base.Add(-lateness).UTC()
	if !b.cutAt.IsZero() && prev.After(b.cutAt) {
		return wm // past the wall clock: a watermark from before admission
	}
	if wm.Before(prev) {
		return prev
	}
	return wm
}

// saneMaxEvent drops a checkpoint's latest event time if admission would
// refuse it at now (more than max_future ahead): one left by data from
// before admission existed, which would otherwise stay the maximum for good.
func saneMaxEvent(t, now time.Time, s *schemas.Schema) time.Time {
	if !t.IsZero() && !now.IsZero() && s.Admit(t.UnixMicro(), now.UnixMicro()) == schemas.Future {
		return time.Time{}
	}
	return t
}
