package serving

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// cubeHour is a random batch hour of a view with every metric kind: float
// and int sums, min and max, count and uniq, with nulls, overflowed sums,
// sums near the int64 limits, rows without a sketch, and cells of one
// contributor beside cells of many. Floats are multiples of 1/4 so that
// their sums are exact in any order, and the two paths can be compared
// exactly.
func cubeHour(r *rand.Rand) []views.Row {
	var rows []views.Row
	for m := range 60 {
		for ti := range 4 {
			for ci := range 3 {
				if r.IntN(3) == 0 {
					continue // not every tuple in every minute
				}
				row := views.Row{T: int64(m) * minute,
					Dims:     []schemas.Value{{Str: fmt.Sprintf("t%d", ti)}, {Str: fmt.Sprintf("c%d", ci)}},
					Values:   make([]schemas.Value, 8),
					HLL:      make([][]byte, 8),
					Overflow: make([]bool, 8)}
				amount := func() schemas.Value {
					if r.IntN(10) == 0 {
						return schemas.Value{Null: true}
					}
					return schemas.Value{Float: float64(r.IntN(4000)-1000) / 4}
				}
				qty := func() schemas.Value {
					switch r.IntN(12) {
					case 0:
						return schemas.Value{Null: true}
					case 1:
						return schemas.Value{Int: math.MaxInt64 - int64(r.IntN(3))}
					case 2:
						return schemas.Value{Int: math.MinInt64 + int64(r.IntN(3))}
					}
					return schemas.Value{Int: int64(r.IntN(200) - 50)}
				}
				row.Values[0] = schemas.Value{Int: int64(1 + r.IntN(9))}
				row.Values[1], row.Values[2], row.Values[3] = amount(), amount(), amount()
				row.Values[5], row.Values[6], row.Values[7] = qty(), qty(), qty()
				if r.IntN(40) == 0 {
					row.Values[5], row.Overflow[5] = schemas.Value{Null: true}, true
				}
				if r.IntN(8) != 0 {
					lo := r.IntN(300)
					row.HLL[4], row.Values[4].Int = users(lo, lo+1+r.IntN(20))
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// Rolling a batch hour up through a cube gives the answer that rolling its
// view rows up gives: every figure, every estimate and overflow flag, for
// every shape a cube serves (group_by and where within a dimension subset,
// in either order, steps from the view's grain to the hour; cells merged
// into groups, or each cell a group of its own).
func TestCubeAnswersAsViewRows(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	v.Metrics = testenv.OrdersMetrics()
	var checked int
	for seed := range uint64(20) {
		rows := cubeHour(rand.New(rand.NewPCG(seed, 7)))
		for _, step := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour} {
			for _, shape := range []struct {
				groupBy []string
				where   map[string]string
			}{
				{nil, nil},
				{[]string{"tenant"}, nil},
				{[]string{"country"}, nil},
				{nil, map[string]string{"tenant": "t2"}},
				{[]string{"tenant"}, map[string]string{"tenant": "t1"}},
				{nil, map[string]string{"country": "c0"}},
				{[]string{"country"}, map[string]string{"country": "c9"}}, // matches nothing
				{[]string{"tenant", "country"}, nil},
				{[]string{"country", "tenant"}, map[string]string{"country": "c1"}},
				{[]string{"country"}, map[string]string{"tenant": "t3"}},
			} {
				q := mq(v, step, shape.groupBy...)
				for d, val := range shape.where {
					q.where[d] = schemas.Value{Str: val}
				}
				dims, grain, ok := cubeShape(q)
				if !ok {
					if len(dims) != 2 || step != time.Minute {
						t.Fatalf("step %v group_by %v where %v: no cube", step, shape.groupBy, shape.where)
					}
					continue // every dimension at the view's grain: the view rows
				}
				match := whereMatcher(v, q.where)
				var filtered []views.Row
				for _, r := range rows {
					if match(r.Dims) {
						filtered = append(filtered, r)
					}
				}
				wantRows, wantAp, wantOv := merge(v, q, &mergeInput{viewRows: [][]views.Row{filtered}, straddleT: -1})
				c := buildCube(v, dims, grain, rows)
				gotRows, gotAp, gotOv := merge(v, q, &mergeInput{cubes: []cubePart{newCubePart(q, c)}, straddleT: -1})
				name := fmt.Sprintf("seed %d step %v (cube grain %v) group_by %v where %v", seed, step, grain, shape.groupBy, shape.where)
				if !reflect.DeepEqual(gotAp, wantAp) || !reflect.DeepEqual(gotOv, wantOv) {
					t.Errorf("%s: flags approx %v overflow %v, want %v %v", name, gotAp, gotOv, wantAp, wantOv)
				}
				if len(gotRows) != len(wantRows) {
					t.Fatalf("%s: %d rows, want %d", name, len(gotRows), len(wantRows))
				}
				for i := range wantRows {
					g, w := gotRows[i], wantRows[i]
					if g.t != w.t || !reflect.DeepEqual(g.dims, w.dims) || !reflect.DeepEqual(g.vals, w.vals) || g.ap != w.ap || g.ov != w.ov {
						t.Fatalf("%s: row %d\n got %+v\nwant %+v", name, i, g, w)
					}
				}
				checked += len(wantRows)
			}
		}
	}
	if checked < 10_000 {
		t.Fatalf("compared only %d rows", checked)
	}
}

// A query's batch hours roll up from the cube of the dimensions it groups
// or filters by, at the coarsest grain that divides its step; by every
// dimension at the view's grain it reads the view rows, which that cube
// would be again.
func TestCubeShape(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	tests := []struct {
		step      time.Duration
		groupBy   []string
		where     []string
		wantDims  []int
		wantGrain time.Duration
		wantOK    bool
	}{
		{time.Minute, nil, nil, nil, time.Minute, true},
		{time.Minute, []string{"country"}, nil, []int{1}, time.Minute, true},
		{time.Minute, nil, []string{"tenant"}, []int{0}, time.Minute, true},
		{time.Minute, []string{"country"}, []string{"country"}, []int{1}, time.Minute, true},
		{time.Minute, []string{"country", "tenant"}, nil, []int{0, 1}, time.Minute, false},
		{time.Minute, []string{"country"}, []string{"tenant"}, []int{0, 1}, time.Minute, false},
		{2 * time.Minute, []string{"country", "tenant"}, nil, []int{0, 1}, time.Minute, false},
		{5 * time.Minute, []string{"country", "tenant"}, nil, []int{0, 1}, 5 * time.Minute, true},
		{10 * time.Minute, nil, nil, nil, 5 * time.Minute, true},
		{15 * time.Minute, []string{"country"}, []string{"tenant"}, []int{0, 1}, 15 * time.Minute, true},
		{30 * time.Minute, []string{"tenant"}, nil, []int{0}, 15 * time.Minute, true},
		{time.Hour, nil, nil, nil, time.Hour, true},
	}
	for _, tt := range tests {
		q := mq(v, tt.step, tt.groupBy...)
		for _, d := range tt.where {
			q.where[d] = schemas.Value{Str: "x"}
		}
		dims, grain, ok := cubeShape(q)
		if !reflect.DeepEqual(dims, tt.wantDims) || grain != tt.wantGrain || ok != tt.wantOK {
			t.Errorf("step %v group_by %v where %v: dims %v grain %v ok %v, want %v %v %v",
				tt.step, tt.groupBy, tt.where, dims, grain, ok, tt.wantDims, tt.wantGrain, tt.wantOK)
		}
	}
}

// A view file's rows at its own grain, by or fixed at every dimension, are
// each a group of their own: the shortcut that skips finding groups answers
// as the groups do, in either group_by order, with nulls, overflowed and
// infinite sums and negative zeros.
func TestEachRowAGroupAsGroups(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	v.Metrics = testenv.OrdersMetrics()
	for seed := range uint64(10) {
		rows := cubeHour(rand.New(rand.NewPCG(seed, 9)))
		rows[0].Values[1] = schemas.Value{Float: math.Copysign(0, -1)}
		rows[1].Values[1] = schemas.Value{Float: math.Inf(1)}
		rows[2].Values[2] = schemas.Value{Null: true}
		for _, shape := range []struct {
			groupBy []string
			where   map[string]string
		}{
			{[]string{"tenant", "country"}, nil},
			{[]string{"country", "tenant"}, nil},
			{[]string{"country"}, map[string]string{"tenant": "t1"}},
			{[]string{"tenant"}, map[string]string{"country": "c2"}},
			{nil, map[string]string{"tenant": "t0", "country": "c1"}},
		} {
			groupBy := shape.groupBy
			q := mq(v, time.Minute, groupBy...)
			var read []views.Row // what the batch reader returns for where
			for _, r := range rows {
				if (shape.where["tenant"] == "" || r.Dims[0].Str == shape.where["tenant"]) &&
					(shape.where["country"] == "" || r.Dims[1].Str == shape.where["country"]) {
					read = append(read, r)
				}
			}
			for d, val := range shape.where {
				q.where[d] = schemas.Value{Str: val}
			}
			if !everyDimension(v, q) {
				t.Fatalf("group_by %v where %v: not every dimension", groupBy, shape.where)
			}
			in := &mergeInput{oneView: true, viewRows: [][]views.Row{read}, straddleT: -1}
			gotRows, gotAp, gotOv := merge(v, q, in)
			wantRows, wantAp, wantOv := mergeGroups(v, q, in)
			if !reflect.DeepEqual(gotAp, wantAp) || !reflect.DeepEqual(gotOv, wantOv) {
				t.Errorf("seed %d group_by %v: flags approx %v overflow %v, want %v %v", seed, groupBy, gotAp, gotOv, wantAp, wantOv)
			}
			if len(gotRows) != len(wantRows) || len(gotRows) != len(in.viewRows[0]) {
				t.Fatalf("seed %d group_by %v: %d rows, want %d", seed, groupBy, len(gotRows), len(wantRows))
			}
			for i := range wantRows {
				g, w := gotRows[i], wantRows[i]
				if g.t != w.t || !reflect.DeepEqual(g.dims, w.dims) || !reflect.DeepEqual(g.vals, w.vals) || g.ap != w.ap || g.ov != w.ov ||
					math.Signbit(g.vals[1].Float) != math.Signbit(w.vals[1].Float) {
					t.Fatalf("seed %d group_by %v: row %d\n got %+v\nwant %+v", seed, groupBy, i, g, w)
				}
			}
		}
	}
}

// Speed rows alone (rolled up by the speed reader, one per step and
// group_by values) are each a group of their own: the shortcut answers as
// the groups do, with sums in parts, overflow, nulls and uniq estimates;
// rows out of order or repeated go through the groups.
func TestEachSpeedRowAGroupAsGroups(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	v.Metrics = testenv.OrdersMetrics()
	r := rand.New(rand.NewPCG(3, 4))
	var rows []speed.Row
	for m := range 30 {
		for ti := range 3 {
			if r.IntN(4) == 0 {
				continue
			}
			row := speed.Row{T: time.UnixMicro(int64(m) * minute).UTC(), Dims: []schemas.Value{{Str: fmt.Sprintf("t%d", ti)}},
				Values: make([]schemas.Value, 8), Sums: make([]speed.SumParts, 8)}
			row.Values[0] = schemas.Value{Int: int64(1 + r.IntN(50))}
			pos, neg := float64(r.IntN(400))/4, -float64(r.IntN(400))/4
			row.Sums[1].Float = schemas.FloatSum{Pos: pos, Neg: neg}
			row.Values[1] = schemas.Value{Float: pos + neg}
			row.Values[2], row.Values[3] = schemas.Value{Float: pos}, schemas.Value{Float: neg}
			row.Values[4] = schemas.Value{Int: int64(r.IntN(40))}
			ip, in := int64(r.IntN(1000)), -int64(r.IntN(1000))
			row.Sums[5].Int = schemas.IntSum{Pos: ip, Neg: in}
			row.Values[5] = schemas.Value{Int: ip + in}
			row.Values[6], row.Values[7] = schemas.Value{Int: in}, schemas.Value{Int: ip}
			switch r.IntN(10) {
			case 0:
				row.Overflow = make([]bool, 8)
				row.Overflow[5], row.Values[5] = true, schemas.Value{Null: true}
				row.Sums[5].Int.Overflow = true
			case 1:
				row.Values[2], row.Values[3] = schemas.Value{Null: true}, schemas.Value{Null: true}
			}
			rows = append(rows, row)
		}
	}
	q := mq(v, time.Minute, "tenant")
	got, gotAp, gotOv, ok := eachSpeedRowAGroup(v, q, rows)
	if !ok {
		t.Fatal("rows in order were refused")
	}
	want, wantAp, wantOv := mergeGroups(v, q, &mergeInput{speedRows: rows, straddleT: -1})
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotAp, wantAp) || !reflect.DeepEqual(gotOv, wantOv) {
		t.Fatalf("shortcut and groups differ:\n got %+v %v %v\nwant %+v %v %v", got[:3], gotAp, gotOv, want[:3], wantAp, wantOv)
	}
	if !slices.ContainsFunc(wantOv, func(b bool) bool { return b }) || !slices.ContainsFunc(wantAp, func(b bool) bool { return b }) {
		t.Fatalf("the rows exercise neither overflow nor estimates: %v %v", wantOv, wantAp)
	}
	repeated := append(slices.Clone(rows[:5]), rows[4:]...)
	if _, _, _, ok := eachSpeedRowAGroup(v, q, repeated); ok {
		t.Error("a repeated row was taken as its own group")
	}
	swapped := slices.Clone(rows)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	if _, _, _, ok := eachSpeedRowAGroup(v, q, swapped); ok {
		t.Error("rows out of order were taken as their own groups")
	}
	// merge takes the groups for those: a repeated row adds up.
	all, _, _ := merge(v, q, &mergeInput{speedRows: repeated, straddleT: -1})
	if len(all) != len(rows) || all[4].vals[0].Int != 2*rows[4].Values[0].Int {
		t.Errorf("repeated row: %d rows, count %d; want %d rows, count %d", len(all), all[4].vals[0].Int, len(rows), 2*rows[4].Values[0].Int)
	}
}
