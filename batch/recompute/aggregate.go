package recompute

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// This file aggregates one hour of raw rows to a view's grain. It works a
// column at a time over Arrow arrays: every dimension value and every uniq
// value is interned to a small integer once, (bucket, dimension tuple) maps
// to a group index through a dense table, and the metric loops then only
// index flat slices. No per-row allocation.

// hourAgg accumulates one view's hour. Not safe for concurrent use.
type hourAgg struct {
	view    *schemas.View
	hour    int64 // start, Unix µs
	gran    int64 // bucket size, µs
	buckets int   // buckets per hour

	dims   []dimDict
	levels []tupleLevel // levels[d] combines the tuple of dims[:d] with dims[d] (d ≥ 1)
	ntup   int          // tuples seen (ids of the last level)

	slot      []int32          // tuple*buckets + bucket → group, -1 if none yet
	slotMap   map[uint64]int32 // instead of slot when that would be too large
	groupB    []int32          // group → bucket index
	groupT    []uint32
	rows      []int64 // group → rows counted
	metrics   []metricAcc
	misplaced int64 // rows whose time is outside the hour (skipped)

	// scratch, reused across chunks
	sel  []int32
	bkt  []int32
	tup  []uint32
	ids  []uint32
	grp  []int32
	pair []hll.Pair
}

// dimDict interns one dimension's values; id 0 is null.
type dimDict struct {
	typ    schemas.Type
	strs   map[string]uint32
	ints   map[int64]uint32
	values []schemas.Value
}

type tupleLevel struct {
	ids     map[uint64]uint32
	parents []uint64 // id → prev<<32 | dim id
}

type metricAcc struct {
	m     schemas.Metric
	col   int // field index in the schema, -1 for count
	float bool
	f     []float64 // min, max of a float field
	i     []int64   // min, max of an int field
	has   []bool
	// Sums follow the overflow rule both layers share (schemas.IntSum,
	// FloatSum): two monotone parts, overflow sticky.
	isum []schemas.IntSum
	fsum []schemas.FloatSum
	uniq *uniqAcc
}

// uniqAcc collects (group, value) memberships; distinct counts and sketches
// come from sorting them once at the end.
type uniqAcc struct {
	typ     schemas.Type
	strs    *strIntern
	ints    map[int64]uint32
	pattern []hll.Pair // value id → HLL register and rank
	members []uint64   // group<<32 | value id
}

// newHourAgg starts an hour; sizeHint is about how many distinct values a
// uniq metric may see (the hour's row count is a fine upper bound).
func newHourAgg(v *schemas.View, hour time.Time, sizeHint int) *hourAgg {
	a := &hourAgg{view: v, hour: hour.UnixMicro(), gran: v.Granularity.Microseconds()}
	a.buckets = int(time.Hour.Microseconds() / a.gran)
	for _, d := range v.Dimensions {
		f, _ := v.Schema.Field(d)
		a.dims = append(a.dims, dimDict{typ: f.Type, strs: map[string]uint32{}, ints: map[int64]uint32{},
			values: []schemas.Value{{Null: true}}})
	}
	a.levels = make([]tupleLevel, len(v.Dimensions))
	for i := range a.levels {
		a.levels[i].ids = map[uint64]uint32{}
	}
	if len(v.Dimensions) == 0 {
		a.ntup = 1
	}
	for _, m := range v.Metrics {
		acc := metricAcc{m: m, col: -1}
		if m.Agg != schemas.Count {
			acc.col = v.Schema.FieldIndex(m.Field)
			f := v.Schema.Fields[acc.col]
			acc.float = f.Type == schemas.Float64
			if m.Agg == schemas.Uniq {
				strHint, intHint := sizeHint, 0
				if f.Type != schemas.String {
					strHint, intHint = 0, sizeHint
				}
				acc.uniq = &uniqAcc{typ: f.Type, strs: newStrIntern(strHint, true), ints: make(map[int64]uint32, intHint)}
			}
		}
		a.metrics = append(a.metrics, acc)
	}
	return a
}

