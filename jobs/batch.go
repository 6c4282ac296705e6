package jobs

import (
	"context"
	"errors"
	"fmt"
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
	// JobRepair repairs a boundary B that events with far-future times
	// moved past the wall clock before admission existed (on demand only:
	// `lambdalake batch repair-boundary`).
	JobRepair = "repair-boundary"
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
	// Repair.Views are the views the repair job repairs (nil: all).
	Repair struct {
		Views []*schemas.View
	}
	// OnRepair, if set, receives what the repair job did to each view.
	OnRepair func(RepairReport)
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
	recomputeJob, backfillJob, repairJob, err := recomputeJobs(cfg)
	if err != nil {
		return nil, err
	}
	merge, err := mergeJob(cfg)
	if err != nil {
		return nil, err
	}
	retention, err := retentionJob(cfg)
	if err != nil {
		return nil, err
	}
	return []Job{recomputeJob, merge, retention, backfillJob, repairJob}, nil
}

// RepairReport is what the repair job did to one view.
type RepairReport struct {
	View string
	// Lake is the repair's recompute: Repaired says whether B in
	// _state.json was past the wall clock (then Previous is that B and
	// Reset the hours dropped), Boundary the B set.
	Lake recompute.Result
	// Mirror is the B the Redis mirror held before (MirrorSet=false: none);
	// it now holds Lake.Boundary.
	Mirror    time.Time
	MirrorSet bool
}

// recomputeJobs returns the scheduled recompute, the on-demand backfill and
// the on-demand boundary repair. They share one lock (they write the same
// view state) and so one Recomputer and one fenced store.
func recomputeJobs(cfg BatchConfig) (recomputeJob, backfillJob, repairJob Job, err error) {
	store, err := newFencedStore(cfg.Store)
	if err != nil {
		return Job{}, Job{}, Job{}, err
	}
	rc, err := recompute.New(recompute.Config{
		Store: store, Group: cfg.Group, Parallelism: cfg.Parallelism, Progress: cfg.Progress,
		Registerer: cfg.Registerer, Logger: cfg.Logger, Now: cfg.Now,
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			// A runner that lost its lease publishes nothing; the mirror
			// itself also refuses to move back (internal/boundary).
			if err := store.check(ctx); err != nil {
				return err
			}
			held, err := boundary.PublishAt(ctx, cfg.Redis, view, b, cfg.Now())
			if err == nil && held.After(b) {
				cfg.Logger.Warn("jobs: the boundary mirror holds a later B than the lake; left as it is", "view", view, "lake", b, "mirror", held)
			}
			return err
		}),
	})
	if err != nil {
		return Job{}, Job{}, Job{}, err
	}
	// One view's failure (a B past the wall clock, a bad file) does not
	// keep the others from being recomputed; the run fails naming each.
	runViews := func(ctx context.Context, run *Run, vs []*schemas.View, opt recompute.Options) error {
		ctx = withLease(ctx, run.Lease)
		var errs []error
		for _, v := range vs {
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...) // a safe point: every finished hour is saved
			}
			res, err := rc.Recompute(ctx, v, opt)
			run.Done(int64(res.Hours))
			if err != nil {
				errs = append(errs, err) // it names the view
			}
		}
		return errors.Join(errs...)
	}
	// Every runner takes part in each recompute run, hour by hour under
	// hour leases (recompute.Options.Leases); backfill and repair hold the
	// view whole, under the recompute lock (Job.Shared).
	recomputeJob = Job{Name: JobRecompute, Schedule: cfg.Recompute, Shared: true, Run: func(ctx context.Context, run *Run) error {
		return runViews(ctx, run, cfg.Views, recompute.Options{Leases: itemLeases{run.ItemLeases}})
	}}
	backfillJob = Job{Name: JobBackfill, Lock: JobRecompute, Run: func(ctx context.Context, run *Run) error {
		vs := cfg.Views
		if cfg.Backfill.Views != nil {
			vs = cfg.Backfill.Views
		}
		return runViews(ctx, run, vs, recompute.Options{Force: true, From: cfg.Backfill.From, To: cfg.Backfill.To})
	}}
	repairJob = Job{Name: JobRepair, Lock: JobRecompute, Run: func(ctx context.Context, run *Run) error {
		ctx = withLease(ctx, run.Lease)
		vs := cfg.Views
		if cfg.Repair.Views != nil {
			vs = cfg.Repair.Views
		}
		var errs []error
		for _, v := range vs {
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...)
			}
			rep, err := repairView(ctx, cfg, rc, store, v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if rep.Lake.Repaired {
				run.Done(1)
			}
			if cfg.OnRepair != nil {
				cfg.OnRepair(rep)
			}
		}
		return errors.Join(errs...)
	}}
	return recomputeJob, backfillJob, repairJob, nil
}

// itemLeases adapts a shared run's ItemLeaser to recompute.Leaser: an
// item is an hour of a view, or its boundary.
type itemLeases struct{ il *ItemLeaser }

var _ recompute.Leaser = itemLeases{}

func (a itemLeases) Try(ctx context.Context, view, item string) (recompute.Lease, bool, error) {
	l, ok, err := a.il.Try(ctx, view, item)
	if err != nil || !ok {
		return nil, false, err
	}
	return l, true, nil
}

// repairView sets a view's B in the lake from the lake state under the wall
// clock (recompute.RepairBoundary), then, still holding the lease, sets the
// Redis mirror to it with boundary.Override, the one caller of the
// operator override of the forward-only mirror.
func repairView(ctx context.Context, cfg BatchConfig, rc *recompute.Recomputer, store *fencedStore, v *schemas.View) (RepairReport, error) {
	rep := RepairReport{View: v.Name}
	res, err := rc.RepairBoundary(ctx, v)
	rep.Lake = res
	if err != nil {
		return rep, err
	}
	if res.Boundary.IsZero() {
		return rep, nil // nothing computed yet: no B to mirror
	}
	if err := store.check(ctx); err != nil {
		return rep, err
	}
	prev, had, err := boundary.Override(ctx, cfg.Redis, v.Name, res.Boundary, cfg.Now())
	if err != nil {
		return rep, fmt.Errorf("jobs: repair boundary of view %s: %w", v.Name, err)
	}
	rep.Mirror, rep.MirrorSet = prev, had
	if res.Repaired || (had && !prev.Equal(res.Boundary)) {
		cfg.Logger.Warn("jobs: boundary repaired", "view", v.Name, "lake_before", res.Previous, "mirror_before", prev,
			"boundary", res.Boundary, "hours_reset", len(res.Reset))
	}
	return rep, nil
}

// mergeJob merges the raw files of every closed hour that has more than one
// file for a partition into one sorted file per partition.
func mergeJob(cfg BatchConfig) (Job, error) {
	store, err := newFencedStore(cfg.Store)
	if err != nil {
		return Job{}, err
	}
	return Job{Name: JobMerge, Schedule: cfg.Merge, Run: func(ctx context.Context, run *Run) error {
		ctx = withLease(ctx, run.Lease)
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
	}}, nil
}

func retentionJob(cfg BatchConfig) (Job, error) {
	store, err := newFencedStore(cfg.Store)
	if err != nil {
		return Job{}, err
	}
	return Job{Name: JobRetention, Schedule: cfg.Retention, Run: func(ctx context.Context, run *Run) error {
		ctx = withLease(ctx, run.Lease)
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
	}}, nil
}
