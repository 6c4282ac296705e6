package serving

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/boundary"
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
	overflow []bool // per view metric: a sum overflowed (its figure is null)
	timing   timing // what computing it took, by part
	// encoded, when set, holds the leading rows already printed (batch
	// hours' rollups keep their rows printed for queries showing every
	// metric): they are copied, not printed again.
	encoded []encodedRun
}

// timing is where a computed answer's time went, sent as a Server-Timing
// header so an operator (or a browser's network panel) can tell a slow
// batch read from a slow speed read or a large answer.
type timing struct{ batch, speed, cold, merge time.Duration }

// header is the Server-Timing value, encode being the time it took to
// print the answer.
func (t timing) header(encode time.Duration) string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) }
	return "batch;dur=" + ms(t.batch) + ", speed;dur=" + ms(t.speed) + ", cold;dur=" + ms(t.cold) +
		", merge;dur=" + ms(t.merge) + ", encode;dur=" + ms(encode)
}

// depError marks a failure of a dependency (Redis, the lake): 503.
type depError struct{ err error }

var _ error = (*depError)(nil)

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

// boundary reads B once for a request: the Redis mirror every replica and
// the speed layer read (internal/boundary), else the lake's state; zero
// when batch holds nothing yet, so the speed layer answers everything.
//
// Concurrent queries of a view share one read (at thousands of queries a
// second, one GET each was 7 % of the server's CPU). A read that started
// just before a query arrived is as good as one after it: B moves at most
// once per recompute, and the speed layer still holds the minutes between
// an older B and a newer one. One read at a time also means a client's
// next query never reads an older B than its last one did.
func (a *API) boundary(ctx context.Context, v *schemas.View) (time.Time, error) {
	ch := a.boundarySF.DoChan(v.Name, func() (any, error) {
		// Its own deadline: the caller that started it may go away.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Timeout)
		defer cancel()
		return a.readBoundary(rctx, v)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return time.Time{}, res.Err
		}
		return res.Val.(time.Time), nil
	case <-ctx.Done():
		return time.Time{}, dep(ctx.Err())
	}
}

func (a *API) readBoundary(ctx context.Context, v *schemas.View) (time.Time, error) {
	b, ok, err := boundary.Read(ctx, a.cfg.Redis, v.Name)
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

// lostSpeedEnd is where the part of [s0, to) the speed layer cannot answer
// ends (s0 when it can answer all of it). Whole (the speed layer keeps the
// view): buckets whose keys have expired (bucket end + hot_retention
// passed, with one granularity of margin for keys expiring while we read).
// Not whole: everything up to now.
func lostSpeedEnd(v *schemas.View, s0, to, now time.Time, whole bool) time.Time {
	g := v.Granularity
	var end time.Time
	if whole {
		end = schemas.FloorTime(now.Add(-v.HotRetention), g).Add(g)
	} else {
		end = schemas.FloorTime(now, g).Add(g)
	}
	return maxT(s0, minT(to, end))
}

// compute answers a query with B read by the caller: [from, B) from batch,
// [B, to) from the speed layer, what neither holds from the raw lake (or
// listed as gaps), merged into one set of rows.
func (a *API) compute(ctx context.Context, q *query, b time.Time) (*answer, error) {
	ans := &answer{boundary: b}
	in := mergeInput{straddleT: -1}
	t0 := time.Now()
	batchRows, batchFlags, lost, err := a.readBatch(ctx, q, b, ans, &in)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	lostHot, err := a.readSpeed(ctx, q, b, ans, &in)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	if err := a.fillLost(ctx, q, joinSpans(append(lost, lostHot...)), ans, &in); err != nil {
		return nil, err
	}
	t3 := time.Now()
	ans.rows, ans.approx, ans.overflow = merge(q.view, q, &in)
	if len(batchRows) > 0 {
		ans.rows, ans.encoded = joinRows(q, batchRows, ans.rows)
	}
	batchFlags.or(ans.approx, ans.overflow)
	ans.timing = timing{batch: t1.Sub(t0), speed: t2.Sub(t1), cold: t3.Sub(t2), merge: time.Since(t3)}
	return ans, nil
}

// joinRows puts the batch hours' rows before the merged ones, and says
// which of them are printed already (nil unless all are). Batch steps end
// at an hour boundary, before anything merged: the two sets of steps are
// disjoint, and each is sorted (batch hours in order, each sorted).
func joinRows(q *query, hours []hourRows, merged []outRow) ([]outRow, []encodedRun) {
	n := len(merged)
	for _, h := range hours {
		n += len(h.rows)
	}
	rows := make([]outRow, 0, n)
	var runs []encodedRun
	printed := true
	for _, h := range hours {
		rows = append(rows, h.rows...)
		enc := h.r.enc.Load()
		printed = printed && enc != nil
		runs = append(runs, encodedRun{enc: enc, i: h.i, j: h.i + len(h.rows)})
	}
	nb := len(rows)
	rows = append(rows, merged...)
	if nb > 0 && len(merged) > 0 && rows[nb-1].t >= merged[0].t {
		sortRows(groupTypes(q), rows)
		printed = false
	}
	if !printed {
		return rows, nil
	}
	return rows, runs
}

// readBatch reads [from, B) from the batch view files. When the step
// divides an hour each hour is rolled up on its own (cached by the hour's
// version) and returned as rows; otherwise the view rows go into in. lost
// is the part batch should hold but does not (Redis' B later than the
// lake's).
func (a *API) readBatch(ctx context.Context, q *query, b time.Time, ans *answer, in *mergeInput) (rows []hourRows, flags metricFlags, lost []span, err error) {
	bEnd := minT(b, q.to)
	if b.IsZero() || !q.from.Before(bEnd) {
		return nil, flags, nil, nil
	}
	st, err := a.cfg.Batch.StateAtLeast(ctx, q.view.Name, b)
	if err != nil {
		return nil, flags, nil, dep(err)
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
			rows, flags, err = a.batchHours(ctx, q, st, q.from, batchTo)
			if err != nil {
				return nil, flags, nil, dep(err)
			}
		} else {
			vr, err := a.cfg.Batch.Rows(ctx, q.view, q.from, batchTo, q.where)
			if err != nil {
				return nil, flags, nil, dep(err)
			}
			in.viewRows = append(in.viewRows, vr)
		}
		ans.batch = &span{q.from, batchTo}
	}
	if batchTo.Before(bEnd) {
		lost = append(lost, span{batchTo, bEnd})
	}
	return rows, flags, lost, nil
}

