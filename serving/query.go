package serving

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// span is a half-open time range [from, to).
type span struct{ from, to time.Time }

// answer is a computed query, before printing.
type answer struct {
	boundary time.Time // zero: none
	batch    *span     // read from batch view files
	speed    *span     // read from Redis
	cold     []span    // computed from the raw lake
	gaps     []span    // nobody could answer: not in the rows
	rows     []outRow
	approx   []bool // per view metric
}

// depError marks a failure of a dependency (Redis, the lake): 503.
type depError struct{ err error }

func (e *depError) Error() string { return e.err.Error() }
func (e *depError) Unwrap() error { return e.err }

func dep(err error) error { return &depError{err} }

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// floorTo floors t to a multiple of d since the epoch.
func floorTo(t time.Time, d time.Duration) time.Time {
	us, du := t.UnixMicro(), d.Microseconds()
	return time.UnixMicro(us - ((us%du)+du)%du).UTC()
}

// boundary reads B once for a request: Redis (the mirror every replica and
// the speed layer read), else the lake's state; zero when batch holds
// nothing yet, so the speed layer answers everything.
func (a *API) boundary(ctx context.Context, v *schemas.View) (time.Time, error) {
	b, ok, err := speed.Boundary(ctx, a.cfg.Redis, v.Name)
	if err != nil {
		return time.Time{}, dep(err)
	}
	if ok {
		return b, nil
	}
	st, err := a.cfg.Batch.State(ctx, v.Name)
	if err != nil {
		return time.Time{}, dep(err)
	}
	return st.Boundary, nil
}

// speedHealthy reports whether the speed layer has been keeping the view in
// Redis: its offsets hash exists, carries the view's fingerprint and no
// rebuild is under way. Without that, an empty bucket may be lost data.
func (a *API) speedHealthy(ctx context.Context, v *schemas.View) (bool, error) {
	m, err := a.cfg.Redis.HGetAll(ctx, speed.OffsetsKey(v.Name)).Result()
	if err != nil {
		return false, dep(fmt.Errorf("serving: read speed offsets view=%s: %w", v.Name, err))
	}
	return offsetsHealthy(v, m), nil
}

func offsetsHealthy(v *schemas.View, m map[string]string) bool {
	if len(m) == 0 {
		return false
	}
	n := 0
	for k, val := range m {
		if k == "_fp" {
			if val != v.Fingerprint() {
				return false
			}
			continue
		}
		if val == "-1" { // rebuilding: windows are being replayed
			return false
		}
		n++
	}
	return n > 0
}

// lostSpeedEnd is where the part of [s0, to) the speed layer cannot answer
// ends (s0 when it can answer all of it). Healthy: buckets whose keys have
// expired (bucket end + hot_retention passed, with one granularity of
// margin for keys expiring while we read). Unhealthy: everything up to now.
func lostSpeedEnd(v *schemas.View, s0, to, now time.Time, healthy bool) time.Time {
	g := v.Granularity
	var end time.Time
	if healthy {
		end = floorTo(now.Add(-v.HotRetention), g).Add(g)
	} else {
		end = floorTo(now, g).Add(g)
	}
	return maxT(s0, minT(to, end))
}

