package batch

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

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// BoundaryMirror publishes a view's boundary where the speed layer and the
// serving replicas read it (Redis; see speed.SetBoundary).
type BoundaryMirror interface {
	SetBoundary(ctx context.Context, view string, b time.Time) error
}

// MirrorFunc adapts a function to BoundaryMirror.
type MirrorFunc func(ctx context.Context, view string, b time.Time) error

func (f MirrorFunc) SetBoundary(ctx context.Context, view string, b time.Time) error {
	return f(ctx, view, b)
}

// RecomputerConfig configures a Recomputer.
type RecomputerConfig struct {
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
	cfg     RecomputerConfig
	log     *slog.Logger
	metrics *recomputeMetrics
}

// NewRecomputer checks cfg and registers the metrics.
func NewRecomputer(cfg RecomputerConfig) (*Recomputer, error) {
	if cfg.Store == nil {
		return nil, errors.New("batch: recomputer needs a store")
	}
	if cfg.Group == "" {
		return nil, errors.New("batch: recomputer needs the compactor group")
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

// RecomputeOptions narrows or widens one run.
type RecomputeOptions struct {
	// From, To limit the run to hours in [From, To); zero means unbounded.
	From, To time.Time
	// Force recomputes every hour with raw files in the range, changed or
	// not, closed or not (backfill). Hours still open are written but not
	// final, so they are taken again once they close.
	Force bool
}

// RecomputeResult summarizes one run.
type RecomputeResult struct {
	Hours    int   // hours recomputed
	Rows     int64 // raw rows aggregated
	ViewRows int64 // rows written to view files
	Boundary time.Time
	Elapsed  time.Duration
}

// checkView rejects a view whose sketch columns would collide with a name.
func checkView(v *schemas.View) error {
	names := map[string]bool{TimeColumn: true}
	for _, d := range v.Dimensions {
		names[d] = true
	}
	for _, m := range v.Metrics {
		names[m.Name] = true
	}
	for _, m := range v.Metrics {
		if m.Agg == schemas.Uniq && names[HLLColumn(m.Name)] {
			return fmt.Errorf("batch: view %s: column %q of uniq metric %s clashes with a dimension or metric", v.Name, HLLColumn(m.Name), m.Name)
		}
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
func (rc *Recomputer) Recompute(ctx context.Context, v *schemas.View, opt RecomputeOptions) (RecomputeResult, error) {
	start := rc.cfg.Now()
	var res RecomputeResult
	if err := checkView(v); err != nil {
		return res, err
	}
	store := rc.cfg.Store
	st, err := ReadState(ctx, store, v.Name)
	if err != nil {
		return res, err
	}
	fp := v.Fingerprint()
	changed := false // whether _state.json needs writing
	if st.Fingerprint != fp {
		if st.Fingerprint != "" {
			rc.log.Info("view definition changed: every retained hour is stale", "view", v.Name, "old", st.Fingerprint, "new", fp)
		}
		// Keep versions counting up (readers cache by version) and Final
		// (B does not move back); an empty input makes each hour stale.
		for k, h := range st.Hours {
			h.Input = ""
			st.Hours[k] = h
		}
		st.Fingerprint = fp
		changed = true
	}

	wm, err := Watermark(ctx, store, rc.cfg.Group, v.Schema.Topic)
	if err != nil && !errors.Is(err, ErrNoWatermark) {
		return res, fmt.Errorf("batch: recompute view=%s: %w", v.Name, err)
	}
	objs, err := store.List(ctx, lake.RawPrefix(v.Schema.Name))
	if err != nil {
		return res, fmt.Errorf("batch: recompute view=%s: list raw files: %w", v.Name, err)
	}
	byHour := rawHours(objs)
	dirtyObjs, err := store.List(ctx, lake.DirtyPrefix(v.Schema.Name))
	if err != nil {
		return res, fmt.Errorf("batch: recompute view=%s: list dirty markers: %w", v.Name, err)
	}
	dirty := map[time.Time]string{}
	for _, o := range dirtyObjs {
		if _, h, err := lake.ParseDirtyKey(o.Key); err == nil {
			dirty[h] = o.Key
		}
	}

	cutoff := retentionCutoff(v, rc.cfg.Now())
	for k := range st.Hours {
		if t, _ := time.Parse(time.RFC3339, k); t.Before(cutoff) {
			delete(st.Hours, k) // the retention job removes the file
			changed = true
		}
	}
	hours := make([]time.Time, 0, len(byHour))
	for h := range byHour {
		if !h.Before(cutoff) {
			hours = append(hours, h)
		}
	}
	slices.SortFunc(hours, func(a, b time.Time) int { return a.Compare(b) })

	var jobs []hourJob
	for _, h := range hours {
		if !opt.From.IsZero() && h.Before(opt.From.Truncate(time.Hour)) || !opt.To.IsZero() && !h.Before(opt.To) {
			continue
		}
		closed := !wm.IsZero() && !h.Add(time.Hour).After(wm)
		e, ok := st.Hours[HourKey(h)]
		_, isDirty := dirty[h]
		stale := !ok || e.Input != inputFingerprint(byHour[h]) || isDirty || !e.Final
		if opt.Force || closed && stale {
			jobs = append(jobs, hourJob{hour: h, closed: closed, dirty: isDirty})
		}
	}

	// Compute hours in parallel; save the state now and then.
	var (
		mu        sync.Mutex
		done      int
		lastSave  = rc.cfg.Now()
		toClear   []string // dirty markers covered by the state being saved
		saveErr   error
		rowsTotal int64
	)
	save := func(ctx context.Context) error {
		// Called with mu held.
		if err := writeState(ctx, store, v.Name, st); err != nil {
			return err
		}
		for _, k := range toClear {
			if err := store.Delete(ctx, k); err != nil {
				return fmt.Errorf("batch: remove dirty marker %s: %w", k, err)
			}
		}
		toClear = toClear[:0]
		lastSave = rc.cfg.Now()
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rc.cfg.Parallelism)
	for _, j := range jobs {
		g.Go(func() error {
			mu.Lock()
			prev := st.Hours[HourKey(j.hour)]
			mu.Unlock()
			hs, stats, err := rc.recomputeHour(gctx, v, j, prev)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			st.Hours[HourKey(j.hour)] = hs
			if j.dirty {
				toClear = append(toClear, dirty[j.hour])
			}
			done++
			res.Hours++
			res.Rows += stats.kept
			res.ViewRows += hs.Rows
			rowsTotal += stats.kept
			if rc.cfg.Progress != nil {
				rc.cfg.Progress(Progress{View: v.Name, Done: done, Total: len(jobs), Rows: rowsTotal, Elapsed: rc.cfg.Now().Sub(start)})
			}
			if rc.cfg.Now().Sub(lastSave) >= rc.cfg.StateEvery {
				if err := save(gctx); err != nil {
					saveErr = err
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		// Keep what finished: those hours' files are written.
		mu.Lock()
		if saveErr == nil && ctx.Err() == nil {
			if serr := save(context.WithoutCancel(ctx)); serr != nil {
				rc.log.Warn("save view state after failure", "view", v.Name, "err", serr)
			}
		}
		mu.Unlock()
		return res, fmt.Errorf("batch: recompute view=%s: %w", v.Name, err)
	}

	b := boundary(st, hours, wm)
	changed = changed || res.Hours > 0 || !b.Equal(st.Boundary)
	st.Boundary = b
	res.Boundary = b
	// A run that changed nothing leaves _state.json alone: the recompute
	// job runs every few minutes.
	if changed || len(toClear) > 0 {
		mu.Lock()
		err = save(ctx)
		mu.Unlock()
		if err != nil {
			return res, err
		}
	}
	if !st.Boundary.IsZero() {
		rc.metrics.lag.set(v.Name, st.Boundary)
		if rc.cfg.Mirror != nil {
			if err := rc.cfg.Mirror.SetBoundary(ctx, v.Name, st.Boundary); err != nil {
				return res, fmt.Errorf("batch: recompute view=%s: mirror boundary: %w", v.Name, err)
			}
		}
	}
	res.Elapsed = rc.cfg.Now().Sub(start)
	rc.log.Info("recompute done", "view", v.Name, "hours", res.Hours, "rows", res.Rows, "view_rows", res.ViewRows,
		"boundary", st.Boundary.Format(time.RFC3339), "elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// recomputeHour computes and writes one hour and returns its new state.
func (rc *Recomputer) recomputeHour(ctx context.Context, v *schemas.View, j hourJob, prev HourState) (HourState, hourStats, error) {
	t0 := time.Now()
	plan, redundant, err := planHour(ctx, rc.cfg.Store, v.Schema.Name, j.hour)
	if err != nil {
		return prev, hourStats{}, err
	}
	// The input is every raw file of the hour, as the run's listing saw it.
	objs := make([]lake.Object, 0, len(plan)+len(redundant))
	for _, f := range slices.Concat(plan, redundant) {
		objs = append(objs, lake.Object{Key: f.Key, Size: f.Size})
	}
	vh, stats, err := computeHour(ctx, rc.cfg.Store, v, j.hour, plan)
	if err != nil {
		return prev, stats, fmt.Errorf("hour %s: %w", HourKey(j.hour), err)
	}
	hs := HourState{Input: inputFingerprint(objs), Rows: int64(vh.len()), Version: prev.Version + 1, Final: j.closed}
	key := lake.ViewKey(v.Name, j.hour)
	if vh.len() == 0 {
		if err := rc.cfg.Store.Delete(ctx, key); err != nil {
			return prev, stats, fmt.Errorf("hour %s: remove empty view file: %w", HourKey(j.hour), err)
		}
	} else {
		b, err := encodeViewFile(v, vh, hs.Version)
		if err != nil {
			return prev, stats, fmt.Errorf("hour %s: %w", HourKey(j.hour), err)
		}
		if err := lake.PutBytes(ctx, rc.cfg.Store, key, b); err != nil {
			return prev, stats, fmt.Errorf("hour %s: write view file: %w", HourKey(j.hour), err)
		}
	}
	rc.metrics.hours.WithLabelValues(v.Name).Inc()
	rc.metrics.rows.WithLabelValues(v.Name).Add(float64(stats.kept))
	rc.metrics.hourSec.WithLabelValues(v.Name).Observe(time.Since(t0).Seconds())
	if stats.misplaced > 0 {
		rc.metrics.misplaced.WithLabelValues(v.Name).Add(float64(stats.misplaced))
		rc.log.Warn("raw rows outside their file's hour skipped", "view", v.Name, "hour", HourKey(j.hour), "rows", stats.misplaced)
	}
	rc.log.Debug("hour recomputed", "view", v.Name, "hour", HourKey(j.hour), "files", stats.files, "read", stats.read,
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
// never before the last B. hours are the retained hours with raw files,
// sorted; an hour without files has nothing to serve and blocks nothing, but
// no hour the watermark has not closed is final.
func boundary(st *State, hours []time.Time, wm time.Time) time.Time {
	if wm.IsZero() {
		return st.Boundary
	}
	b := wm.UTC().Truncate(time.Hour)
	for _, h := range hours {
		if !h.Before(b) {
			break
		}
		if e, ok := st.Hours[HourKey(h)]; !ok || !e.Final {
			b = h
			break
		}
	}
	if b.Before(st.Boundary) {
		return st.Boundary
	}
	return b
}
