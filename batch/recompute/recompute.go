package recompute

// Recompute (DESIGN §2): for each closed or dirty hour of a view, read the
// hour's raw files with Arrow, drop overlapping offsets and duplicate ids,
// aggregate to the view's grain and write views/{view}/dt=/hr=/view.parquet
// in one PUT. Then record the hour in views/{view}/_state.json and advance
// the boundary B, mirrored to Redis for the speed layer and serving.
//
// Which hours: every retained hour with raw files whose input (the list of
// raw files and their sizes) changed since it was computed, that carries a
// dirty marker, that closed after it was computed, or — when the view's
// fingerprint changed — every retained hour (backfill). A caller may force a
// range (lambdalake batch backfill).
//
// B never moves backwards: a late event recomputes its hour in place, and
// the hour's earlier version stays served until the new file replaces it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// BoundaryMirror publishes a view's boundary where the speed layer and the
// serving replicas read it (Redis; see internal/boundary.Publish).
type BoundaryMirror interface {
	SetBoundary(ctx context.Context, view string, b time.Time) error
}

var _ BoundaryMirror = MirrorFunc(nil)

// MirrorFunc adapts a function to BoundaryMirror.
type MirrorFunc func(ctx context.Context, view string, b time.Time) error

func (f MirrorFunc) SetBoundary(ctx context.Context, view string, b time.Time) error {
	return f(ctx, view, b)
}

// Config configures a Recomputer.
type Config struct {
	Store lake.Store
	// Group is the compactor's consumer group, whose checkpoints carry the
	// watermark that closes hours.
	Group string
	// Mirror receives B after every run; nil leaves Redis alone.
	Mirror BoundaryMirror
	// Parallelism is how many hours are computed at once; default GOMAXPROCS.
	Parallelism int
	// StateEvery is how often a long run saves _state.json, so a crash
	// loses little work; default 10s.
	StateEvery time.Duration
	// Progress, if set, is called after every hour.
	Progress func(Progress)

	Registerer prometheus.Registerer // default prometheus.DefaultRegisterer
	Logger     *slog.Logger          // default slog.Default()
	Now        func() time.Time      // default time.Now
}

// Progress is reported after each hour of a run.
type Progress struct {
	View        string
	Done, Total int
	Rows        int64 // raw rows read so far
	Elapsed     time.Duration
}

// Recomputer recomputes batch views. Safe for concurrent use on different
// views; runs on the same view must not overlap (the jobs lock sees to it).
type Recomputer struct {
	cfg     Config
	log     *slog.Logger
	metrics *recomputeMetrics
}

