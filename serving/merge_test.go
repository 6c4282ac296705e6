package serving

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// users makes a sketch and its exact count for user ids [lo, hi).
func users(lo, hi int) ([]byte, int64) {
	var s hll.Sketch
	for i := lo; i < hi; i++ {
		s.Add(fmt.Sprintf("u%d", i))
	}
	return s.Marshal(), int64(hi - lo)
}

func unionEstimate(ranges ...[2]int) int64 {
	var s hll.Sketch
	for _, r := range ranges {
		for i := r[0]; i < r[1]; i++ {
			s.Add(fmt.Sprintf("u%d", i))
		}
	}
	return int64(s.Estimate())
}

const minute = int64(time.Minute / time.Microsecond)

// vrow is a batch row: count, revenue, biggest, smallest, buyers, qty.
func vrow(t int64, tenant, country string, n int64, rev, hi, lo float64, ulo, uhi int) views.Row {
	sk, exact := users(ulo, uhi)
	return views.Row{T: t, Dims: []schemas.Value{{Str: tenant}, {Str: country}},
		Values: []schemas.Value{{Int: n}, {Float: rev}, {Float: hi}, {Float: lo}, {Int: exact}, {Null: true}},
		HLL:    [][]byte{nil, nil, nil, nil, sk, nil}}
}

func mq(v *schemas.View, step time.Duration, groupBy ...string) *query {
	q := &query{view: v, step: step, groupBy: groupBy, where: map[string]schemas.Value{}, format: "json"}
	for i := range v.Metrics {
		q.metrics = append(q.metrics, i)
	}
	return q
}

func TestMerge(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	rows := []views.Row{
		vrow(0, "a", "de", 3, 30, 20, 1, 0, 100),
		vrow(0, "b", "de", 2, 5, 4, 1, 50, 150),
		vrow(minute, "a", "fr", 1, 7, 7, 7, 0, 10),
		vrow(6*minute, "a", "de", 4, 8, 3, 0.5, 200, 230),
	}
	type want struct {
		t      int64
		dims   string
		orders int64
		rev    float64
		hi, lo float64
		buyers int64
	}
	tests := []struct {
		name    string
		q       *query
		in      mergeInput
		want    []want
		approxB bool // buyers flagged approximate
	}{
		{"stored grain is exact", mq(v, time.Minute, "tenant", "country"), mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1}, []want{
			{0, "a,de", 3, 30, 20, 1, 100}, {0, "b,de", 2, 5, 4, 1, 100}, {minute, "a,fr", 1, 7, 7, 7, 10}, {6 * minute, "a,de", 4, 8, 3, 0.5, 30},
		}, false},
		{"rolled up to 5m totals", mq(v, 5*time.Minute), mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1}, []want{
			{0, "", 6, 42, 20, 1, unionEstimate([2]int{0, 150})}, {5 * minute, "", 4, 8, 3, 0.5, 30},
		}, true},
		{"rolled up by tenant", mq(v, time.Hour, "tenant"), mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1}, []want{
			{0, "a", 8, 45, 20, 0.5, unionEstimate([2]int{0, 100}, [2]int{200, 230})}, {0, "b", 2, 5, 4, 1, 100},
		}, true},
		{"speed only steps", mq(v, 5*time.Minute), mergeInput{straddleT: -1, speedRows: []speed.Row{
			{T: time.UnixMicro(10 * minute), Values: []schemas.Value{{Int: 5}, {Float: 9}, {Float: 6}, {Float: 0.25}, {Int: 42}, {Int: 3}}},
		}}, []want{{10 * minute, "", 5, 9, 6, 0.25, 42}}, true},
		{"step straddling the speed start unions sketches", mq(v, 10*time.Minute), mergeInput{
			viewRows:  [][]views.Row{rows},
			straddleT: 0,
			speedRows: []speed.Row{
				// PFCOUNT of the speed part alone (90): must not be added.
				{T: time.UnixMicro(0), Values: []schemas.Value{{Int: 2}, {Float: 1}, {Float: 50}, {Float: 0.1}, {Int: 90}, {Null: true}}},
			},
			sketches: []speed.SketchRow{{T: time.UnixMicro(0), HLL: [][]byte{nil, nil, nil, nil, func() []byte { b, _ := users(100, 190); return b }(), nil}}},
		}, []want{{0, "", 12, 51, 50, 0.1, unionEstimate([2]int{0, 190}, [2]int{200, 230})}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, approx, _ := merge(v, tt.q, &tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("%d rows, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				r := got[i]
				var dims string
				for k, d := range r.dims {
					if k > 0 {
						dims += ","
					}
					dims += d.Str
				}
				if r.t != w.t || dims != w.dims || r.vals[0].Int != w.orders || r.vals[1].Float != w.rev ||
					r.vals[2].Float != w.hi || r.vals[3].Float != w.lo || r.vals[4].Int != w.buyers {
					t.Errorf("row %d = t=%d dims=%s %+v, want %+v", i, r.t, dims, r.vals, w)
				}
			}
			if approx[4] != tt.approxB {
				t.Errorf("buyers approximate = %v, want %v", approx[4], tt.approxB)
			}
			for _, mi := range []int{0, 1, 2, 3, 5} {
				if approx[mi] {
					t.Errorf("metric %s flagged approximate", v.Metrics[mi].Name)
				}
			}
		})
	}
}