// compute answers a query with B read by the caller.
func (a *API) compute(ctx context.Context, q *query, b time.Time) (*answer, error) {
	v := q.view
	now := a.cfg.Now()
	ans := &answer{boundary: b}
	in := mergeInput{straddleT: -1}
	var lost []span
	var batchRows []outRow
	var batchApprox []bool

	// [from, B): batch view files.
	if bEnd := minT(b, q.to); !b.IsZero() && q.from.Before(bEnd) {
		st, err := a.cfg.Batch.StateAtLeast(ctx, v.Name, b)
		if err != nil {
			return nil, dep(err)
		}
		batchTo := bEnd
		if st.Boundary.Before(batchTo) {
			// Redis says B is later than the lake does (the mirror was set
			// by hand or the state is being rewritten): the rest is cold.
			batchTo = maxT(q.from, st.Boundary)
		}
		if q.from.Before(batchTo) {
			if time.Hour%q.step == 0 {
				// No step crosses an hour: roll each batch hour up on its
				// own, cached by the hour's version.
				rows, approx, err := a.batchHours(ctx, q, st, q.from, batchTo)
				if err != nil {
					return nil, dep(err)
				}
				batchRows, batchApprox = rows, approx
			} else {
				rows, err := a.cfg.Batch.Rows(ctx, v, q.from, batchTo, q.where)
				if err != nil {
					return nil, dep(err)
				}
				in.viewRows = append(in.viewRows, rows)
			}
			ans.batch = &span{q.from, batchTo}
		}
		if batchTo.Before(bEnd) {
			lost = append(lost, span{batchTo, bEnd})
		}
	}

	// [B, to): Redis.
	s0 := q.from
	if b.After(s0) {
		s0 = b
	}
	if s0.Before(q.to) {
		healthy, err := a.speedHealthy(ctx, v)
		if err != nil {
			return nil, err
		}
		e := lostSpeedEnd(v, s0, q.to, now, healthy)
		if e.After(s0) {
			lost = append(lost, span{s0, e})
		}
		if e.Before(q.to) {
			sq := speed.Query{View: v, From: e, To: q.to, Where: q.where, GroupBy: q.groupBy, Step: q.step}
			res, err := a.cfg.Speed.Query(ctx, sq)
			if err != nil {
				return nil, dep(err)
			}
			in.speedRows = res.Rows
			ans.speed = &span{e, q.to}
			if st := floorTo(e, q.step); st.Before(e) && hasUniq(v) {
				// This step also holds rows from before e: its uniq is the
				// union of both sides' sketches.
				in.straddleT = st.UnixMicro()
				sq.To = minT(q.to, st.Add(q.step))
				sk, err := a.cfg.Speed.Sketches(ctx, sq)
				if err != nil {
					return nil, dep(err)
				}
				in.sketches = sk
			}
		}
	}

	// What neither layer holds: from the raw lake when small, else gaps.
	lost = joinSpans(lost)
	if len(lost) > 0 {
		hours := hoursOf(lost)
		if a.cfg.Cold != nil && len(hours) <= a.cfg.ColdMaxHours {
			rows, err := a.coldRows(ctx, v, hours, lost, q.where)
			if err != nil {
				return nil, dep(err)
			}
			in.viewRows = append(in.viewRows, rows)
			ans.cold = lost
		} else {
			ans.gaps = lost
		}
	}
	ans.rows, ans.approx = merge(v, q, &in)
	if len(batchRows) > 0 {
		// Batch steps end at an hour boundary, before anything merged
		// above: the two sets of steps are disjoint.
		ans.rows = append(batchRows, ans.rows...)
		sortRows(groupTypes(q), ans.rows)
		for i, x := range batchApprox {
			ans.approx[i] = ans.approx[i] || x
		}
	}
	return ans, nil
}

func groupTypes(q *query) []schemas.Type {
	var ts []schemas.Type
	for _, d := range q.groupBy {
		f, _ := q.view.Schema.Field(d)
		ts = append(ts, f.Type)
	}
	return ts
}

// hourRollup is one batch hour rolled up to a query's step, group_by and
// where: immutable while the hour's version is.
type hourRollup struct {
	rows   []outRow
	approx []bool
}

// maxHourRollups bounds the rollup cache (entries are an hour of one
// query shape: a few KB to a few MB).
const maxHourRollups = 2048

// batchHours rolls [from, to) of the batch view up hour by hour, reusing
// rollups of hours whose version has not changed. from and to are on the
// step grid and the step divides an hour, so each step lies in one hour.
func (a *API) batchHours(ctx context.Context, q *query, st *views.State, from, to time.Time) ([]outRow, []bool, error) {
	v := q.view
	approx := make([]bool, len(v.Metrics))
	var out []outRow
	shape := q.shapeKey()
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		hs, ok := st.Hour(h)
		if !ok || hs.Rows == 0 {
			continue
		}
		lo, hi := maxT(h, from), minT(h.Add(time.Hour), to)
		key := fmt.Sprintf("%s|%s|%d|%d|%d|%s", st.Fingerprint, views.HourKey(h), hs.Version, lo.UnixMicro(), hi.UnixMicro(), shape)
		a.hourMu.Lock()
		r, ok := a.hourCache[key]
		a.hourMu.Unlock()
		if !ok {
			rows, err := a.cfg.Batch.Rows(ctx, v, lo, hi, q.where)
			if err != nil {
				return nil, nil, err
			}
			r = &hourRollup{}
			r.rows, r.approx = merge(v, q, &mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1})
			a.hourMu.Lock()
			for k := range a.hourCache {
				if len(a.hourCache) < maxHourRollups {
					break
				}
				delete(a.hourCache, k) // map order is random: a random eviction
			}
			a.hourCache[key] = r
			a.hourMu.Unlock()
		}
		out = append(out, r.rows...)
		for i, x := range r.approx {
			approx[i] = approx[i] || x
		}
	}
	return out, approx, nil
}

