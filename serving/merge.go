package serving

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// outRow is one row of an answer: a step, the group_by values and every
// metric of the view (the answer selects which to print).
type outRow struct {
	t    int64 // step start, Unix µs
	dims []schemas.Value
	vals []schemas.Value
	// Per metric (bit mi, for the first 64 metrics): the figure is an
	// estimate (ap) or an overflowed sum (ov), so a slice of rows knows
	// its flags.
	ap, ov uint64
}

// bit is metric mi's bit in outRow.ap and .ov (0 past the 64th metric).
func bit(mi int) uint64 {
	if mi >= 64 {
		return 0
	}
	return 1 << mi
}

// mergeInput is everything a query read, already cut to its time range and
// filtered by where: view rows at the stored grain (batch hours and cold
// hours), speed rows rolled up to the step, and the speed sketches of the
// one step that straddles the start of the speed range (straddleT; -1 when
// none), whose uniq must be the union of both sides.
type mergeInput struct {
	viewRows  [][]views.Row
	speedRows []speed.Row
	sketches  []speed.SketchRow
	straddleT int64
}

// macc accumulates one metric of one output group.
type macc struct {
	i   int64 // count; int64 min/max
	f   float64
	has bool
	// sums, under the overflow rule (schemas/sum.go)
	is schemas.IntSum
	fs schemas.FloatSum
	// uniq: a group made of exactly one view row keeps that row's exact
	// figure; a second contributor switches to a sketch union.
	n      int
	exact  int64
	first  []byte
	union  bool     // a second contributor came: the figure is the union's estimate
	refs   [][]byte // the union's sketches (Redis encoding), estimated once at the end
	approx bool
}

type mgroup struct {
	t    int64
	dims []schemas.Value
	acc  []macc
}

// merger rolls rows of both layers up to a query's step and group_by.
type merger struct {
	v        *schemas.View
	stepUs   int64
	groupIdx []int // group_by → index in v.Dimensions
	types    []schemas.Type
	float    []bool // per metric: float64 values
	groups   map[string]*mgroup
	order    []*mgroup
	key      []byte
}

func newMerger(v *schemas.View, q *query) *merger {
	m := &merger{v: v, stepUs: q.step.Microseconds(), groups: map[string]*mgroup{}}
	for _, d := range q.groupBy {
		m.groupIdx = append(m.groupIdx, slices.Index(v.Dimensions, d))
		f, _ := v.Schema.Field(d)
		m.types = append(m.types, f.Type)
	}
	for _, mt := range v.Metrics {
		m.float = append(m.float, v.MetricType(mt) == schemas.Float64)
	}
	return m
}

func appendDimKey(b []byte, x schemas.Value) []byte {
	b = append(b, 0)
	if x.Null {
		return append(b, 1)
	}
	b = strconv.AppendInt(b, x.Int, 10)
	return append(b, x.Str...)
}

// group finds or makes the output group of (t, dims); dims is read through
// pick so view rows (all dimensions) and speed rows (group_by only) share it.
func (m *merger) group(t int64, n int, dim func(int) schemas.Value) *mgroup {
	m.key = strconv.AppendInt(m.key[:0], t, 10)
	for k := 0; k < n; k++ {
		m.key = appendDimKey(m.key, dim(k))
	}
	if g, ok := m.groups[string(m.key)]; ok {
		return g
	}
	g := &mgroup{t: t, acc: make([]macc, len(m.v.Metrics))}
	if n > 0 {
		g.dims = make([]schemas.Value, n)
		for k := range n {
			g.dims[k] = dim(k)
		}
	}
	m.groups[string(m.key)] = g
	m.order = append(m.order, g)
	return g
}

func (m *merger) stepOf(t int64) int64 { return schemas.Floor(t, m.stepUs) }

// foldValue folds a count/sum/min/max value of one cell into a; ovf: the
// cell's sum overflowed (its value is null). A sum adds the cell's value
// with schemas.IntSum/FloatSum.Add, the rule for rollups across cells.
func foldValue(a *macc, agg schemas.Agg, float bool, x schemas.Value, ovf bool) {
	if agg == schemas.Sum && ovf {
		a.is.Overflow, a.fs.Overflow, a.has = true, true, true
		return
	}
	if x.Null {
		return
	}
	switch agg {
	case schemas.Count:
		a.i += x.Int
	case schemas.Sum:
		if float {
			a.fs.Add(x.Float)
		} else {
			a.is.Add(x.Int)
		}
	case schemas.Min, schemas.Max:
		if !a.has || (float && schemas.Replaces(agg, x.Float, a.f)) || (!float && schemas.Replaces(agg, x.Int, a.i)) {
			a.i, a.f = x.Int, x.Float
		}
	}
	a.has = true
}

// foldSketch adds one sketch to a uniq accumulator. Sketches are kept as
// they are and unioned once, when the figure is printed (hll.Union: a union
// of a few small sketches costs their registers, not 16 KiB).
func (a *macc) foldSketch(b []byte) {
	if !a.union {
		a.union = true
		if a.first != nil {
			a.refs = append(a.refs, a.first)
		}
	}
	if b != nil {
		a.refs = append(a.refs, b)
	}
}

var unionPool = sync.Pool{New: func() any { return new(hll.Union) }}