func TestMergeNullsAndOrder(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	q := mq(v, time.Minute, "tenant")
	in := mergeInput{straddleT: -1, viewRows: [][]views.Row{{
		{T: minute, Dims: []schemas.Value{{Str: "b"}, {Str: "x"}}, Values: []schemas.Value{{Int: 1}, {Null: true}, {Null: true}, {Null: true}, {Int: 0}, {Null: true}}, HLL: make([][]byte, 6)},
		{T: minute, Dims: []schemas.Value{{Null: true}, {Str: "x"}}, Values: []schemas.Value{{Int: 1}, {Float: 2}, {Float: 2}, {Float: 2}, {Int: 0}, {Int: 7}}, HLL: make([][]byte, 6)},
		{T: 0, Dims: []schemas.Value{{Str: "z"}, {Str: "x"}}, Values: []schemas.Value{{Int: 1}, {Float: 2}, {Float: 2}, {Float: 2}, {Int: 0}, {Int: -3}}, HLL: make([][]byte, 6)},
	}}}
	got, _, _ := merge(v, q, &in)
	if len(got) != 3 || got[0].t != 0 || got[1].t != minute || !got[1].dims[0].Null || got[2].dims[0].Str != "b" {
		t.Fatalf("order: %+v", got)
	}
	if !got[2].vals[1].Null || !got[2].vals[3].Null || got[2].vals[0].Int != 1 {
		t.Errorf("all-null sum/min must stay null, count 1: %+v", got[2].vals)
	}
	if got[1].vals[5].Int != 7 || got[0].vals[5].Int != -3 {
		t.Errorf("int sums: %+v %+v", got[1].vals, got[0].vals)
	}
}