// New checks cfg and registers the metrics.
func New(cfg Config) (*Recomputer, error) {
	if cfg.Store == nil {
		return nil, errors.New("recompute: no lake store")
	}
	if cfg.Group == "" {
		return nil, errors.New("recompute: no compactor group")
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = runtime.GOMAXPROCS(0)
	}
	if cfg.StateEvery <= 0 {
		cfg.StateEvery = 10 * time.Second
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
	m, err := newRecomputeMetrics(cfg.Registerer, cfg.Now)
	if err != nil {
		return nil, err
	}
	return &Recomputer{cfg: cfg, log: cfg.Logger, metrics: m}, nil
}

// Options narrows or widens one run.
type Options struct {
	// From, To limit the run to hours in [From, To); zero means unbounded.
	From, To time.Time
	// Force recomputes every hour with raw files in the range, changed or
	// not, closed or not (backfill). Hours still open are written but not
	// final, so they are taken again once they close.
	Force bool
	// Leases, if set, makes the run one runner's part of a run shared by
	// several (shared.go): each hour is computed under its own lease, and
	// _state.json is merged hour by hour rather than written whole. Nil:
	// the caller holds the view alone (the jobs lock).
	Leases Leaser
}

// Result summarizes one run.
type Result struct {
	Hours    int   // hours recomputed
	Busy     int   // hours left to other runners (a shared run: their lease was held)
	Rows     int64 // raw rows aggregated
	ViewRows int64 // rows written to view files
	Boundary time.Time
	Elapsed  time.Duration
	// Repaired is set by RepairBoundary when B was past the wall clock:
	// Previous is that B, Reset the hours whose view file and finality
	// were dropped because they cannot be final yet.
	Repaired bool
	Previous time.Time
	Reset    []time.Time
}

// MaxClockSkew is how far a B may lie past this process's wall clock
// before recompute takes it for one moved by data from before admission
// (ErrBoundaryAhead) rather than by another machine's clock running a
// little ahead. B is computed from a watermark that never passes the wall
// clock, so a legitimate B is at most this skew ahead.
const MaxClockSkew = 5 * time.Minute

// ErrBoundaryAhead is returned by Recompute for a view whose B lies past
// the wall clock: events with far-future times moved it before admission
// existed. B never moves back by itself; the run still computes the hours
// that closed (batch keeps serving them) but leaves B alone until an
// operator runs `lambdalake batch repair-boundary --view V`
// (Recomputer.RepairBoundary).
var ErrBoundaryAhead = errors.New("recompute: the boundary B is past the wall clock (moved by future event times before admission existed); repair it with `lambdalake batch repair-boundary --view VIEW`")

// checkView rejects a view whose sketch or overflow columns would collide
// with a name.
func checkView(v *schemas.View) error {
	names := map[string]bool{views.TimeColumn: true}
	for _, d := range v.Dimensions {
		names[d] = true
	}
	for _, m := range v.Metrics {
		names[m.Name] = true
	}
	for _, c := range views.ExtraColumns(v) {
		if names[c] {
			return fmt.Errorf("view file column %q clashes with a dimension, a metric or another column", c)
		}
		names[c] = true
	}
	return nil
}

// hourJob is one hour to compute.
type hourJob struct {
	hour   time.Time
	closed bool
	dirty  bool
}

// Recompute brings a view's batch hours up to date and advances B.
func (rc *Recomputer) Recompute(ctx context.Context, v *schemas.View, opt Options) (Result, error) {
	res, err := rc.recompute(ctx, v, opt, false)
	if err != nil {
		return res, fmt.Errorf("recompute: view %s: %w", v.Name, err)
	}
	return res, nil
}

// RepairBoundary repairs a view whose B lies past the wall clock
// (ErrBoundaryAhead): it resets every hour that cannot be final under the
// wall clock (after the wall clock's hour, or marked final while the
// clamped watermark has not closed it) — its view file is removed and its
// state entry keeps only its version, so readers' caches never confuse a
// later file with it — then recomputes the closed hours as Recompute does
// and sets B from the lake state alone, earlier than the B it replaces.
// The caller publishes it with boundary.Override: the mirror's forward-only
// Publish would refuse it. On a view whose B is not ahead it is Recompute
// without publishing. Run it under the recompute lock.
func (rc *Recomputer) RepairBoundary(ctx context.Context, v *schemas.View) (Result, error) {
	res, err := rc.recompute(ctx, v, Options{}, true)
	if err != nil {
		return res, fmt.Errorf("recompute: repair boundary of view %s: %w", v.Name, err)
	}
	return res, nil
}

// viewRun is one Recompute of one view, stage by stage.
type viewRun struct {
	rc      *Recomputer
	v       *schemas.View
	start   time.Time
	st      *views.State
	changed bool // whether _state.json needs writing

	wm     time.Time                   // the compactor's watermark, clamped to the wall clock; zero: none yet
	seal   raw.Seal                    // the schema's sealed hours
	byHour map[time.Time][]lake.Object // raw files by hour
	hours  []time.Time                 // retained, unsealed hours with raw files, sorted
	dirty  map[time.Time]string        // hour → its dirty marker's key
	reset  []time.Time                 // hours a repair reset, whose view files go once the state is saved

	// While hours are computed in parallel, mu guards st, res and the rest.
	mu       sync.Mutex
	res      Result
	done     int
	lastSave time.Time
	toClear  []string // dirty markers covered by the state being saved
}

func (rc *Recomputer) recompute(ctx context.Context, v *schemas.View, opt Options, repair bool) (Result, error) {
	if err := checkView(v); err != nil {
		return Result{}, err
	}
	r := &viewRun{rc: rc, v: v, start: rc.cfg.Now()}
	r.lastSave = r.start
	if err := r.readState(ctx); err != nil {
		return r.res, err
	}
	if err := r.listInputs(ctx); err != nil {
		return r.res, err
	}
	ahead := r.st.Boundary.After(r.start.Add(MaxClockSkew))
	if ahead && repair {
		if r.wm.IsZero() {
			return r.res, fmt.Errorf("no compactor watermark for topic %s (group %s): which hours are closed is unknown", r.v.Schema.Topic, rc.cfg.Group)
		}
		r.resetAhead()
		ahead = false
	}
	r.changed = r.applyDefinition(r.st) || r.changed
	r.dropExpired()
	if opt.Leases != nil && !repair {
		if err := r.computeShared(ctx, r.stale(opt), opt); err != nil {
			return r.res, err
		}
		if err := r.advanceShared(ctx, opt.Leases, !ahead); err != nil {
			return r.res, err
		}
	} else {
		if err := r.computeHours(ctx, r.stale(opt)); err != nil {
			return r.res, err
		}
		if err := r.advanceBoundary(ctx, !ahead && !repair); err != nil {
			return r.res, err
		}
	}
	if err := r.removeReset(ctx); err != nil {
		return r.res, err
	}
	r.res.Elapsed = rc.cfg.Now().Sub(r.start)
	rc.log.Info("recompute done", "view", v.Name, "hours", r.res.Hours, "rows", r.res.Rows, "view_rows", r.res.ViewRows,
		"boundary", r.st.Boundary.Format(time.RFC3339), "elapsed", r.res.Elapsed.Round(time.Millisecond))
	if ahead {
		rc.metrics.ahead.WithLabelValues(v.Name).Inc()
		rc.log.Error("the boundary B is past the wall clock; left as it is", "view", v.Name, "boundary", r.st.Boundary)
		return r.res, ErrBoundaryAhead
	}
	return r.res, nil
}

// readState reads the view's state.
func (r *viewRun) readState(ctx context.Context) error {
	st, err := views.ReadState(ctx, r.rc.cfg.Store, r.v.Name)
	if err != nil {
		return err
	}
	r.st = st
	return nil
}

// applyDefinition makes every hour of st stale after a change of the view
// definition, except sealed ones: what is left of their raw data is not
// the hour, so they keep the file and the definition they were computed
// with (readers refuse to serve them under the new one, see
// views.ErrSealedDefinition) rather than become wrong or empty. It says
// whether st changed.
func (r *viewRun) applyDefinition(st *views.State) bool {
	fp := r.v.Fingerprint()
	if st.Fingerprint == fp {
		return false
	}
	if st.Fingerprint != "" {
		r.rc.log.Info("view definition changed: every retained hour that is not sealed is stale", "view", r.v.Name, "old", st.Fingerprint, "new", fp)
	}
	// Keep versions counting up (readers cache by version) and Final
	// (B does not move back); an empty input makes each hour stale.
	for k, h := range st.Hours {
		if h.Fingerprint == "" {
			h.Fingerprint = st.Fingerprint
		}
		if t, _ := time.Parse(time.RFC3339, k); !r.seal.Sealed(t) {
			h.Input = ""
		}
		st.Hours[k] = h
	}
	st.Fingerprint = fp
	return true
}

// resetAhead is a repair's first step (RepairBoundary): every hour that
// cannot be final under the wall clock loses its finality and its view
// file (removed once the state is saved; the entry keeps its version), and
// B is forgotten, to be set again from the lake state alone.
func (r *viewRun) resetAhead() {
	nowHour := r.start.UTC().Truncate(time.Hour)
	for k, h := range r.st.Hours {
		t, err := time.Parse(time.RFC3339, k)
		if err != nil {
			continue
		}
		closed := !t.Add(time.Hour).After(r.wm)
		if !t.After(nowHour) && (closed || !h.Final) {
			continue
		}
		r.st.Hours[k] = views.HourState{Version: h.Version, Token: h.Token}
		r.reset = append(r.reset, t)
	}
	slices.SortFunc(r.reset, func(a, b time.Time) int { return a.Compare(b) })
	r.res.Repaired, r.res.Previous, r.res.Reset = true, r.st.Boundary, r.reset
	r.rc.log.Warn("repairing a boundary past the wall clock", "view", r.v.Name, "boundary", r.st.Boundary, "hours_reset", len(r.reset))
	r.st.Boundary = time.Time{}
	r.changed = true
}

// removeReset removes the view files of the hours a repair reset, once the
// state that no longer lists them is saved.
func (r *viewRun) removeReset(ctx context.Context) error {
	for _, h := range r.reset {
		if e := r.st.Hours[views.HourKey(h)]; e.Rows > 0 {
			continue // recomputed in this run: its file is the new one
		}
		if err := r.rc.cfg.Store.Delete(ctx, lake.ViewKey(r.v.Name, h)); err != nil {
			return fmt.Errorf("remove view file of reset hour %s: %w", views.HourKey(h), err)
		}
	}
	return nil
}

// listInputs reads the watermark and lists the raw files and dirty markers.
func (r *viewRun) listInputs(ctx context.Context) error {
	store, s := r.rc.cfg.Store, r.v.Schema
	wm, err := raw.Watermark(ctx, store, r.rc.cfg.Group, s.Topic)
	if err != nil && !errors.Is(err, raw.ErrNoWatermark) {
		return err
	}
	// Hours close by the wall clock at the latest, whatever a checkpoint
	// says (one from before admission may say 9999-12-31): the compactor
	// clamps its watermark the same way.
	if limit := r.start.Add(-r.v.Lateness).UTC(); wm.After(limit) {
		wm = limit
	}
	r.wm = wm
	if r.seal, _, err = raw.ReadSeal(ctx, store, s.Name); err != nil {
		return err
	}
	objs, err := store.List(ctx, lake.RawPrefix(s.Name))
	if err != nil {
		return fmt.Errorf("list raw files: %w", err)
	}
	r.byHour = rawHours(objs)
	dirtyObjs, err := store.List(ctx, lake.DirtyPrefix(s.Name))
	if err != nil {
		return fmt.Errorf("list dirty markers: %w", err)
	}
	r.dirty = map[time.Time]string{}
	for _, o := range dirtyObjs {
		if _, h, err := lake.ParseDirtyKey(o.Key); err == nil {
			r.dirty[h] = o.Key
		}
	}
	return nil
}

// dropExpired forgets the hours before the view's retention (the retention
// job removes their files), marks the sealed hours in the state and keeps
// the retained hours with raw files that are not sealed: a sealed hour is
// never recomputed (its dirty marker, if a late file made one, is
// removed), and it does not hold B back, whatever is left of its files.
func (r *viewRun) dropExpired() {
	r.changed = r.expire(r.st) || r.changed
	cutoff := retentionCutoff(r.v, r.start)
	r.hours = make([]time.Time, 0, len(r.byHour))
	for h := range r.byHour {
		if h.Before(cutoff) {
			continue
		}
		if r.seal.Sealed(h) {
			if key, ok := r.dirty[h]; ok {
				r.rc.log.Warn("late data in a sealed hour ignored", "view", r.v.Name, "hour", views.HourKey(h))
				r.toClear = append(r.toClear, key)
			}
			continue
		}
		r.hours = append(r.hours, h)
	}
	slices.SortFunc(r.hours, func(a, b time.Time) int { return a.Compare(b) })
}

// expire forgets st's hours before the view's retention and marks its
// sealed hours; it says whether st changed.
func (r *viewRun) expire(st *views.State) bool {
	cutoff := retentionCutoff(r.v, r.start)
	changed := false
	for k, h := range st.Hours {
		t, _ := time.Parse(time.RFC3339, k)
		switch {
		case t.Before(cutoff):
			delete(st.Hours, k)
			changed = true
		case r.seal.Sealed(t) && !h.Sealed:
			h.Sealed = true
			st.Hours[k] = h
			changed = true
		}
	}
	return changed
}

// stale returns the hours to compute: in opt's range, closed and changed
// since they were computed, or all of them if opt.Force.
func (r *viewRun) stale(opt Options) []hourJob {
	var jobs []hourJob
	for _, h := range r.hours {
		if !opt.From.IsZero() && h.Before(opt.From.Truncate(time.Hour)) || !opt.To.IsZero() && !h.Before(opt.To) {
			continue
		}
		closed := !r.wm.IsZero() && !h.Add(time.Hour).After(r.wm)
		e, ok := r.st.Hours[views.HourKey(h)]
		_, isDirty := r.dirty[h]
		stale := !ok || e.Input != inputFingerprint(r.byHour[h]) || isDirty || !e.Final
		if opt.Force || closed && stale {
			jobs = append(jobs, hourJob{hour: h, closed: closed, dirty: isDirty})
		}
	}
	return jobs
}

// computeHours computes the jobs in parallel and saves the state now and
// then. On failure it still saves the hours that finished: their files
// are written.
func (r *viewRun) computeHours(ctx context.Context, jobs []hourJob) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.rc.cfg.Parallelism)
	var saveErr error
	for _, j := range jobs {
		g.Go(func() error {
			r.mu.Lock()
			prev := r.st.Hours[views.HourKey(j.hour)]
			r.mu.Unlock()
			hs, stats, err := r.rc.recomputeHour(gctx, r.v, j, prev, nil)
			if err != nil {
				return err
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			r.st.Hours[views.HourKey(j.hour)] = hs
			if j.dirty {
				r.toClear = append(r.toClear, r.dirty[j.hour])
			}
			r.done++
			r.res.Hours++
			r.res.Rows += stats.kept
			r.res.ViewRows += hs.Rows
			if r.rc.cfg.Progress != nil {
				r.rc.cfg.Progress(Progress{View: r.v.Name, Done: r.done, Total: len(jobs), Rows: r.res.Rows, Elapsed: r.rc.cfg.Now().Sub(r.start)})
			}
			if r.rc.cfg.Now().Sub(r.lastSave) >= r.rc.cfg.StateEvery {
				if err := r.save(gctx); err != nil {
					saveErr = err
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		return nil
	}
	r.mu.Lock()
	if saveErr == nil && ctx.Err() == nil {
		if serr := r.save(context.WithoutCancel(ctx)); serr != nil {
			r.rc.log.Warn("save view state after failure", "view", r.v.Name, "err", serr)
		}
	}
	r.mu.Unlock()
	return err
}

// advanceBoundary moves B, saves the state if anything changed (the job
// runs every few minutes; a run that changed nothing writes nothing) and,
// if mirror, mirrors B.
func (r *viewRun) advanceBoundary(ctx context.Context, mirror bool) error {
	b := boundary(r.st, r.hours, r.wm)
	r.changed = r.changed || r.res.Hours > 0 || !b.Equal(r.st.Boundary)
	r.st.Boundary = b
	r.res.Boundary = b
	if r.changed || len(r.toClear) > 0 {
		r.mu.Lock()
		err := r.save(ctx)
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if r.st.Boundary.IsZero() {
		return nil
	}
	r.rc.metrics.lag.set(r.v.Name, r.st.Boundary)
	if mirror && r.rc.cfg.Mirror != nil {
		if err := r.rc.cfg.Mirror.SetBoundary(ctx, r.v.Name, r.st.Boundary); err != nil {
			return fmt.Errorf("mirror boundary: %w", err)
		}
	}
	return nil
}

// save writes _state.json, then removes the dirty markers it covers.
// Called with mu held.
func (r *viewRun) save(ctx context.Context) error {
	store := r.rc.cfg.Store
	if err := views.WriteState(ctx, store, r.v.Name, r.st); err != nil {
		return err
	}
	for _, k := range r.toClear {
		if err := store.Delete(ctx, k); err != nil {
			return fmt.Errorf("remove dirty marker: %w", err)
		}
	}
	r.toClear = r.toClear[:0]
	r.lastSave = r.rc.cfg.Now()
	return nil
}

// recomputeHour computes and writes one hour and returns its new state
// (its Token is prev's: a shared run sets its lease's). check, if set, is
// called before the view file is written (a shared run's hour lease).
func (rc *Recomputer) recomputeHour(ctx context.Context, v *schemas.View, j hourJob, prev views.HourState, check func(context.Context) error) (views.HourState, hourStats, error) {
	t0 := time.Now()
	plan, redundant, err := raw.PlanHour(ctx, rc.cfg.Store, v.Schema.Name, j.hour)
	if err != nil {
		return prev, hourStats{}, fmt.Errorf("hour %s: %w", views.HourKey(j.hour), err)
	}
	// The input is every raw file of the hour, as the run's listing saw it.
	objs := make([]lake.Object, 0, len(plan)+len(redundant))
	for _, f := range slices.Concat(plan, redundant) {
		objs = append(objs, lake.Object{Key: f.Key, Size: f.Size})
	}
	vh, stats, err := computeHour(ctx, rc.cfg.Store, v, j.hour, plan)
	if err != nil {
		return prev, stats, fmt.Errorf("hour %s: %w", views.HourKey(j.hour), err)
	}
	hs := views.HourState{Input: inputFingerprint(objs), Rows: int64(vh.Len()), Version: prev.Version + 1, Final: j.closed,
		Fingerprint: v.Fingerprint(), Token: prev.Token}
	key := lake.ViewKey(v.Name, j.hour)
	if check != nil {
		if err := check(ctx); err != nil {
			return prev, stats, fmt.Errorf("hour %s: %w", views.HourKey(j.hour), err)
		}
	}
	if vh.Len() == 0 {
		if err := rc.cfg.Store.Delete(ctx, key); err != nil {
			return prev, stats, fmt.Errorf("hour %s: remove empty view file: %w", views.HourKey(j.hour), err)
		}
	} else {
		b, err := views.Encode(v, vh, hs.Version)
		if err != nil {
			return prev, stats, fmt.Errorf("hour %s: %w", views.HourKey(j.hour), err)
		}
		if err := lake.PutBytes(ctx, rc.cfg.Store, key, b); err != nil {
			return prev, stats, fmt.Errorf("hour %s: write view file: %w", views.HourKey(j.hour), err)
		}
	}
	rc.metrics.hours.WithLabelValues(v.Name).Inc()
	rc.metrics.rows.WithLabelValues(v.Name).Add(float64(stats.kept))
	rc.metrics.hourSec.WithLabelValues(v.Name).Observe(time.Since(t0).Seconds())
	if stats.misplaced > 0 {
		rc.metrics.misplaced.WithLabelValues(v.Name).Add(float64(stats.misplaced))
		rc.log.Warn("raw rows outside their file's hour skipped", "view", v.Name, "hour", views.HourKey(j.hour), "rows", stats.misplaced)
	}
	rc.log.Debug("hour recomputed", "view", v.Name, "hour", views.HourKey(j.hour), "files", stats.files, "read", stats.read,
		"overlap", stats.overlap, "dup_ids", stats.dupIDs, "rows", hs.Rows, "version", hs.Version, "final", hs.Final,
		"elapsed", time.Since(t0).Round(time.Millisecond))
	return hs, stats, nil
}

// retentionCutoff is the first retained hour of a view (zero: keep all).
func retentionCutoff(v *schemas.View, now time.Time) time.Time {
	if v.Retention <= 0 {
		return time.Time{}
	}
	return now.Add(-v.Retention).UTC().Truncate(time.Hour)
}

// boundary is B: the start of the earliest retained hour that is not final,
// never before the last B. hours are the retained, unsealed hours with raw
// files, sorted; an hour without files has nothing to serve and blocks
// nothing, but no hour the watermark has not closed is final. The
// watermark is clamped to the wall clock (listInputs), so B never passes
// the wall clock's hour unless the last B already had.
func boundary(st *views.State, hours []time.Time, wm time.Time) time.Time {
	if wm.IsZero() {
		return st.Boundary
	}
	b := wm.UTC().Truncate(time.Hour)
	for _, h := range hours {
		if !h.Before(b) {
			break
		}
		if e, ok := st.Hours[views.HourKey(h)]; !ok || !e.Final {
			b = h
			break
		}
	}
	if b.Before(st.Boundary) {
		return st.Boundary
	}
	return b
}
