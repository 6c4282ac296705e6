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
// none), whose uniq must be the union of both sides; or batch hours as
// cubes (cube.go).
type mergeInput struct {
	// oneView: viewRows hold at most one row per (t, dimensions), as one
	// view file does
	oneView   bool
	viewRows  [][]views.Row
	cubes     []cubePart
	speedRows []speed.Row
	sketches  []speed.SketchRow
	straddleT int64
}

// macc accumulates one count/sum/min/max metric of one output group. It
// holds no pointers, so a query's accumulators are one slab the garbage
// collector does not scan (an hour at 1m by two dimensions makes tens of
// thousands of groups).
type macc struct {
	i   int64 // count; int64 min/max
	f   float64
	has bool
	// sums, under the overflow rule (schemas/sum.go)
	is schemas.IntSum
	fs schemas.FloatSum
}

// uacc accumulates one uniq metric of one output group: a group made of
// exactly one view row keeps that row's exact figure; a second contributor
// switches to a sketch union.
type uacc struct {
	n      int
	exact  int64
	first  []byte
	union  bool     // a second contributor came: the figure is the union's estimate
	refs   [][]byte // the union's sketches (Redis encoding), estimated once at the end
	approx bool
	// est is the union's estimate when estOK: a group made of one cube
	// cell that stores its union (cube.go) needs no union of its own
	est   int64
	estOK bool
}

type mgroup struct {
	t    int64
	dims []schemas.Value
	acc  []macc // per view metric (uniq metrics' entries unused)
	uniq []uacc // per uniq metric, in view order
}

// merger rolls rows of both layers up to a query's step and group_by.
type merger struct {
	v        *schemas.View
	stepUs   int64
	groupIdx []int // group_by → index in v.Dimensions
	types    []schemas.Type
	float    []bool // per metric: float64 values
	uniqOf   []int  // per metric: its index in mgroup.uniq, -1 if not uniq
	nuniq    int
	// groups by step and group_by values: small keys are a struct, hashed
	// without building anything; more than keyDims dimensions, text
	groups map[groupKey]*mgroup
	wide   map[string]*mgroup
	order  []*mgroup
	key    []byte
	// last is the group the previous row went to: rows come sorted by
	// time, so with a coarse step or few group_by values most rows go to
	// the same group as the one before, and skip the key and the map.
	last *mgroup
	// slabs the groups are cut from, refilled as they run out
	gslab []mgroup
	aslab []macc
	uslab []uacc
	dslab []schemas.Value
}

func newMerger(v *schemas.View, q *query) *merger {
	groupIdx := make([]int, 0, len(q.groupBy))
	for _, d := range q.groupBy {
		groupIdx = append(groupIdx, slices.Index(v.Dimensions, d))
	}
	return newRollup(v, q.step.Microseconds(), groupIdx)
}