func TestSpansAndGapRule(t *testing.T) {
	h := func(x int) time.Time { return time.Date(2026, 11, 27, x, 0, 0, 0, time.UTC) }
	j := joinSpans([]span{{h(5), h(6)}, {h(1), h(2)}, {h(2), h(3)}, {h(4), h(4)}})
	if len(j) != 2 || !j[0].from.Equal(h(1)) || !j[0].to.Equal(h(3)) || !j[1].from.Equal(h(5)) {
		t.Errorf("joinSpans = %v", j)
	}
	hs := hoursOf([]span{{h(1).Add(30 * time.Minute), h(3).Add(time.Minute)}})
	if len(hs) != 3 || !hs[0].Equal(h(1)) || !hs[2].Equal(h(3)) {
		t.Errorf("hoursOf = %v", hs)
	}

	v := testView("revenue", testSchema(t, "orders"))
	v.HotRetention = 2 * time.Hour
	now := h(10).Add(30*time.Minute + 20*time.Second)
	tests := []struct {
		name    string
		s0, to  time.Time
		healthy bool
		want    time.Time
	}{
		{"healthy, all hot", h(9), h(11), true, h(9)},
		{"healthy, older than hot retention", h(7), h(11), true, h(8).Add(31 * time.Minute)},
		{"healthy, all expired", h(5), h(6), true, h(6)},
		{"unhealthy: everything up to now", h(9), h(11), false, h(10).Add(31 * time.Minute)},
		{"unhealthy, past range", h(9), h(10), false, h(10)},
	}
	for _, tt := range tests {
		if got := lostSpeedEnd(v, tt.s0, tt.to, now, tt.healthy); !got.Equal(tt.want) {
			t.Errorf("%s: lostSpeedEnd = %s, want %s", tt.name, got, tt.want)
		}
	}
	// Whether the speed layer keeps the view whole is speed's to say
	// (speed.Reader.Whole, tested there).
}

// Sums roll up under the overflow rule (schemas/sum.go): cells' values add
// with IntSum/FloatSum.Add, an overflowed cell makes its rollup overflowed,
// and a speed row (a rollup of cells) adds its two parts, so a step made of
// both layers overflows exactly when its cells one by one would. An
// overflowed figure is null and its metric is flagged.
func TestMergeSumOverflow(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	const maxInt = math.MaxInt64
	cell := func(t int64, rev schemas.Value, qty schemas.Value, ovf ...int) views.Row {
		r := views.Row{T: t, Dims: []schemas.Value{{Str: "a"}, {Str: "de"}},
			Values: []schemas.Value{{Int: 1}, rev, rev, rev, {Int: 0}, qty}, HLL: make([][]byte, 6)}
		for _, mi := range ovf {
			if r.Overflow == nil {
				r.Overflow = make([]bool, 6)
			}
			r.Overflow[mi] = true
			r.Values[mi] = schemas.Value{Null: true}
		}
		return r
	}
	f, i := func(x float64) schemas.Value { return schemas.Value{Float: x} }, func(x int64) schemas.Value { return schemas.Value{Int: x} }
	speedRow := func(t int64, qty speed.SumParts, rev speed.SumParts) speed.Row {
		r := speed.Row{T: time.UnixMicro(t), Values: make([]schemas.Value, 6), Sums: make([]speed.SumParts, 6)}
		r.Sums[1], r.Sums[5] = rev, qty
		if x, ok := rev.Float.Value(); ok {
			r.Values[1] = schemas.Value{Float: x}
		} else {
			r.Values[1] = schemas.Value{Null: true}
		}
		if x, ok := qty.Int.Value(); ok {
			r.Values[5] = schemas.Value{Int: x}
		} else {
			r.Values[5] = schemas.Value{Null: true}
		}
		return r
	}
	tests := []struct {
		name     string
		in       mergeInput
		rev, qty string // "ovf" or the figure
	}{
		{"values of both signs add", mergeInput{straddleT: -1, viewRows: [][]views.Row{{cell(0, f(5), i(5)), cell(minute, f(-3), i(-8))}}}, "2", "-3"},
		{"int cells beyond int64 together", mergeInput{straddleT: -1, viewRows: [][]views.Row{{cell(0, f(1), i(maxInt-1)), cell(minute, f(1), i(5))}}}, "2", "ovf"},
		{"a negative cell brings an int rollup back: not overflowed", mergeInput{straddleT: -1, viewRows: [][]views.Row{{cell(0, f(1), i(maxInt)), cell(minute, f(1), i(-5))}}}, "2", fmt.Sprint(int64(maxInt - 5))},
		{"float cells beyond float64 together", mergeInput{straddleT: -1, viewRows: [][]views.Row{{cell(0, f(1.7e308), i(1)), cell(minute, f(1.7e308), i(1))}}}, "ovf", "2"},
		{"an overflowed cell is sticky", mergeInput{straddleT: -1, viewRows: [][]views.Row{{cell(0, f(1), i(1), 1, 5), cell(minute, f(-1), i(1))}}}, "ovf", "ovf"},
		{"a speed rollup adds its parts", mergeInput{straddleT: -1,
			viewRows:  [][]views.Row{{cell(0, f(1), i(5))}},
			speedRows: []speed.Row{speedRow(0, speed.SumParts{Int: schemas.IntSum{Pos: maxInt, Neg: -10}}, speed.SumParts{Float: schemas.FloatSum{Pos: 3, Neg: -1}})}}, "3", "ovf"},
		{"a speed rollup whose parts fit", mergeInput{straddleT: -1,
			viewRows:  [][]views.Row{{cell(0, f(1), i(-5))}},
			speedRows: []speed.Row{speedRow(0, speed.SumParts{Int: schemas.IntSum{Pos: maxInt, Neg: -10}}, speed.SumParts{Float: schemas.FloatSum{Pos: 3, Neg: -1}})}}, "3", fmt.Sprint(int64(maxInt - 15))},
		{"an overflowed speed rollup", mergeInput{straddleT: -1,
			speedRows: []speed.Row{speedRow(0, speed.SumParts{Int: schemas.IntSum{Overflow: true}}, speed.SumParts{Float: schemas.FloatSum{Pos: 3}})}}, "3", "ovf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, ovf := merge(v, mq(v, 5*time.Minute), &tt.in)
			if len(got) != 1 {
				t.Fatalf("%d rows, want 1: %+v", len(got), got)
			}
			show := func(mi int, float bool) string {
				x := got[0].vals[mi]
				switch {
				case ovf[mi] && x.Null:
					return "ovf"
				case ovf[mi] || x.Null:
					return fmt.Sprintf("%+v (overflow flag %v)", x, ovf[mi])
				case float:
					return fmt.Sprint(x.Float)
				}
				return fmt.Sprint(x.Int)
			}
			if rev, qty := show(1, true), show(5, false); rev != tt.rev || qty != tt.qty {
				t.Errorf("revenue %s qty %s, want %s %s", rev, qty, tt.rev, tt.qty)
			}
		})
	}
}