// rawChunk is a run of raw rows with every column the view reads, aligned.
// cols is indexed by schema field; fields the view does not read are nil.
type rawChunk struct {
	part  []int32
	off   []int64
	times []arrow.Timestamp
	id    arrow.Array
	cols  []arrow.Array
	keep  []bool
	n     int
}

// add aggregates the kept rows of c, a stage at a time over the whole
// chunk: the rows in the hour and their buckets, their dimension tuples,
// their groups, then every metric.
func (a *hourAgg) add(c *rawChunk) {
	sel, bkt := a.selectRows(c)
	if len(sel) == 0 {
		return
	}
	tup := a.tuples(c, sel)
	grp := a.groups(sel, bkt, tup)
	for _, g := range grp {
		a.rows[g]++
	}
	a.addMetrics(c, sel, grp)
}

// selectRows returns the kept rows of c whose time lies in the hour, and
// their bucket indexes; rows outside the hour are counted as misplaced.
func (a *hourAgg) selectRows(c *rawChunk) (sel, bkt []int32) {
	sel, bkt = a.sel[:0], a.bkt[:0]
	end := a.hour + time.Hour.Microseconds()
	for r := 0; r < c.n; r++ {
		if !c.keep[r] {
			continue
		}
		t := int64(c.times[r])
		if t < a.hour || t >= end {
			a.misplaced++
			continue
		}
		sel = append(sel, int32(r))
		bkt = append(bkt, int32((t-a.hour)/a.gran))
	}
	a.sel, a.bkt = sel, bkt
	return sel, bkt
}

// tuples returns the id of each selected row's dimension tuple: each
// dimension's value is interned, and level d combines the tuple of the
// dimensions before it with dimension d.
func (a *hourAgg) tuples(c *rawChunk, sel []int32) []uint32 {
	tup := grow(a.tup, len(sel))
	if len(a.dims) == 0 {
		clear(tup)
	}
	for d := range a.dims {
		if d == 0 {
			a.dims[0].intern(c.cols[a.view.Schema.FieldIndex(a.view.Dimensions[0])], sel, tup)
			continue
		}
		ids := grow(a.ids, len(sel))
		a.dims[d].intern(c.cols[a.view.Schema.FieldIndex(a.view.Dimensions[d])], sel, ids)
		a.ids = ids
		lv := &a.levels[d]
		for k := range tup {
			key := uint64(tup[k])<<32 | uint64(ids[k])
			id, ok := lv.ids[key]
			if !ok {
				id = uint32(len(lv.parents))
				lv.ids[key] = id
				lv.parents = append(lv.parents, key)
			}
			tup[k] = id
		}
	}
	a.tup = tup
	switch {
	case len(a.dims) == 1:
		a.ntup = len(a.dims[0].values)
	case len(a.dims) > 1:
		a.ntup = len(a.levels[len(a.dims)-1].parents)
	}
	return tup
}

// groups returns the group of each selected row, (tuple, bucket), adding
// the groups not seen yet.
func (a *hourAgg) groups(sel, bkt []int32, tup []uint32) []int32 {
	if need := a.ntup * a.buckets; a.slotMap == nil && len(a.slot) < need {
		if need > maxDenseSlots {
			a.slotMap = make(map[uint64]int32, len(a.groupB))
			for g := range a.groupB {
				a.slotMap[uint64(a.groupT[g])*uint64(a.buckets)+uint64(a.groupB[g])] = int32(g)
			}
			a.slot = nil
		} else {
			old := len(a.slot)
			a.slot = slices.Grow(a.slot, need-old)[:need]
			for i := old; i < need; i++ {
				a.slot[i] = -1
			}
		}
	}
	grp := grow(a.grp, len(sel))
	for k := range sel {
		s := uint64(tup[k])*uint64(a.buckets) + uint64(bkt[k])
		var g int32 = -1
		if a.slotMap != nil {
			if x, ok := a.slotMap[s]; ok {
				g = x
			}
		} else {
			g = a.slot[s]
		}
		if g < 0 {
			g = int32(len(a.groupB))
			if a.slotMap != nil {
				a.slotMap[s] = g
			} else {
				a.slot[s] = g
			}
			a.groupB = append(a.groupB, bkt[k])
			a.groupT = append(a.groupT, tup[k])
			a.rows = append(a.rows, 0)
			for i := range a.metrics {
				m := &a.metrics[i]
				switch {
				case m.m.Agg == schemas.Sum && m.float:
					m.fsum = append(m.fsum, schemas.FloatSum{})
				case m.m.Agg == schemas.Sum:
					m.isum = append(m.isum, schemas.IntSum{})
				case m.float:
					m.f = append(m.f, 0)
				default:
					m.i = append(m.i, 0)
				}
				m.has = append(m.has, false)
			}
		}
		grp[k] = g
	}
	a.grp = grp
	return grp
}