// newRollup is a merger to steps of stepUs by the view dimensions groupIdx.
func newRollup(v *schemas.View, stepUs int64, groupIdx []int) *merger {
	m := &merger{v: v, stepUs: stepUs, groupIdx: groupIdx, groups: map[groupKey]*mgroup{}, wide: map[string]*mgroup{}}
	for _, d := range groupIdx {
		f, _ := v.Schema.Field(v.Dimensions[d])
		m.types = append(m.types, f.Type)
	}
	for _, mt := range v.Metrics {
		m.float = append(m.float, v.MetricType(mt) == schemas.Float64)
		if mt.Agg == schemas.Uniq {
			m.uniqOf = append(m.uniqOf, m.nuniq)
			m.nuniq++
		} else {
			m.uniqOf = append(m.uniqOf, -1)
		}
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
	if g := m.last; g != nil && g.t == t && len(g.dims) == n {
		same := true
		for k := 0; k < n && same; k++ {
			same = g.dims[k] == dim(k)
		}
		if same {
			return g
		}
	}
	if n <= keyDims {
		k := groupKey{t: t}
		for i := range n {
			k.dims[i] = dim(i)
		}
		g, ok := m.groups[k]
		if !ok {
			g = m.addGroup(t, n, dim)
			m.groups[k] = g
		}
		m.last = g
		return g
	}
	m.key = strconv.AppendInt(m.key[:0], t, 10)
	for k := 0; k < n; k++ {
		m.key = appendDimKey(m.key, dim(k))
	}
	g, ok := m.wide[string(m.key)]
	if !ok {
		g = m.addGroup(t, n, dim)
		m.wide[string(m.key)] = g
	}
	m.last = g
	return g
}

// keyDims is the most group_by dimensions a groupKey holds.
const keyDims = 3

// groupKey is a group's step and group_by values.
type groupKey struct {
	t    int64
	dims [keyDims]schemas.Value
}

// addGroup makes the group of (t, dims) and puts it in the answer's order.
func (m *merger) addGroup(t int64, n int, dim func(int) schemas.Value) *mgroup {
	g := m.newGroup(t, n)
	for k := range n {
		g.dims[k] = dim(k)
	}
	m.order = append(m.order, g)
	return g
}

// newGroup cuts a group of n dimensions from the slabs. A slab is refilled
// with room for as many groups as were made before (at least 8, at most
// 4096), so a query with one group allocates little and one with many
// allocates rarely.
func (m *merger) newGroup(t int64, n int) *mgroup {
	c := min(max(len(m.order), 8), 4096)
	nm := len(m.v.Metrics)
	if len(m.gslab) == 0 {
		m.gslab = make([]mgroup, c)
	}
	if len(m.aslab) < nm {
		m.aslab = make([]macc, c*nm)
	}
	if len(m.uslab) < m.nuniq {
		m.uslab = make([]uacc, c*m.nuniq)
	}
	if len(m.dslab) < n {
		m.dslab = make([]schemas.Value, c*n)
	}
	g := &m.gslab[0]
	m.gslab = m.gslab[1:]
	g.t = t
	g.acc, m.aslab = m.aslab[:nm:nm], m.aslab[nm:]
	g.uniq, m.uslab = m.uslab[:m.nuniq:m.nuniq], m.uslab[m.nuniq:]
	g.dims, m.dslab = m.dslab[:n:n], m.dslab[n:]
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
func (a *uacc) foldSketch(b []byte) {
	a.estOK = false
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
		if mt.Agg != schemas.Uniq {
			foldValue(&g.acc[mi], mt.Agg, m.float[mi], r.Values[mi], r.Overflow != nil && r.Overflow[mi])
			continue
		}
		a := &g.uniq[m.uniqOf[mi]]
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
	m.foldSpeedRow(m.group(t, len(r.Dims), func(k int) schemas.Value { return r.Dims[k] }), r, t, straddleT)
}

// speedSum is a speed row's sum metric mi (r.Sums set) as its parts, the
// row's overflow mark applied to them; has is false when the step holds no
// value for it.
func speedSum(r *speed.Row, mi int) (x speed.SumParts, has bool) {
	x = r.Sums[mi]
	if r.Overflow != nil && r.Overflow[mi] {
		x.Int.Overflow, x.Float.Overflow = true, true
	}
	return x, !r.Values[mi].Null || x.Int.Overflow || x.Float.Overflow
}

// foldSpeedRow folds a speed row (of step t) into its group g.
func (m *merger) foldSpeedRow(g *mgroup, r *speed.Row, t, straddleT int64) {
	for mi, mt := range m.v.Metrics {
		if mt.Agg == schemas.Sum && r.Sums != nil {
			// A rollup of cells: its parts add up as the cells' values
			// would, one by one.
			if x, has := speedSum(r, mi); has {
				a := &g.acc[mi]
				a.is.Merge(x.Int)
				a.fs.Merge(x.Float)
				a.has = true
			}
			continue
		}
		if mt.Agg != schemas.Uniq {
			foldValue(&g.acc[mi], mt.Agg, m.float[mi], r.Values[mi], r.Overflow != nil && r.Overflow[mi])
			continue
		}
		if t == straddleT {
			continue // the sketches of this step carry its uniq
		}
		// Only the speed layer holds this step: PFCOUNT's union is the figure.
		a := &g.uniq[m.uniqOf[mi]]
		a.n++
		a.approx, a.estOK = true, false
		a.exact += r.Values[mi].Int
	}
}

func (m *merger) addSketch(r *speed.SketchRow) {
	g := m.group(r.T.UnixMicro(), len(r.Dims), func(k int) schemas.Value { return r.Dims[k] })
	for mi, mt := range m.v.Metrics {
		if mt.Agg != schemas.Uniq || r.HLL[mi] == nil {
			continue
		}
		a := &g.uniq[m.uniqOf[mi]]
		a.n++
		a.approx = true
		a.foldSketch(r.HLL[mi])
	}
}

// merge rolls everything read up into the answer's rows, sorted by t then
// group_by values, and says per metric whether any figure is an estimate
// (approx) and whether any sum overflowed (ovf: those figures are null).
func merge(v *schemas.View, q *query, in *mergeInput) (rows []outRow, approx, ovf []bool) {
	if in.oneView && len(in.viewRows) == 1 && len(in.cubes)+len(in.speedRows)+len(in.sketches) == 0 &&
		q.step == v.Granularity && everyDimension(v, q) {
		return eachRowAGroup(v, q, in.viewRows[0])
	}
	if len(in.cubes) == 1 && len(in.viewRows)+len(in.speedRows)+len(in.sketches) == 0 && in.cubes[0].cube.grain == q.step {
		return eachCellAGroup(v, q, in.cubes[0])
	}
	if len(in.viewRows)+len(in.cubes)+len(in.sketches) == 0 && in.straddleT < 0 {
		if rows, approx, ovf, ok := eachSpeedRowAGroup(v, q, in.speedRows); ok {
			return rows, approx, ovf
		}
	}
	return mergeGroups(v, q, in)
}

// eachSpeedRowAGroup is merge for speed rows alone: the speed reader rolls
// them up to the query's step and group_by, one row per step and values
// (speed.Result), so each is a group of its own and holds what merge would
// make of it but its sums, which are finished here from their parts as
// merge finishes them (under the overflow rule). The rows become answer
// rows in place, sharing their slices. ok is false, and nothing is done,
// if the rows are not in that order without repeats.
func eachSpeedRowAGroup(v *schemas.View, q *query, in []speed.Row) (rows []outRow, approx, ovf []bool, ok bool) {
	types := groupTypes(q)
	for i := 1; i < len(in); i++ {
		a, b := &in[i-1], &in[i]
		if c := a.T.Compare(b.T); c > 0 || (c == 0 && compareDims(types, a.Dims, b.Dims) >= 0) {
			return nil, nil, nil, false
		}
	}
	approx, ovf = make([]bool, len(v.Metrics)), make([]bool, len(v.Metrics))
	var uniq uint64
	var sums []int
	float := make([]bool, len(v.Metrics))
	for mi, mt := range v.Metrics {
		switch mt.Agg {
		case schemas.Uniq:
			// Only the speed layer holds these steps: the reader's
			// estimate is the figure.
			uniq |= bit(mi)
			approx[mi] = len(in) > 0
		case schemas.Sum:
			sums = append(sums, mi)
		}
		float[mi] = v.MetricType(mt) == schemas.Float64
	}
	rows = make([]outRow, len(in))
	for i := range in {
		r := &in[i]
		o := &rows[i]
		*o = outRow{t: r.T.UnixMicro(), dims: r.Dims, vals: r.Values, ap: uniq}
		for _, mi := range sums {
			fit := r.Overflow == nil || !r.Overflow[mi]
			if r.Sums != nil {
				x, has := speedSum(r, mi)
				if !has {
					continue // no value in the step: null
				}
				o.vals[mi] = schemas.Value{}
				if float[mi] {
					o.vals[mi].Float, fit = x.Float.Value()
				} else {
					o.vals[mi].Int, fit = x.Int.Value()
				}
			}
			if !fit {
				o.vals[mi] = schemas.Value{Null: true}
				o.ov |= bit(mi)
				ovf[mi] = true
			}
		}
	}
	return rows, approx, ovf, true
}

// compareDims orders two group_by tuples (types in group_by order).
func compareDims(types []schemas.Type, a, b []schemas.Value) int {
	for k := range a {
		if c := schemas.CompareValues(types[k], a[k], b[k]); c != 0 {
			return c
		}
	}
	return 0
}

// projection picks the group_by values of answer rows out of longer tuples
// (view rows' or cube cells' dimensions): tuples that begin with them are
// shared, any other order is copied into one slab for all the rows.
type projection struct {
	pos    []int // group_by k → index in the tuple
	prefix bool
	slab   []schemas.Value
}

func newProjection(pos []int, rows int) *projection {
	p := &projection{pos: pos, prefix: true}
	for k, i := range pos {
		p.prefix = p.prefix && i == k
	}
	if !p.prefix {
		p.slab = make([]schemas.Value, rows*len(pos))
	}
	return p
}

// dims is row i's group_by values out of its tuple.
func (p *projection) dims(i int, tuple []schemas.Value) []schemas.Value {
	n := len(p.pos)
	switch {
	case n == 0:
		return nil
	case p.prefix:
		return tuple[:n:n]
	}
	out := p.slab[i*n : (i+1)*n : (i+1)*n]
	for k, d := range p.pos {
		out[k] = tuple[d]
	}
	return out
}

// everyDimension reports whether the query groups by or fixes (where)
// every dimension of the view.
func everyDimension(v *schemas.View, q *query) bool {
	for _, d := range v.Dimensions {
		if _, fixed := q.where[d]; !fixed && !slices.Contains(q.groupBy, d) {
			return false
		}
	}
	return true
}

// eachRowAGroup is merge for view rows of one view file at its own grain,
// by or fixed at every dimension (the rows are where's): each row is a
// group of its own, so its figures are the row's, with no groups to find.
func eachRowAGroup(v *schemas.View, q *query, in []views.Row) (rows []outRow, approx, ovf []bool) {
	approx, ovf = make([]bool, len(v.Metrics)), make([]bool, len(v.Metrics))
	m := newMerger(v, q) // its group_by indices and types; no groups
	pick := newProjection(m.groupIdx, len(in))
	nm := len(v.Metrics)
	rows = make([]outRow, len(in))
	vals := make([]schemas.Value, len(in)*nm)
	for i := range in {
		x := &in[i]
		r := &rows[i]
		r.t, r.dims = x.T, pick.dims(i, x.Dims)
		r.vals = vals[i*nm : (i+1)*nm : (i+1)*nm]
		for mi, mt := range v.Metrics {
			val, float := x.Values[mi], m.float[mi]
			switch {
			case mt.Agg == schemas.Count || mt.Agg == schemas.Uniq:
				r.vals[mi] = schemas.Value{Int: val.Int}
			case mt.Agg == schemas.Sum && x.Overflow != nil && x.Overflow[mi]:
				r.vals[mi] = schemas.Value{Null: true}
				ovf[mi] = true
				r.ov |= bit(mi)
			case val.Null:
				r.vals[mi] = schemas.Value{Null: true}
			case mt.Agg == schemas.Sum && float:
				// as foldValue and the answer make it: -0 sums to 0
				var s schemas.FloatSum
				s.Add(val.Float)
				var ok bool
				if r.vals[mi].Float, ok = s.Value(); !ok {
					r.vals[mi] = schemas.Value{Null: true}
					ovf[mi] = true
					r.ov |= bit(mi)
				}
			case float:
				r.vals[mi] = schemas.Value{Float: val.Float}
			default:
				r.vals[mi] = schemas.Value{Int: val.Int}
			}
		}
	}
	sortRows(m.types, rows)
	return rows, approx, ovf
}

// mergeGroups is merge through groups: any rows, any shape.
func mergeGroups(v *schemas.View, q *query, in *mergeInput) (rows []outRow, approx, ovf []bool) {
	m := newMerger(v, q)
	for _, part := range in.viewRows {
		for i := range part {
			m.addViewRow(&part[i])
		}
	}
	for _, p := range in.cubes {
		m.addCube(p)
	}
	for i := range in.speedRows {
		m.addSpeedRow(&in.speedRows[i], in.straddleT)
	}
	for i := range in.sketches {
		m.addSketch(&in.sketches[i])
	}
	return m.rows()
}

// rows prints the groups as the answer's rows, sorted, with the flags per
// view metric.
func (m *merger) rows() (rows []outRow, approx, ovf []bool) {
	nm := len(m.v.Metrics)
	approx, ovf = make([]bool, nm), make([]bool, nm)
	rows = make([]outRow, len(m.order))
	vals := make([]schemas.Value, len(m.order)*nm)
	for gi, g := range m.order {
		rows[gi] = outRow{t: g.t, dims: g.dims, vals: vals[gi*nm : (gi+1)*nm : (gi+1)*nm]}
		m.finish(g, &rows[gi], approx, ovf)
	}
	sortRows(m.types, rows)
	return rows, approx, ovf
}

// finish sets r's figures and flags from its group's accumulators, and
// adds the flags to approx and ovf (per view metric).
func (m *merger) finish(g *mgroup, r *outRow, approx, ovf []bool) {
	for mi, mt := range m.v.Metrics {
		if mt.Agg == schemas.Uniq {
			u := &g.uniq[m.uniqOf[mi]]
			if u.union && u.estOK {
				r.vals[mi] = schemas.Value{Int: u.est}
			} else if u.union {
				r.vals[mi] = schemas.Value{Int: estimateUnion(u.refs)}
			} else {
				r.vals[mi] = schemas.Value{Int: u.exact}
			}
			approx[mi] = approx[mi] || u.approx
			if u.approx {
				r.ap |= bit(mi)
			}
			continue
		}
		a := &g.acc[mi]
		switch {
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
}

// sortRows orders rows by t, then group_by values (types in group_by order).
// View files are in that order already (time, then dimension values), so
// groups of a step that is the view's grain, by a prefix of its dimensions,
// come out sorted: a check costs one pass and no moves.
func sortRows(types []schemas.Type, rows []outRow) {
	order := func(a, b outRow) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return compareDims(types, a.dims, b.dims)
	}
	if !slices.IsSortedFunc(rows, order) {
		slices.SortFunc(rows, order)
	}
}

// finite guards JSON, which has no NaN or infinities.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