// readSpeed reads [B, to) from the speed layer into in, and returns the
// part of it the speed layer cannot answer (expired, or not kept whole).
func (a *API) readSpeed(ctx context.Context, q *query, b time.Time, ans *answer, in *mergeInput) (lost []span, err error) {
	v := q.view
	s0 := maxT(q.from, b)
	if !s0.Before(q.to) {
		return nil, nil
	}
	whole, err := a.cfg.Speed.Whole(ctx, v)
	if err != nil {
		return nil, dep(err)
	}
	e := lostSpeedEnd(v, s0, q.to, a.cfg.Now(), whole)
	if e.After(s0) {
		lost = append(lost, span{s0, e})
	}
	if !e.Before(q.to) {
		return lost, nil
	}
	sq := speed.Query{View: v, From: e, To: q.to, Where: q.where, GroupBy: q.groupBy, Step: q.step}
	res, err := a.cfg.Speed.Query(ctx, sq)
	if err != nil {
		return nil, dep(err)
	}
	in.speedRows = res.Rows
	ans.speed = &span{e, q.to}
	if st := schemas.FloorTime(e, q.step); st.Before(e) && hasUniq(v) {
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
	return lost, nil
}

// fillLost computes what neither layer holds from the raw lake when it is
// at most ColdMaxHours, and otherwise lists it as gaps.
func (a *API) fillLost(ctx context.Context, q *query, lost []span, ans *answer, in *mergeInput) error {
	if len(lost) == 0 {
		return nil
	}
	hours := hoursOf(lost)
	if a.cfg.Cold == nil || len(hours) > a.cfg.ColdMaxHours {
		ans.gaps = lost
		return nil
	}
	rows, err := a.coldRows(ctx, q.view, hours, lost, q.where)
	if err != nil {
		return dep(err)
	}
	in.viewRows = append(in.viewRows, rows)
	ans.cold = lost
	return nil
}

func groupTypes(q *query) []schemas.Type {
	var ts []schemas.Type
	for _, d := range q.groupBy {
		f, _ := q.view.Schema.Field(d)
		ts = append(ts, f.Type)
	}
	return ts
}

// metricFlags are, per view metric, whether some figure of a set of rows
// is an estimate (approx) or an overflowed sum (overflow).
type metricFlags struct {
	approx, overflow []bool
}

// or adds the flags to approx and overflow (per view metric).
func (f metricFlags) or(approx, overflow []bool) {
	for i, x := range f.approx {
		approx[i] = approx[i] || x
	}
	for i, x := range f.overflow {
		overflow[i] = overflow[i] || x
	}
}

// hourRollup is one batch hour rolled up to a query's step, group_by and
// where: immutable while the hour's version is.
type hourRollup struct {
	rows  []outRow
	flags metricFlags
	size  int64 // in the rollup cache, without enc
	// enc is rows printed for queries showing every metric, kept once the
	// rollup is used a second time (most are not: printing every new one
	// would cost more than it saves); nil until then.
	enc atomic.Pointer[rowsJSON]
}

// hourRows is an hour's rows in an answer: rollup rows [i, i+len(rows)).
type hourRows struct {
	rows []outRow
	r    *hourRollup
	i    int
}

// batchHours rolls [from, to) of the batch view up hour by hour, reusing
// rollups of hours whose version has not changed. from and to are on the
// step grid and the step divides an hour, so each step lies in one hour.
// An hour is always rolled up whole, and a query's partial first or last
// hour is the slice of its rows in range (rows carry their flags), so
// queries over the same shape share every hour whatever their range.
func (a *API) batchHours(ctx context.Context, q *query, st *views.State, from, to time.Time) ([]hourRows, metricFlags, error) {
	v := q.view
	flags := metricFlags{approx: make([]bool, len(v.Metrics)), overflow: make([]bool, len(v.Metrics))}
	// Each hour's rows as the cache holds them: compute copies them once,
	// into the answer.
	var out []hourRows
	shape := q.shapeKey()
	// Rows carry the flags of 64 metrics: past that, partial hours are
	// rolled up on their own.
	whole := len(v.Metrics) <= 64
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		hs, ok := st.Hour(h)
		if !ok || hs.Rows == 0 {
			continue
		}
		lo, hi := maxT(h, from), minT(h.Add(time.Hour), to)
		rlo, rhi := lo, hi
		if whole {
			rlo, rhi = h, h.Add(time.Hour)
		}
		key := fmt.Sprintf("%s|%s|%d|%d|%d|%s", st.Fingerprint, views.HourKey(h), hs.Version, rlo.UnixMicro(), rhi.UnixMicro(), shape)
		r, ok := a.rollups.get(key)
		if !ok {
			in := mergeInput{straddleT: -1}
			if dims, grain, ok := cubeShape(q); ok && whole && !a.noCubes {
				c, err := a.hourCube(ctx, v, st, h, hs.Version, dims, grain)
				if err != nil {
					return nil, flags, err
				}
				in.cubes = []cubePart{newCubePart(q, c)}
			} else {
				rows, err := a.cfg.Batch.Rows(ctx, v, rlo, rhi, q.where)
				if err != nil {
					return nil, flags, err
				}
				in.viewRows, in.oneView = [][]views.Row{rows}, true
			}
			r = &hourRollup{}
			r.rows, r.flags.approx, r.flags.overflow = merge(v, q, &in)
			r.size = rowsBytes(r.rows) + int64(2*len(r.flags.approx))
			// Bounded by http.rollup_cache_bytes, least recently used first.
			a.rollups.put(key, r, r.size)
		} else if whole && q.allMetrics() && r.enc.Load() == nil {
			// Used again: printed once now, copied by this answer and
			// every later one that shows the hour with every metric.
			if e := encodeRows(q, r.rows); r.enc.CompareAndSwap(nil, e) {
				a.rollups.put(key, r, r.size+e.bytes())
			}
		}
		if !whole || (lo.Equal(rlo) && hi.Equal(rhi)) {
			out = append(out, hourRows{rows: r.rows, r: r})
			r.flags.or(flags.approx, flags.overflow)
			continue
		}
		// Rows are sorted by t: the steps in [lo, hi) are one run.
		i, _ := slices.BinarySearchFunc(r.rows, lo.UnixMicro(), func(x outRow, t int64) int { return cmp.Compare(x.t, t) })
		j, _ := slices.BinarySearchFunc(r.rows, hi.UnixMicro(), func(x outRow, t int64) int { return cmp.Compare(x.t, t) })
		var ap, ov uint64
		for _, x := range r.rows[i:j] {
			ap, ov = ap|x.ap, ov|x.ov
		}
		out = append(out, hourRows{rows: r.rows[i:j], r: r, i: i})
		for mi := range v.Metrics {
			flags.approx[mi] = flags.approx[mi] || ap&bit(mi) != 0
			flags.overflow[mi] = flags.overflow[mi] || ov&bit(mi) != 0
		}
	}
	return out, flags, nil
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
func (a *API) coldRows(ctx context.Context, v *schemas.View, hours []time.Time, lost []span, where map[string]schemas.Value) ([]views.Row, error) {
	match := whereMatcher(v, where)
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

// whereMatcher compiles where (dimension → value) against full dimension
// tuples.
func whereMatcher(v *schemas.View, where map[string]schemas.Value) func([]schemas.Value) bool {
	type cond struct {
		i   int
		val schemas.Value
	}
	var conds []cond
	for d, val := range where {
		conds = append(conds, cond{slices.Index(v.Dimensions, d), val})
	}
	return func(dims []schemas.Value) bool {
		for _, c := range conds {
			if dims[c.i] != c.val {
				return false
			}
		}
		return true
	}
}