// addMetrics folds the selected rows' values into their groups' metrics
// (count is the group's row count, kept apart).
func (a *hourAgg) addMetrics(c *rawChunk, sel, grp []int32) {
	for i := range a.metrics {
		m := &a.metrics[i]
		switch m.m.Agg {
		case schemas.Count:
			continue
		case schemas.Uniq:
			m.uniq.add(c.cols[m.col], sel, grp)
		default:
			if m.float {
				m.addFloat(c.cols[m.col].(*array.Float64), sel, grp)
			} else {
				m.addInt(c.cols[m.col].(*array.Int64), sel, grp)
			}
		}
	}
}

// maxDenseSlots bounds the dense (tuple, bucket) → group table (16 MiB);
// views with many tuples and fine buckets use a map instead.
const maxDenseSlots = 4 << 20

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (m *metricAcc) addFloat(arr *array.Float64, sel, grp []int32) {
	if m.m.Agg == schemas.Sum {
		sumFloats(arr, sel, grp, m.fsum, m.has)
		return
	}
	accumulate(m.m.Agg, arr.Float64Values(), arr, sel, grp, m.f, m.has)
}

func (m *metricAcc) addInt(arr *array.Int64, sel, grp []int32) {
	if m.m.Agg == schemas.Sum {
		sumInts(arr, sel, grp, m.isum, m.has)
		return
	}
	accumulate(m.m.Agg, arr.Int64Values(), arr, sel, grp, m.i, m.has)
}

// accumulate folds the selected rows' values into their groups' min or
// max. It is instantiated once per numeric type, so the loop stays typed.
func accumulate[T int64 | float64](agg schemas.Agg, vals []T, arr arrow.Array, sel, grp []int32, acc []T, has []bool) {
	nulls := arr.NullN() > 0
	for k, r := range sel {
		if nulls && arr.IsNull(int(r)) {
			continue
		}
		g, x := grp[k], vals[r]
		if !has[g] || schemas.Replaces(agg, x, acc[g]) {
			acc[g] = x
		}
		has[g] = true
	}
}

// sumInts and sumFloats fold the selected rows' values into their groups'
// sums under the overflow rule both layers share.
func sumInts(arr *array.Int64, sel, grp []int32, acc []schemas.IntSum, has []bool) {
	vals, nulls := arr.Int64Values(), arr.NullN() > 0
	for k, r := range sel {
		if nulls && arr.IsNull(int(r)) {
			continue
		}
		g := grp[k]
		acc[g].Add(vals[r])
		has[g] = true
	}
}

func sumFloats(arr *array.Float64, sel, grp []int32, acc []schemas.FloatSum, has []bool) {
	vals, nulls := arr.Float64Values(), arr.NullN() > 0
	for k, r := range sel {
		if nulls && arr.IsNull(int(r)) {
			continue
		}
		g := grp[k]
		acc[g].Add(vals[r])
		has[g] = true
	}
}

// stringColumn gives zero-copy access to an Arrow string array's values.
type stringColumn struct {
	offs []int32
	data string
}

func newStringColumn(arr *array.String) stringColumn {
	b := arr.ValueBytes()
	offs := arr.ValueOffsets()
	// ValueBytes starts at the first value of a sliced array, while the
	// offsets are not rebased: shift them.
	if len(offs) > 0 && offs[0] != 0 {
		base := offs[0]
		offs = slices.Clone(offs)
		for i := range offs {
			offs[i] -= base
		}
	}
	return stringColumn{offs: offs, data: unsafe.String(unsafe.SliceData(b), len(b))}
}