func hasUniq(v *schemas.View) bool {
	return slices.ContainsFunc(v.Metrics, func(m schemas.Metric) bool { return m.Agg == schemas.Uniq })
}

// joinSpans sorts spans and joins those that touch.
func joinSpans(s []span) []span {
	slices.SortFunc(s, func(a, b span) int { return a.from.Compare(b.from) })
	var out []span
	for _, x := range s {
		if !x.from.Before(x.to) {
			continue
		}
		if n := len(out); n > 0 && !x.from.After(out[n-1].to) {
			out[n-1].to = maxT(out[n-1].to, x.to)
			continue
		}
		out = append(out, x)
	}
	return out
}

// hoursOf lists the UTC hours the spans touch.
func hoursOf(s []span) []time.Time {
	var out []time.Time
	for _, x := range s {
		for h := x.from.Truncate(time.Hour); h.Before(x.to); h = h.Add(time.Hour) {
			if len(out) == 0 || out[len(out)-1].Before(h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// coldRows computes the hours from raw files and keeps the rows inside the
// lost spans that match where.
func (a *API) coldRows(ctx context.Context, v *schemas.View, hours []time.Time, lost []span, where map[string]string) ([]views.Row, error) {
	match, err := whereMatcher(v, where)
	if err != nil {
		return nil, err
	}
	parts := make([][]views.Row, len(hours))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, h := range hours {
		g.Go(func() error {
			rows, err := a.coldHour(gctx, v, h)
			parts[i] = rows
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []views.Row
	for _, p := range parts {
		for _, r := range p {
			if !match(r.Dims) {
				continue
			}
			t := time.UnixMicro(r.T)
			for _, s := range lost {
				if !t.Before(s.from) && t.Before(s.to) {
					out = append(out, r)
					break
				}
			}
		}
	}
	return out, nil
}

// coldHour computes one hour from the raw lake, shared by concurrent
// requests and kept for coldTTL: a Redis outage makes every query ask.
func (a *API) coldHour(ctx context.Context, v *schemas.View, h time.Time) ([]views.Row, error) {
	key := v.Name + "/" + strconv.FormatInt(h.Unix(), 10)
	now := a.cfg.Now()
	a.coldMu.Lock()
	if c, ok := a.coldCache[key]; ok && now.Before(c.expires) {
		a.coldMu.Unlock()
		return c.rows, nil
	}
	a.coldMu.Unlock()
	val, err, _ := a.coldSF.Do(key, func() (any, error) {
		rows, err := a.cfg.Cold(ctx, v, h)
		if err != nil {
			return nil, err
		}
		a.coldMu.Lock()
		for k, c := range a.coldCache {
			if !now.Before(c.expires) {
				delete(a.coldCache, k)
			}
		}
		a.coldCache[key] = coldEntry{rows: rows, expires: now.Add(coldTTL)}
		a.coldMu.Unlock()
		return rows, nil
	})
	if err != nil {
		return nil, err
	}
	return val.([]views.Row), nil
}

// coldTTL is how long an hour computed from raw files is reused.
const coldTTL = 10 * time.Second

type coldEntry struct {
	rows    []views.Row
	expires time.Time
}

// whereMatcher compiles where (dimension → text) against full dimension
// tuples.
func whereMatcher(v *schemas.View, where map[string]string) (func([]schemas.Value) bool, error) {
	type cond struct {
		i   int
		val schemas.Value
	}
	var conds []cond
	for d, text := range where {
		i := slices.Index(v.Dimensions, d)
		f, _ := v.Schema.Field(d)
		var val schemas.Value
		switch f.Type {
		case schemas.String:
			val.Str = text
		case schemas.Bool:
			b, err := strconv.ParseBool(text)
			if err != nil {
				return nil, err
			}
			if b {
				val.Int = 1
			}
		default:
			n, err := strconv.ParseInt(text, 10, 64)
			if err != nil {
				return nil, err
			}
			val.Int = n
		}
		conds = append(conds, cond{i, val})
	}
	return func(dims []schemas.Value) bool {
		for _, c := range conds {
			if dims[c.i] != c.val {
				return false
			}
		}
		return true
	}, nil
}