// estimateUnion is PFCOUNT's figure for the union of the sketches; they come
// from our own files and Redis, and a bad one counts as empty.
func estimateUnion(refs [][]byte) int64 {
	u := unionPool.Get().(*hll.Union)
	defer unionPool.Put(u)
	u.Reset()
	for _, b := range refs {
		u.AddBytes(b)
	}
	return int64(u.Estimate())
}

func (m *merger) addViewRow(r *views.Row) {
	g := m.group(m.stepOf(r.T), len(m.groupIdx), func(k int) schemas.Value { return r.Dims[m.groupIdx[k]] })
	for mi, mt := range m.v.Metrics {
		a := &g.acc[mi]
		if mt.Agg != schemas.Uniq {
			foldValue(a, mt.Agg, m.float[mi], r.Values[mi], r.Overflow != nil && r.Overflow[mi])
			continue
		}
		a.n++
		var sk []byte
		if mi < len(r.HLL) {
			sk = r.HLL[mi]
		}
		if a.n == 1 {
			a.exact, a.first = r.Values[mi].Int, sk
			continue
		}
		a.approx = true
		a.foldSketch(sk)
	}
}

func (m *merger) addSpeedRow(r *speed.Row, straddleT int64) {
	t := r.T.UnixMicro()
	g := m.group(t, len(r.Dims), func(k int) schemas.Value { return r.Dims[k] })
	for mi, mt := range m.v.Metrics {
		a := &g.acc[mi]
		if mt.Agg == schemas.Sum && r.Sums != nil {
			// A rollup of cells: its parts add up as the cells' values
			// would, one by one.
			x := r.Sums[mi]
			if !r.Values[mi].Null || x.Int.Overflow || x.Float.Overflow || (r.Overflow != nil && r.Overflow[mi]) {
				a.is.Merge(x.Int)
				a.fs.Merge(x.Float)
				a.has = true
				if r.Overflow != nil && r.Overflow[mi] {
					a.is.Overflow, a.fs.Overflow = true, true
				}
			}
			continue
		}
		if mt.Agg != schemas.Uniq {
			foldValue(a, mt.Agg, m.float[mi], r.Values[mi], r.Overflow != nil && r.Overflow[mi])
			continue
		}
		if t == straddleT {
			continue // the sketches of this step carry its uniq
		}
		// Only the speed layer holds this step: PFCOUNT's union is the figure.
		a.n++
		a.approx = true
		a.exact += r.Values[mi].Int
	}
}

func (m *merger) addSketch(r *speed.SketchRow) {
	g := m.group(r.T.UnixMicro(), len(r.Dims), func(k int) schemas.Value { return r.Dims[k] })
	for mi, mt := range m.v.Metrics {
		if mt.Agg != schemas.Uniq || r.HLL[mi] == nil {
			continue
		}
		a := &g.acc[mi]
		a.n++
		a.approx = true
		a.foldSketch(r.HLL[mi])
	}
}

// merge rolls everything read up into the answer's rows, sorted by t then
// group_by values, and says per metric whether any figure is an estimate
// (approx) and whether any sum overflowed (ovf: those figures are null).
func merge(v *schemas.View, q *query, in *mergeInput) (rows []outRow, approx, ovf []bool) {
	m := newMerger(v, q)
	for _, part := range in.viewRows {
		for i := range part {
			m.addViewRow(&part[i])
		}
	}
	for i := range in.speedRows {
		m.addSpeedRow(&in.speedRows[i], in.straddleT)
	}
	for i := range in.sketches {
		m.addSketch(&in.sketches[i])
	}
	approx, ovf = make([]bool, len(v.Metrics)), make([]bool, len(v.Metrics))
	rows = make([]outRow, 0, len(m.order))
	for _, g := range m.order {
		r := outRow{t: g.t, dims: g.dims, vals: make([]schemas.Value, len(v.Metrics))}
		for mi, mt := range v.Metrics {
			a := &g.acc[mi]
			switch {
			case mt.Agg == schemas.Uniq:
				if a.union {
					r.vals[mi] = schemas.Value{Int: estimateUnion(a.refs)}
				} else {
					r.vals[mi] = schemas.Value{Int: a.exact}
				}
				approx[mi] = approx[mi] || a.approx
				if a.approx {
					r.ap |= bit(mi)
				}
			case mt.Agg == schemas.Count:
				r.vals[mi] = schemas.Value{Int: a.i}
			case !a.has:
				r.vals[mi] = schemas.Value{Null: true}
			case mt.Agg == schemas.Sum:
				var ok bool
				if m.float[mi] {
					r.vals[mi].Float, ok = a.fs.Value()
				} else {
					r.vals[mi].Int, ok = a.is.Value()
				}
				if !ok {
					r.vals[mi] = schemas.Value{Null: true}
					ovf[mi] = true
					r.ov |= bit(mi)
				}
			case m.float[mi]:
				r.vals[mi] = schemas.Value{Float: a.f}
			default:
				r.vals[mi] = schemas.Value{Int: a.i}
			}
		}
		rows = append(rows, r)
	}
	sortRows(m.types, rows)
	return rows, approx, ovf
}

// sortRows orders rows by t, then group_by values (types in group_by order).
func sortRows(types []schemas.Type, rows []outRow) {
	slices.SortFunc(rows, func(a, b outRow) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		for k := range a.dims {
			if c := schemas.CompareValues(types[k], a.dims[k], b.dims[k]); c != 0 {
				return c
			}
		}
		return 0
	})
}

// finite guards JSON, which has no NaN or infinities.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