func (s stringColumn) at(i int32) string { return s.data[s.offs[i]:s.offs[i+1]] }

// int64Of reads the integer representation of a non-string column: int64
// and timestamp values, bools as 0/1, floats by their bits.
func int64Of(arr arrow.Array) func(i int) int64 {
	switch a := arr.(type) {
	case *array.Int64:
		v := a.Int64Values()
		return func(i int) int64 { return v[i] }
	case *array.Timestamp:
		v := a.TimestampValues()
		return func(i int) int64 { return int64(v[i]) }
	case *array.Boolean:
		return func(i int) int64 {
			if a.Value(i) {
				return 1
			}
			return 0
		}
	case *array.Float64:
		v := a.Float64Values()
		return func(i int) int64 { return int64(math.Float64bits(v[i])) }
	case *array.Int32:
		v := a.Int32Values()
		return func(i int) int64 { return int64(v[i]) }
	}
	panic("recompute: unsupported column type " + arr.DataType().String())
}

// intern writes the id of each selected row's value into out.
func (d *dimDict) intern(arr arrow.Array, sel []int32, out []uint32) {
	nulls := arr.NullN() > 0
	if sa, ok := arr.(*array.String); ok {
		col := newStringColumn(sa)
		for k, r := range sel {
			if nulls && sa.IsNull(int(r)) {
				out[k] = 0
				continue
			}
			s := col.at(r)
			id, ok := d.strs[s]
			if !ok {
				s = strings.Clone(s)
				id = uint32(len(d.values))
				d.strs[s] = id
				d.values = append(d.values, schemas.Value{Str: s})
			}
			out[k] = id
		}
		return
	}
	get := int64Of(arr)
	for k, r := range sel {
		if nulls && arr.IsNull(int(r)) {
			out[k] = 0
			continue
		}
		x := get(int(r))
		id, ok := d.ints[x]
		if !ok {
			id = uint32(len(d.values))
			d.ints[x] = id
			d.values = append(d.values, schemas.Value{Int: x})
		}
		out[k] = id
	}
}

func (u *uniqAcc) add(arr arrow.Array, sel, grp []int32) {
	nulls := arr.NullN() > 0
	if sa, ok := arr.(*array.String); ok {
		col := newStringColumn(sa)
		for k, r := range sel {
			if nulls && sa.IsNull(int(r)) {
				continue
			}
			s := col.at(r)
			id, added := u.strs.id(s)
			if added {
				u.pattern = append(u.pattern, hll.Pattern(schemas.UniqElement(u.typ, &schemas.Value{Str: s})))
			}
			u.members = append(u.members, uint64(grp[k])<<32|uint64(id))
		}
		return
	}
	get := int64Of(arr)
	for k, r := range sel {
		if nulls && arr.IsNull(int(r)) {
			continue
		}
		x := get(int(r))
		id, ok := u.ints[x]
		if !ok {
			id = uint32(len(u.pattern))
			u.ints[x] = id
			// x is int64Of's reading (a float by its bits): set both
			// members, the rule reads the one of u.typ.
			u.pattern = append(u.pattern, hll.Pattern(schemas.UniqElement(u.typ, &schemas.Value{Int: x, Float: math.Float64frombits(uint64(x))})))
		}
		u.members = append(u.members, uint64(grp[k])<<32|uint64(id))
	}
}

