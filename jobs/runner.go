package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/internal/backoff"
	"github.com/lambdalake/lambdalake/lake"
)

// Job is one kind of batch work.
type Job struct {
	Name     string
	Schedule string // cron expression, seconds field optional; "" = on demand only
	// Lock names the lease the job runs under (default: Name). Jobs that
	// must not overlap, such as recompute and backfill, share one.
	Lock string
	// Shared makes every runner take part in each run (each slot, each
	// RunNow) instead of one: the job takes no job lease but item leases
	// (Run.ItemLeases), so its runners split the run's work between them.
	// Exclusive jobs whose Lock names a shared job (backfill and repair
	// name recompute) exclude it: while one holds the lock, items are
	// refused, and it starts only once the items in flight are done.
	Shared bool
	// Run does the work. It must be idempotent and resumable, stop at a
	// safe point when ctx ends, and call run.Lease.Check before each commit
	// point (a shared job: its item lease's Check).
	Run func(ctx context.Context, run *Run) error
}

// Run is what a job sees of its current run.
type Run struct {
	Job    string
	Runner string
	Slot   time.Time // zero for a manual run
	Lease  *Lease    // nil in a shared run
	// ItemLeases hands out item leases; set in a shared run only.
	ItemLeases *ItemLeaser
	items      atomic.Int64
}

// Done adds n finished items (hours, files) to the run's count.
func (r *Run) Done(n int64) { r.items.Add(n) }

// Items is the run's count so far.
func (r *Run) Items() int64 { return r.items.Load() }

// Config configures a Runner.
type Config struct {
	Redis      redis.UniversalClient
	Namespace  string        // Redis hash tag of the job keys; "" = "jobs"
	RunnerID   string        // default: hostname-pid
	Lease      time.Duration // default 30s
	HistoryCap int           // default DefaultHistoryCap
	Jobs       []Job
	Logger     *slog.Logger
	Registerer prometheus.Registerer // default prometheus.DefaultRegisterer
}

// Runner schedules jobs and runs each at most once per slot across every
// runner sharing the Redis.
type Runner struct {
	cfg       Config
	k         keys
	schedules map[string]cron.Schedule
	shared    map[string]bool // names of the shared jobs
	m         *metrics
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseSchedule parses a job's cron expression.
func parseSchedule(expr string) (cron.Schedule, error) { return cronParser.Parse(expr) }

// New checks the config; a bad cron expression fails naming the job.
func New(cfg Config) (*Runner, error) {
	if cfg.Redis == nil {
		return nil, errors.New("jobs: no Redis client")
	}
	if cfg.RunnerID == "" {
		host, _ := os.Hostname()
		cfg.RunnerID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.HistoryCap <= 0 {
		cfg.HistoryCap = DefaultHistoryCap
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.DefaultRegisterer
	}
	r := &Runner{cfg: cfg, k: keys{ns: namespaceOr(cfg.Namespace)}, schedules: map[string]cron.Schedule{}, shared: map[string]bool{}}
	seen := map[string]bool{}
	for _, j := range cfg.Jobs {
		if j.Name == "" || j.Run == nil {
			return nil, fmt.Errorf("jobs: job %q has no name or no Run", j.Name)
		}
		if seen[j.Name] {
			return nil, fmt.Errorf("jobs: job %q listed twice", j.Name)
		}
		seen[j.Name] = true
		if j.Shared {
			if j.Lock != "" && j.Lock != j.Name {
				return nil, fmt.Errorf("jobs: shared job %q cannot take another job's lock %q", j.Name, j.Lock)
			}
			r.shared[j.Name] = true
		}
		if j.Schedule == "" {
			continue
		}
		s, err := parseSchedule(j.Schedule)
		if err != nil {
			return nil, fmt.Errorf("jobs: job %q: bad schedule %q: %w", j.Name, j.Schedule, err)
		}
		r.schedules[j.Name] = s
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r.m = m
	return r, nil
}

// Run schedules every job that has a schedule until ctx ends, then waits
// for running jobs to reach a safe point.
func (r *Runner) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, j := range r.cfg.Jobs {
		s, ok := r.schedules[j.Name]
		if !ok {
			continue
		}
		g.Go(func() error { return r.loop(gctx, j, s) })
	}
	return g.Wait()
}

func (r *Runner) loop(ctx context.Context, j Job, s cron.Schedule) error {
	next := s.Next(time.Now())
	for {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		slot := next
		if _, err := r.run(ctx, j, slot); err != nil {
			var na *errNotAcquired
			if !errors.As(err, &na) {
				r.cfg.Logger.Warn("jobs: run failed", "job", j.Name, "slot", slot, "err", err)
			}
		}
		// The next slot after now, not after this one: a run longer than the
		// period skips the slots it overlapped (another runner may have
		// taken them), it does not queue them.
		next = s.Next(time.Now())
		if !next.After(slot) {
			next = s.Next(slot)
		}
	}
}

// lockPoll is how often RunNow tries a lock another runner holds.
var lockPoll = backoff.Policy{Initial: time.Second, Max: time.Second}

// RunNow runs a job once, now, outside its schedule (a manual run or a
// backfill). It waits for the lock up to ctx's deadline.
func (r *Runner) RunNow(ctx context.Context, name string) (Record, error) {
	for _, j := range r.cfg.Jobs {
		if j.Name != name {
			continue
		}
		var rec Record
		err := backoff.Retry(ctx, lockPoll, func(ctx context.Context) error {
			var err error
			rec, err = r.run(ctx, j, time.Time{})
			if _, busy := errors.AsType[*errNotAcquired](err); busy {
				return err // held elsewhere: wait and try again
			}
			return backoff.Permanent(err)
		}, nil)
		if _, busy := errors.AsType[*errNotAcquired](err); busy {
			return rec, fmt.Errorf("jobs: %s is running elsewhere: %w", name, ctx.Err())
		}
		return rec, err
	}
	return Record{}, fmt.Errorf("jobs: no job %q", name)
}

// run acquires the job's lease for slot (none for a shared job), runs it
// and records the run.
func (r *Runner) run(ctx context.Context, j Job, slot time.Time) (Record, error) {
	if j.Shared {
		return r.runShared(ctx, j, slot)
	}
	lock := j.Lock
	if lock == "" {
		lock = j.Name
	}
	lease, err := acquire(ctx, r.cfg.Redis, r.k, lock, j.Name, r.cfg.RunnerID, r.cfg.Lease, slot)
	if err != nil {
		return Record{}, err
	}
	if r.shared[lock] {
		// The shared job's items are refused from now on; wait for the
		// ones in flight, whose writes this run must not race.
		if err := drain(ctx, r.cfg.Redis, r.k, lock, lease); err != nil {
			if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
				r.cfg.Logger.Warn("jobs: release", "job", j.Name, "err", rerr)
			}
			return Record{}, fmt.Errorf("jobs: %s: %w", j.Name, err)
		}
	}
	rec := Record{Job: j.Name, Runner: r.cfg.RunnerID, Token: lease.Token(), Slot: slot, Start: time.Now().UTC()}
	run := &Run{Job: j.Name, Runner: r.cfg.RunnerID, Slot: slot, Lease: lease}
	jctx, cancel := context.WithCancelCause(ctx)
	stopWatch := make(chan struct{})
	go func() {
		select {
		case <-lease.Lost():
			cancel(ErrLeaseLost)
		case <-stopWatch:
		}
	}()
	r.m.running.WithLabelValues(j.Name).Set(1)
	r.cfg.Logger.Info("jobs: run start", "job", j.Name, "token", rec.Token, "slot", slot)
	runErr := j.Run(jctx, run)
	close(stopWatch)
	r.m.running.WithLabelValues(j.Name).Set(0)
	cause := context.Cause(jctx)
	cancel(nil)

	rec.End, rec.Items = time.Now().UTC(), run.Items()
	rec.Outcome = outcome(ctx, errors.Is(cause, ErrLeaseLost), runErr)
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	// Record and release even while shutting down: the run happened.
	rec, err = r.finish(ctx, j, rec, runErr)
	if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
		r.cfg.Logger.Warn("jobs: release", "job", j.Name, "err", rerr)
	}
	return rec, err
}

