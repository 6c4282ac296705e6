package recompute

// A run shared by several runners (Options.Leases). Every runner of the
// recompute job lists the same stale hours and works through them; an hour
// is computed only under its own lease (view, hour), taken without waiting
// — an hour whose lease another runner holds is left to it — so N runners
// compute N hours at once and no hour is computed by two at once. A runner
// killed mid-hour leaves its lease to expire; the next run takes the hour
// again.
//
// _state.json stays one object per view, written by many runners: each
// hour is merged into it on its own, under the hour's lease — read the
// state, set the hour's entry, write it conditionally on the version read
// (If-Match), and on a refusal (another runner merged its hour meanwhile)
// read it again and retry. What keeps a runner that lost an hour's lease
// from overwriting the hour's entry is the entry's Token, the fencing token
// of the lease it was written under: a merge never replaces an entry
// written under a later lease, and the conditional write makes that check
// and the write one step. View-wide changes (a new definition, expired
// and sealed hours) are functions of the state, applied again to every
// state a merge reads.
//
// B moves once every hour below it is final: after its hours each runner
// takes the view's "boundary" lease, computes B from the state as merged
// so far (boundary: forward only) and publishes it. The runner that
// finishes last sees every hour final and moves B past them.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/backoff"
	"github.com/lambdalake/lambdalake/lake"
)

// Leaser hands out the leases of a shared run (jobs.ItemLeaser): one per
// (view, item), where an item is an hour (views.HourKey) or "boundary".
type Leaser interface {
	// Try takes the lease without waiting; ok is false if it is held
	// elsewhere (or the view is held whole, by a backfill or a repair).
	Try(ctx context.Context, view, item string) (l Lease, ok bool, err error)
}

// Lease is one held lease of a shared run.
type Lease interface {
	// Token is the fencing token: above every earlier lease's.
	Token() int64
	// Lost is closed once the lease is lost.
	Lost() <-chan struct{}
	// Check verifies the lease is still held (an error otherwise).
	Check(ctx context.Context) error
	// Done records the work done under the lease (worked: some was
	// started; err: how it ended) and releases it.
	Done(ctx context.Context, worked bool, err error) error
}

// BoundaryItem is the lease item under which a runner of a shared run
// moves a view's B.
const BoundaryItem = "boundary"

// maxMerges bounds the retries of one merge into _state.json: each
// refusal means another runner's merge got in, so the bound is only
// reached under a pathological number of runners.
const maxMerges = 100

// computeShared computes this runner's share of the stale hours.
func (r *viewRun) computeShared(ctx context.Context, jobs []hourJob, opt Options) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.rc.cfg.Parallelism)
	for _, j := range jobs {
		g.Go(func() error { return r.sharedHour(gctx, j, opt) })
	}
	return g.Wait()
}

