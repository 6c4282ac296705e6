package serving

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// An hour cube is one batch hour rolled up to a time grain and a subset of
// the view's dimensions: what Druid's rollup and Pinot's star-tree keep,
// built here on demand and cached. A query whose group_by and where name
// only dimensions of the subset, with a step the grain divides, rolls the
// cube up instead of every view row of the hour; the ranges, filters and
// groupings a dashboard varies share one cube per hour, grain and subset,
// kept in half of http.rollup_cache_bytes of their own. An hour of orders
// by tenant × country (12k rows) is 60 cells for the totals at 1m, 1 at
// 1h, and 4 × tenants × countries by both dimensions at 15m.
//
// The answer is the one the view rows give: counts, sums (their positive
// and negative parts, so the overflow rule sees the same parts), min and
// max fold the same way; a uniq cell of one row keeps that row's exact
// figure and sketch, a cell of several keeps their sketches, or from
// cubeUnionRefs of them on their union and its estimate (HLL unions are
// associative, so the estimate is the same). Float sums
// may differ in the last bits, as any change of summation order does.
type hourCube struct {
	grain time.Duration
	dims  []int     // the view dimensions the cells keep, in view order
	cells []*mgroup // by time then dims
	// per dimension of the cube, its values' cells (indices in cells, in
	// order): a where reads only the cells of its value
	byValue []map[schemas.Value][]int32
	bytes   int64
}

// cubeUnionRefs is how many sketches a cube cell's uniq must hold to be
// stored as their union: encoding one costs a pass over all 16384
// registers, which pays off only when it spares many small unions at query
// time.
const cubeUnionRefs = 16

// cubeGrains are the time grains cubes are built at, coarsest first: the
// dashboard steps that divide an hour.
var cubeGrains = []time.Duration{time.Hour, 15 * time.Minute, 5 * time.Minute}

// cubeShape is the cube a query's batch hours roll up from: the dimensions
// it needs (its group_by and where dimensions, as view dimension indices in
// view order) at the coarsest grain that divides its step. ok is false when
// that cube would be the view rows again (every dimension at the view's
// grain).
func cubeShape(q *query) (dims []int, grain time.Duration, ok bool) {
	v := q.view
	for i, d := range v.Dimensions {
		_, filtered := q.where[d]
		if filtered || slices.Contains(q.groupBy, d) {
			dims = append(dims, i)
		}
	}
	grain = v.Granularity
	for _, g := range cubeGrains {
		if g > v.Granularity && g%v.Granularity == 0 && q.step%g == 0 {
			grain = g
			break
		}
	}
	return dims, grain, len(dims) < len(v.Dimensions) || grain > v.Granularity
}

// buildCube rolls an hour's view rows up to grain and the dimensions dims.
func buildCube(v *schemas.View, dims []int, grain time.Duration, rows []views.Row) *hourCube {
	m := newRollup(v, grain.Microseconds(), dims)
	for i := range rows {
		m.addViewRow(&rows[i])
	}
	c := &hourCube{grain: grain, dims: dims, cells: m.order}
	perCell := int64(unsafe.Sizeof(mgroup{})) + int64(len(v.Metrics))*int64(unsafe.Sizeof(macc{})) +
		int64(m.nuniq)*int64(unsafe.Sizeof(uacc{})) + int64(len(dims))*valueBytes + 8
	c.bytes = int64(len(c.cells)) * perCell
	var s hll.Sketch
	for _, g := range c.cells {
		for u := range g.uniq {
			a := &g.uniq[u]
			if a.union && len(a.refs) >= cubeUnionRefs {
				s = hll.Sketch{}
				for _, b := range a.refs {
					s.MergeBytes(b) // a bad sketch counts as empty, as in estimateUnion
				}
				a.refs = [][]byte{s.Marshal()}
				c.bytes += int64(len(a.refs[0]))
			}
			if a.union {
				// A group made of this cell alone prints this figure.
				a.est, a.estOK = estimateUnion(a.refs), true
			}
			c.bytes += int64(len(a.first)) + int64(len(a.refs))*24
		}
		for _, d := range g.dims {
			c.bytes += int64(len(d.Str))
		}
	}
	c.byValue = make([]map[schemas.Value][]int32, len(dims))
	for p := range dims {
		idx := map[schemas.Value][]int32{}
		for i, g := range c.cells {
			idx[g.dims[p]] = append(idx[g.dims[p]], int32(i))
		}
		c.byValue[p] = idx
		c.bytes += int64(len(c.cells))*4 + int64(len(idx))*(valueBytes+24)
	}
	return c
}