// An overflowed figure is a JSON null and its metric is listed under
// "overflow" (csv and ndjson: Lambdalake-Overflow), never a number JSON
// cannot carry.
func TestOverflowInAnswers(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	q := mq(v, time.Minute)
	ans := &answer{rows: []outRow{{t: 0, vals: []schemas.Value{{Int: 1}, {Null: true}, {Float: math.Inf(1)}, {Float: 1}, {Int: 1}, {Int: 4}}}},
		approx: make([]bool, 6), overflow: []bool{false, true, false, false, false, false}}
	_, body := encodeAnswer(q, ans)
	var a answerJSON
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if !slices.Equal(a.Overflow, []string{"revenue"}) || a.Rows[0]["revenue"] != nil || a.Rows[0]["biggest"] != nil {
		t.Errorf("json: overflow %v, row %v", a.Overflow, a.Rows[0])
	}
	for _, format := range []string{"csv", "ndjson"} {
		q.format = format
		h, _ := encodeAnswer(q, ans)
		if got := h.Get("Lambdalake-Overflow"); got != `["revenue"]` {
			t.Errorf("%s: Lambdalake-Overflow %q", format, got)
		}
	}
	q.format, q.metrics = "json", []int{0}
	if _, body := encodeAnswer(q, ans); !bytes.Contains(body, []byte(`"overflow":[]`)) {
		t.Errorf("a metric not asked for is not listed: %s", body)
	}
}