// sharedHour computes one hour if its lease is free and another runner
// has not computed it since this run listed it.
func (r *viewRun) sharedHour(ctx context.Context, j hourJob, opt Options) (err error) {
	key := views.HourKey(j.hour)
	l, ok, err := opt.Leases.Try(ctx, r.v.Name, key)
	if err != nil {
		return fmt.Errorf("hour %s: %w", key, err)
	}
	if !ok {
		r.mu.Lock()
		r.res.Busy++
		r.mu.Unlock()
		return nil
	}
	worked := false
	defer func() {
		if derr := l.Done(context.WithoutCancel(ctx), worked, err); derr != nil {
			r.rc.log.Warn("release hour lease", "view", r.v.Name, "hour", key, "err", derr)
		}
	}()
	// A lost lease stops the hour's work at once; the cause says why.
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-l.Lost():
			cancel(l.Check(context.WithoutCancel(ctx)))
		case <-hctx.Done():
		}
	}()
	cause := func(err error) error {
		if c := context.Cause(hctx); c != nil && !errors.Is(c, context.Canceled) {
			return fmt.Errorf("hour %s: %w", key, c)
		}
		return err
	}

	st, err := r.readMerged(hctx)
	if err != nil {
		return cause(err)
	}
	prev := st.Hours[key]
	if !opt.Force {
		stale, err := r.stillStale(hctx, j, prev)
		if err != nil || !stale {
			return cause(err) // nil: done by another runner since this run listed it
		}
	}
	worked = true
	hs, stats, err := r.rc.recomputeHour(hctx, r.v, j, prev, l.Check)
	if err != nil {
		return cause(err)
	}
	hs.Token = l.Token()
	if err := r.mergeHour(hctx, st, j, hs, l); err != nil {
		return cause(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	r.res.Hours++
	r.res.Rows += stats.kept
	r.res.ViewRows += hs.Rows
	if r.rc.cfg.Progress != nil {
		r.rc.cfg.Progress(Progress{View: r.v.Name, Done: r.done, Total: r.done + r.res.Busy, Rows: r.res.Rows, Elapsed: r.rc.cfg.Now().Sub(r.start)})
	}
	return nil
}

// readMerged reads the view's state as it is now, with this run's
// view-wide changes applied.
func (r *viewRun) readMerged(ctx context.Context) (*views.State, error) {
	st, err := views.ReadState(ctx, r.rc.cfg.Store, r.v.Name)
	if err != nil {
		return nil, err
	}
	r.applyDefinition(st)
	r.expire(st)
	return st, nil
}

// stillStale says whether an hour this run listed as stale still is,
// judged by the state read under its lease: another runner may have
// computed it since, from the same files.
func (r *viewRun) stillStale(ctx context.Context, j hourJob, e views.HourState) (bool, error) {
	if e.Input != inputFingerprint(r.byHour[j.hour]) || !e.Final {
		return true, nil
	}
	if !j.dirty {
		return false, nil
	}
	// Dirty when listed: still dirty unless the runner that computed it
	// removed the marker after saving the hour.
	rc, err := r.rc.cfg.Store.Get(ctx, r.dirty[j.hour])
	if errors.Is(err, lake.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("hour %s: read dirty marker: %w", views.HourKey(j.hour), err)
	}
	rc.Close()
	return true, nil
}

// mergeHour merges one computed hour into _state.json (st: the state its
// computation started from), then removes its dirty marker.
func (r *viewRun) mergeHour(ctx context.Context, st *views.State, j hourJob, hs views.HourState, l Lease) error {
	key := views.HourKey(j.hour)
	store := r.rc.cfg.Store
	for attempt := 1; ; attempt++ {
		if cur := st.Hours[key]; cur.Token > hs.Token {
			return fmt.Errorf("hour %s: written meanwhile under a later lease (token %d, ours %d): %w", key, cur.Token, hs.Token, lake.ErrPreconditionFailed)
		}
		st.Hours[key] = hs
		if err := l.Check(ctx); err != nil {
			return err
		}
		err := views.WriteState(ctx, store, r.v.Name, st)
		if err == nil {
			break
		}
		if !errors.Is(err, lake.ErrPreconditionFailed) || attempt >= maxMerges {
			return fmt.Errorf("hour %s: %w", key, err)
		}
		r.rc.metrics.merges.WithLabelValues(r.v.Name).Inc()
		backoff.Sleep(ctx, time.Duration(rand.IntN(20))*time.Millisecond) // spread the runners' retries
		if st, err = r.readMerged(ctx); err != nil {
			return err
		}
	}
	if j.dirty {
		if err := l.Check(ctx); err != nil {
			return err
		}
		if err := store.Delete(ctx, r.dirty[j.hour]); err != nil {
			return fmt.Errorf("hour %s: remove dirty marker: %w", key, err)
		}
	}
	return nil
}

// boundaryWait is how long a runner waits for the view's boundary lease
// another runner holds (it writes B from the state as merged by then; a
// runner that finishes after it takes B further itself).
const boundaryWait = 10 * time.Second

// advanceShared moves B from the state as every runner's merges left it,
// under the view's boundary lease, and mirrors it if mirror.
func (r *viewRun) advanceShared(ctx context.Context, leases Leaser, mirror bool) error {
	var l Lease
	deadline := time.Now().Add(boundaryWait)
	for {
		var ok bool
		var err error
		if l, ok, err = leases.Try(ctx, r.v.Name, BoundaryItem); err != nil {
			return fmt.Errorf("boundary: %w", err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) || !backoff.Sleep(ctx, 100*time.Millisecond) {
			r.rc.log.Info("the view's boundary lease is held elsewhere; B left to its holder", "view", r.v.Name)
			return ctx.Err()
		}
	}
	var err error
	defer func() {
		if derr := l.Done(context.WithoutCancel(ctx), false, err); derr != nil {
			r.rc.log.Warn("release boundary lease", "view", r.v.Name, "err", derr)
		}
	}()
	err = r.mergeBoundary(ctx, l)
	if err != nil || r.st.Boundary.IsZero() {
		return err
	}
	r.rc.metrics.lag.set(r.v.Name, r.st.Boundary)
	if mirror && r.rc.cfg.Mirror != nil {
		if err = l.Check(ctx); err != nil {
			return err
		}
		if err = r.rc.cfg.Mirror.SetBoundary(ctx, r.v.Name, r.st.Boundary); err != nil {
			return fmt.Errorf("mirror boundary: %w", err)
		}
	}
	return nil
}

// mergeBoundary sets B in _state.json from the state as it is now (and the
// view-wide changes), then removes the dirty markers of sealed hours.
func (r *viewRun) mergeBoundary(ctx context.Context, l Lease) error {
	for attempt := 1; ; attempt++ {
		st, err := views.ReadState(ctx, r.rc.cfg.Store, r.v.Name)
		if err != nil {
			return err
		}
		changed := r.applyDefinition(st)
		changed = r.expire(st) || changed
		b := boundary(st, r.hours, r.wm)
		changed = changed || !b.Equal(st.Boundary)
		st.Boundary = b
		r.st, r.res.Boundary = st, b
		if !changed {
			break
		}
		if err := l.Check(ctx); err != nil {
			return err
		}
		err = views.WriteState(ctx, r.rc.cfg.Store, r.v.Name, st)
		if err == nil {
			break
		}
		if !errors.Is(err, lake.ErrPreconditionFailed) || attempt >= maxMerges {
			return fmt.Errorf("boundary: %w", err)
		}
		r.rc.metrics.merges.WithLabelValues(r.v.Name).Inc()
		backoff.Sleep(ctx, time.Duration(rand.IntN(20))*time.Millisecond)
	}
	for _, k := range r.toClear {
		if err := l.Check(ctx); err != nil {
			return err
		}
		if err := r.rc.cfg.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("remove dirty marker: %w", err)
		}
	}
	r.toClear = r.toClear[:0]
	return nil
}