// hourCube returns the cube of an hour for dims at grain, from the cube
// cache or built from the hour's view rows; concurrent requests for one
// cube share one build.
func (a *API) hourCube(ctx context.Context, v *schemas.View, st *views.State, h time.Time, version int64, dims []int, grain time.Duration) (*hourCube, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%d|%d|", v.Name, st.Fingerprint, views.HourKey(h), version, grain)
	for _, d := range dims {
		b.WriteString(strconv.Itoa(d))
		b.WriteByte(',')
	}
	key := b.String()
	if c, ok := a.cubes.get(key); ok {
		return c, nil
	}
	val, err, _ := a.cubeSF.Do(key, func() (any, error) {
		rows, err := a.cfg.Batch.Rows(ctx, v, h, h.Add(time.Hour), nil)
		if err != nil {
			return nil, err
		}
		c := buildCube(v, dims, grain, rows)
		a.cubes.put(key, c, c.bytes)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*hourCube), nil
}

// cubePart is a cube a query reads, with its where compiled against the
// cube's dimensions.
type cubePart struct {
	cube  *hourCube
	where []cubeCond
}

type cubeCond struct {
	pos int // in the cube's dims
	val schemas.Value
}

func newCubePart(q *query, c *hourCube) cubePart {
	p := cubePart{cube: c}
	for d, val := range q.where {
		p.where = append(p.where, cubeCond{slices.Index(c.dims, slices.Index(q.view.Dimensions, d)), val})
	}
	return p
}

// cells are the cube's cells that match where: with a where, only those
// of its rarest value are looked at.
func (p cubePart) cells() []*mgroup {
	if len(p.where) == 0 {
		return p.cube.cells
	}
	var only []int32
	for i, w := range p.where {
		if ids := p.cube.byValue[w.pos][w.val]; i == 0 || len(ids) < len(only) {
			only = ids
		}
	}
	var out []*mgroup
cell:
	for _, i := range only {
		c := p.cube.cells[i]
		for _, w := range p.where {
			if c.dims[w.pos] != w.val {
				continue cell
			}
		}
		out = append(out, c)
	}
	return out
}

// positions maps the merger's group_by dimensions to indices in the
// cells' dimensions.
func (p cubePart) positions(m *merger) []int {
	pos := make([]int, len(m.groupIdx))
	for k, d := range m.groupIdx {
		pos[k] = slices.Index(p.cube.dims, d)
	}
	return pos
}

// addCube folds the cube's cells that match where into the answer's groups.
func (m *merger) addCube(p cubePart) {
	pos := p.positions(m)
	for _, c := range p.cells() {
		g := m.group(m.stepOf(c.t), len(pos), func(k int) schemas.Value { return c.dims[pos[k]] })
		for mi, mt := range m.v.Metrics {
			if mt.Agg == schemas.Uniq {
				u := m.uniqOf[mi]
				g.uniq[u].foldCell(&c.uniq[u])
				continue
			}
			foldCell(&g.acc[mi], mt.Agg, m.float[mi], &c.acc[mi])
		}
	}
}

// eachCellAGroup is merge for a cube at the query's step: its dimensions
// are the query's group_by and where ones, so each cell that matches where
// is a group of its own, printed from its accumulators with no groups to
// find.
func eachCellAGroup(v *schemas.View, q *query, p cubePart) (rows []outRow, approx, ovf []bool) {
	m := newMerger(v, q)
	approx, ovf = make([]bool, len(v.Metrics)), make([]bool, len(v.Metrics))
	cells := p.cells()
	pick := newProjection(p.positions(m), len(cells))
	nm := len(v.Metrics)
	rows = make([]outRow, len(cells))
	vals := make([]schemas.Value, len(cells)*nm)
	for i, c := range cells {
		r := &rows[i]
		r.t, r.dims, r.vals = c.t, pick.dims(i, c.dims), vals[i*nm:(i+1)*nm:(i+1)*nm]
		m.finish(c, r, approx, ovf)
	}
	sortRows(m.types, rows)
	return rows, approx, ovf
}

// foldCell folds a cube cell's count/sum/min/max into a: what folding the
// cell's view rows one by one (foldValue) gives.
func foldCell(a *macc, agg schemas.Agg, float bool, x *macc) {
	switch agg {
	case schemas.Count:
		a.i += x.i
		return
	case schemas.Sum:
		if x.has {
			a.is.Merge(x.is)
			a.fs.Merge(x.fs)
		}
	case schemas.Min, schemas.Max:
		if x.has && (!a.has || (float && schemas.Replaces(agg, x.f, a.f)) || (!float && schemas.Replaces(agg, x.i, a.i))) {
			a.i, a.f = x.i, x.f
		}
	}
	a.has = a.has || x.has
}

// foldCell folds a cube cell's uniq into a: a cell of one view row is that
// row; a cell of several adds their sketches (or their union).
func (a *uacc) foldCell(x *uacc) {
	switch {
	case x.n == 0:
	case a.n == 0 && x.n == 1:
		a.n, a.exact, a.first = 1, x.exact, x.first
	default:
		// A group of exactly one stored union has that union's estimate.
		est, estOK := x.est, a.n == 0 && x.estOK
		a.n += x.n
		a.approx = true
		if x.union {
			a.foldSketch(nil)
			a.refs = append(a.refs, x.refs...)
		} else {
			a.foldSketch(x.first)
		}
		a.est, a.estOK = est, estOK
	}
}
