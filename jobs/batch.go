package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/retention"
	"github.com/lambdalake/lambdalake/batch/views"
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
	Progress    func(recompute.Progress)
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
	recomputeJob, backfillJob, err := recomputeJobs(cfg)
	if err != nil {
		return nil, err
	}
	return []Job{recomputeJob, mergeJob(cfg), retentionJob(cfg), backfillJob}, nil
}

// recomputeJobs returns the scheduled recompute and the on-demand backfill.
// They share one lock (they write the same view state) and so one
// Recomputer and one fenced store.
func recomputeJobs(cfg BatchConfig) (recomputeJob, backfillJob Job, err error) {
	store := &fencedStore{Store: cfg.Store}
	rc, err := recompute.New(recompute.Config{
		Store: store, Group: cfg.Group, Parallelism: cfg.Parallelism, Progress: cfg.Progress,
		Registerer: cfg.Registerer, Logger: cfg.Logger, Now: cfg.Now,
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
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
	runViews := func(ctx context.Context, run *Run, vs []*schemas.View, opt recompute.Options) error {
		store.lease.Store(run.Lease)
		for _, v := range vs {
			if ctx.Err() != nil {
				return ctx.Err() // a safe point: every finished hour is saved
			}
			res, err := rc.Recompute(ctx, v, opt)
			run.Done(int64(res.Hours))
			if err != nil {
				return err // it names the view
			}
		}
		return nil
	}
	recomputeJob = Job{Name: JobRecompute, Schedule: cfg.Recompute, Run: func(ctx context.Context, run *Run) error {
		return runViews(ctx, run, cfg.Views, recompute.Options{})
	}}
	backfillJob = Job{Name: JobBackfill, Lock: JobRecompute, Run: func(ctx context.Context, run *Run) error {
		vs := cfg.Views
		if cfg.Backfill.Views != nil {
			vs = cfg.Backfill.Views
		}
		return runViews(ctx, run, vs, recompute.Options{Force: true, From: cfg.Backfill.From, To: cfg.Backfill.To})
	}}
	return recomputeJob, backfillJob, nil
}

// mergeJob merges the raw files of every closed hour that has more than one
// file for a partition into one sorted file per partition.
func mergeJob(cfg BatchConfig) Job {
	store := &fencedStore{Store: cfg.Store}
	return Job{Name: JobMerge, Schedule: cfg.Merge, Run: func(ctx context.Context, run *Run) error {
		store.lease.Store(run.Lease)
		for _, s := range cfg.Schemas {
			wm, err := raw.Watermark(ctx, cfg.Store, cfg.Group, s.Topic)
			if errors.Is(err, raw.ErrNoWatermark) {
				continue // nothing has closed yet
			}
			if err != nil {
				return err
			}
			hours, err := compact.HoursToMerge(ctx, cfg.Store, s.Name, wm)
			if err != nil {
				return err
			}
			for _, hour := range hours {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, err := compact.Merge(ctx, store, s, hour)
				if err != nil {
					return err // it names the schema and hour
				}
				if res.Written > 0 {
					run.Done(1)
				}
			}
		}
		return nil
	}}
}

func retentionJob(cfg BatchConfig) Job {
	store := &fencedStore{Store: cfg.Store}
	return Job{Name: JobRetention, Schedule: cfg.Retention, Run: func(ctx context.Context, run *Run) error {
		store.lease.Store(run.Lease)
		res, err := retention.Apply(ctx, retention.Config{
			Store: store, Schemas: cfg.Schemas, Views: cfg.Views, Now: cfg.Now(),
			// B from the lake, the source of truth, not its Redis mirror.
			Boundary: func(ctx context.Context, view string) (time.Time, bool, error) {
				st, err := views.ReadState(ctx, cfg.Store, view)
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