// outcome classifies how a run ended: leaseLost says the job's own lease
// was lost while it ran. A conditional write refused
// (lake.ErrPreconditionFailed) is the fence at work: another runner wrote
// the object since this one read it, which it could only do holding the
// lease this one lost.
func outcome(ctx context.Context, leaseLost bool, runErr error) string {
	switch {
	case leaseLost || errors.Is(runErr, ErrLeaseLost) || errors.Is(runErr, lake.ErrPreconditionFailed):
		return OutcomeLostLease
	case runErr != nil && ctx.Err() != nil:
		return OutcomeStopped
	case runErr != nil:
		return OutcomeFailed
	}
	return OutcomeOK
}

// runShared runs this runner's part of a shared job's run: no job lease,
// the work split by item leases.
func (r *Runner) runShared(ctx context.Context, j Job, slot time.Time) (Record, error) {
	rec := Record{Job: j.Name, Runner: r.cfg.RunnerID, Slot: slot, Start: time.Now().UTC()}
	run := &Run{Job: j.Name, Runner: r.cfg.RunnerID, Slot: slot,
		ItemLeases: &ItemLeaser{rdb: r.cfg.Redis, k: r.k, job: j.Name, runner: r.cfg.RunnerID, ttl: r.cfg.Lease, history: 10 * r.cfg.HistoryCap}}
	r.m.running.WithLabelValues(j.Name).Set(1)
	r.cfg.Logger.Info("jobs: shared run start", "job", j.Name, "slot", slot)
	runErr := j.Run(ctx, run)
	r.m.running.WithLabelValues(j.Name).Set(0)
	rec.End, rec.Items = time.Now().UTC(), run.Items()
	rec.Outcome = outcome(ctx, false, runErr) // a lost lease is an item's
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	return r.finish(ctx, j, rec, runErr)
}

// finish records a run that ended.
func (r *Runner) finish(ctx context.Context, j Job, rec Record, runErr error) (Record, error) {
	if err := record(context.WithoutCancel(ctx), r.cfg.Redis, r.k, r.cfg.HistoryCap, rec); err != nil {
		r.cfg.Logger.Warn("jobs: record run", "job", j.Name, "err", err)
	}
	r.m.observe(rec)
	r.cfg.Logger.Info("jobs: run end", "job", j.Name, "token", rec.Token, "outcome", rec.Outcome,
		"items", rec.Items, "took", rec.End.Sub(rec.Start).Round(time.Millisecond), "err", rec.Error)
	if runErr != nil {
		return rec, fmt.Errorf("jobs: %s: %w", j.Name, runErr)
	}
	return rec, nil
}
