package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Names of the batch jobs.
const (
	JobRecompute = "recompute"
	JobMerge     = "merge"
	JobRetention = "retention"
	JobBackfill  = "backfill"
)

// BatchConfig is what the batch jobs work on.
type BatchConfig struct {
	Store   lake.Store
	Redis   redis.UniversalClient // the boundary mirror
	Group   string                // the compactor's consumer group (its checkpoints close hours)
	Schemas []*schemas.Schema
	Views   []*schemas.View
	// Cron expressions; "" leaves a job unscheduled (runnable with RunNow).
	Recompute, Merge, Retention string
	// Backfill limits the backfill job: which views (nil: all) and hours.
	Backfill struct {
		Views    []*schemas.View
		From, To time.Time
	}
	// Parallelism of recompute (hours at once); 0: one per core.
	Parallelism int
	Progress    func(batch.Progress)
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	Now         func() time.Time
}

// BatchJobs returns the recompute, merge, retention and backfill jobs.
// Each writes to the lake through a store fenced by its run's lease.
func BatchJobs(cfg BatchConfig) ([]Job, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	recompute, backfill, err := recomputeJobs(cfg)
	if err != nil {
		return nil, err
	}
	return []Job{recompute, mergeJob(cfg), retentionJob(cfg), backfill}, nil
}

// recomputeJobs returns the scheduled recompute and the on-demand backfill.
// They share one lock (they write the same view state) and so one
// Recomputer and one fenced store.
func recomputeJobs(cfg BatchConfig) (recompute, backfill Job, err error) {
	store := &fencedStore{Store: cfg.Store}
	rc, err := batch.NewRecomputer(batch.RecomputerConfig{
		Store: store, Group: cfg.Group, Parallelism: cfg.Parallelism, Progress: cfg.Progress,
		Registerer: cfg.Registerer, Logger: cfg.Logger, Now: cfg.Now,
		Mirror: batch.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			// A runner that lost its lease publishes nothing; the mirror
			// itself also refuses to move back (internal/boundary).
			if err := store.check(ctx); err != nil {
				return err
			}
			held, err := boundary.Publish(ctx, cfg.Redis, view, b)
			if err == nil && held.After(b) {
				cfg.Logger.Warn("jobs: the boundary mirror holds a later B than the lake; left as it is", "view", view, "lake", b, "mirror", held)
			}
			return err
		}),
	})
	if err != nil {
		return Job{}, Job{}, err
	}
	runViews := func(ctx context.Context, run *Run, views []*schemas.View, opt batch.RecomputeOptions) error {
		store.lease.Store(run.Lease)
		for _, v := range views {
			if ctx.Err() != nil {
				return ctx.Err() // a safe point: every finished hour is saved
			}
			res, err := rc.Recompute(ctx, v, opt)
			run.Done(int64(res.Hours))
			if err != nil {
				return err // batch's error names the view
			}
		}
		return nil
	}
	recompute = Job{Name: JobRecompute, Schedule: cfg.Recompute, Run: func(ctx context.Context, run *Run) error {
		return runViews(ctx, run, cfg.Views, batch.RecomputeOptions{})
	}}
	backfill = Job{Name: JobBackfill, Lock: JobRecompute, Run: func(ctx context.Context, run *Run) error {
		views := cfg.Views
		if cfg.Backfill.Views != nil {
			views = cfg.Backfill.Views
		}
		return runViews(ctx, run, views, batch.RecomputeOptions{Force: true, From: cfg.Backfill.From, To: cfg.Backfill.To})
	}}
	return recompute, backfill, nil
}

// mergeJob merges the raw files of every closed hour that has more than one
// file for a partition into one sorted file per partition.
func mergeJob(cfg BatchConfig) Job {
	store := &fencedStore{Store: cfg.Store}
	return Job{Name: JobMerge, Schedule: cfg.Merge, Run: func(ctx context.Context, run *Run) error {
		store.lease.Store(run.Lease)
		for _, s := range cfg.Schemas {
			wm, err := batch.Watermark(ctx, cfg.Store, cfg.Group, s.Topic)
			if errors.Is(err, batch.ErrNoWatermark) {
				continue // nothing has closed yet
			}
			if err != nil {
				return err
			}
			hours, err := hoursToMerge(ctx, cfg.Store, s.Name, wm)
			if err != nil {
				return err
			}
			for _, hour := range hours {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, err := batch.Merge(ctx, store, s, hour)
				if err != nil {
					return fmt.Errorf("merge %s %s: %w", s.Name, lake.HourPath(hour), err)
				}
				if res.Written > 0 {
					run.Done(1)
				}
			}
		}
		return nil
	}}
}

// hoursToMerge lists the closed hours holding several files of one Kafka
// partition: the ones merging makes smaller.
func hoursToMerge(ctx context.Context, store lake.Store, schema string, watermark time.Time) ([]time.Time, error) {
	objs, err := store.List(ctx, lake.RawPrefix(schema))
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	type hp struct {
		hour time.Time
		part string
	}
	files := map[hp]int{}
	var hours []time.Time
	seen := map[time.Time]bool{}
	for _, o := range objs {
		f, err := lake.ParseRawKey(o.Key)
		if err != nil || f.Hour.Add(time.Hour).After(watermark) {
			continue
		}
		k := hp{f.Hour, fmt.Sprintf("%s-%d", f.Topic, f.Partition)}
		files[k]++
		if files[k] == 2 && !seen[f.Hour] {
			seen[f.Hour] = true
			hours = append(hours, f.Hour)
		}
	}
	return hours, nil
}

func retentionJob(cfg BatchConfig) Job {
	store := &fencedStore{Store: cfg.Store}
	return Job{Name: JobRetention, Schedule: cfg.Retention, Run: func(ctx context.Context, run *Run) error {
		store.lease.Store(run.Lease)
		res, err := batch.ApplyRetention(ctx, batch.RetentionConfig{
			Store: store, Schemas: cfg.Schemas, Views: cfg.Views, Now: cfg.Now(),
			// B from the lake, the source of truth, not its Redis mirror.
			Boundary: func(ctx context.Context, view string) (time.Time, bool, error) {
				st, err := batch.ReadState(ctx, cfg.Store, view)
				if err != nil {
					return time.Time{}, false, err
				}
				return st.Boundary, !st.Boundary.IsZero(), nil
			},
		})
		run.Done(int64(res.Partitions))
		return err
	}}
}
