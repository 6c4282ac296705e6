package serving

import (
	"fmt"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// benchRows is one hour of a view at 1m grain with 200 dimension tuples
// per minute, each with a small uniq sketch: what a batch hour holds.
func benchRows(b *testing.B) []views.Row {
	var rows []views.Row
	for m := range 60 {
		for d := range 200 {
			var s hll.Sketch
			for u := range 4 {
				s.Add(fmt.Sprintf("u%d", (m*7+d*13+u)%5000))
			}
			rows = append(rows, views.Row{T: int64(m) * minute,
				Dims:   []schemas.Value{{Str: fmt.Sprintf("t%d", d%10)}, {Str: fmt.Sprintf("c%d", d/10)}},
				Values: []schemas.Value{{Int: 4}, {Float: 12.5}, {Float: 9}, {Float: 1}, {Int: 4}, {Int: 3}},
				HLL:    [][]byte{nil, nil, nil, nil, s.Marshal(), nil}})
		}
	}
	return rows
}

// BenchmarkMergeHourTotals rolls an hour up to 1m totals: the work of one
// batch hour of the dashboard query (uniq through sketch unions).
func BenchmarkMergeHourTotals(b *testing.B) {
	v := testView("revenue", testSchema(b, "orders"))
	rows := benchRows(b)
	q := mq(v, time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		out, _, _ := merge(v, q, &mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1})
		if len(out) != 60 {
			b.Fatal(len(out))
		}
	}
}

// BenchmarkEncodeDayJSON encodes a day at 1m (1440 rows, every metric).
func BenchmarkEncodeDayJSON(b *testing.B) {
	v := testView("revenue", testSchema(b, "orders"))
	q := mq(v, time.Minute)
	q.from, q.to = time.Unix(0, 0).UTC(), time.Unix(86400, 0).UTC()
	ans := &answer{approx: make([]bool, len(v.Metrics)), batch: &span{q.from, q.to}}
	for m := range 1440 {
		ans.rows = append(ans.rows, outRow{t: int64(m) * minute,
			vals: []schemas.Value{{Int: 694}, {Float: 346789.12000000005}, {Float: 999.87}, {Float: 0.01}, {Int: 680}, {Int: 1234}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		_, body := encodeAnswer(q, ans)
		b.SetBytes(int64(len(body)))
	}
}