// finish sorts the groups and returns the hour's rows.
func (a *hourAgg) finish() *views.Columns {
	n := len(a.groupB)
	// Dimension ids in value order, so groups sort by value.
	ranks := make([][]uint32, len(a.dims))
	for d := range a.dims {
		dd := &a.dims[d]
		order := make([]uint32, len(dd.values))
		for i := range order {
			order[i] = uint32(i)
		}
		slices.SortFunc(order, func(x, y uint32) int { return schemas.CompareValues(dd.typ, dd.values[x], dd.values[y]) })
		ranks[d] = make([]uint32, len(order))
		for r, id := range order {
			ranks[d][id] = uint32(r)
		}
	}
	// Each group's dimension ids, from the tuple levels.
	nd := len(a.dims)
	gdims := make([]uint32, n*nd)
	for g := 0; g < n; g++ {
		t := a.groupT[g]
		for d := nd - 1; d >= 1; d-- {
			key := a.levels[d].parents[t]
			gdims[g*nd+d] = uint32(key)
			t = uint32(key >> 32)
		}
		if nd > 0 {
			gdims[g*nd] = t
		}
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		if c := cmp.Compare(a.groupB[x], a.groupB[y]); c != 0 {
			return c
		}
		for d := 0; d < nd; d++ {
			if c := cmp.Compare(ranks[d][gdims[int(x)*nd+d]], ranks[d][gdims[int(y)*nd+d]]); c != 0 {
				return c
			}
		}
		return 0
	})

	h := &views.Columns{T: make([]int64, n), Dims: make([][]schemas.Value, nd), Metrics: make([]views.MetricColumn, len(a.metrics))}
	for d := range h.Dims {
		h.Dims[d] = make([]schemas.Value, n)
	}
	for k, g := range order {
		h.T[k] = a.hour + int64(a.groupB[g])*a.gran
		for d := 0; d < nd; d++ {
			h.Dims[d][k] = a.dims[d].values[gdims[int(g)*nd+d]]
		}
	}
	for i := range a.metrics {
		m := &a.metrics[i]
		col := &h.Metrics[i]
		switch m.m.Agg {
		case schemas.Count:
			col.Ints = make([]int64, n)
			for k, g := range order {
				col.Ints[k] = a.rows[g]
			}
		case schemas.Uniq:
			col.Ints, col.HLL = m.uniq.finish(n, order, &a.pair)
		case schemas.Sum:
			col.Valid = make([]bool, n)
			if m.float {
				col.Floats = make([]float64, n)
			} else {
				col.Ints = make([]int64, n)
			}
			for k, g := range order {
				var ok bool
				if m.float {
					col.Floats[k], ok = m.fsum[g].Value()
				} else {
					col.Ints[k], ok = m.isum[g].Value()
				}
				col.Valid[k] = m.has[g] && ok
				if !ok {
					if col.Overflow == nil {
						col.Overflow = make([]bool, n)
					}
					col.Overflow[k] = true
				}
			}
		default:
			col.Valid = make([]bool, n)
			if m.float {
				col.Floats = make([]float64, n)
			} else {
				col.Ints = make([]int64, n)
			}
			for k, g := range order {
				col.Valid[k] = m.has[g]
				if m.float {
					col.Floats[k] = m.f[g]
				} else {
					col.Ints[k] = m.i[g]
				}
			}
		}
	}
	return h
}

// finish returns each group's exact distinct count and sketch, in output
// order. The sketches share one buffer.
func (u *uniqAcc) finish(n int, order []int32, scratch *[]hll.Pair) ([]int64, [][]byte) {
	slices.Sort(u.members)
	counts := make([]int64, n)
	ends := make([]int, n) // end of group g's sketch in arena; 0: none yet
	arena := make([]byte, 0, n*24)
	for i := 0; i < len(u.members); {
		g := u.members[i] >> 32
		pairs := (*scratch)[:0]
		var prev uint64 = math.MaxUint64
		for ; i < len(u.members) && u.members[i]>>32 == g; i++ {
			if m := u.members[i]; m != prev {
				pairs = append(pairs, u.pattern[uint32(m)])
				prev = m
			}
		}
		counts[g] = int64(len(pairs))
		arena = hll.AppendEncode(arena, pairs)
		ends[g] = len(arena)
		*scratch = pairs
	}
	empty := hll.Encode(nil)
	starts := make([]int, n)
	// Groups were encoded in group order, so a group's sketch starts where
	// the previous encoded group's ended.
	last := 0
	for g := 0; g < n; g++ {
		if ends[g] != 0 {
			starts[g] = last
			last = ends[g]
		}
	}
	outC := make([]int64, n)
	outS := make([][]byte, n)
	for k, g := range order {
		outC[k] = counts[g]
		if ends[g] == 0 {
			outS[k] = empty
		} else {
			outS[k] = arena[starts[g]:ends[g]:ends[g]]
		}
	}
	return outC, outS
}
