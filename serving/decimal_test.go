package serving

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// decimalFixture serves a view "money" whose amount is a decimal(18,2):
// batch cells before B (09:00) and speed rows from it, with figures far
// beyond 2^53 cents, where a double would lose the last digits.
func decimalFixture(t *testing.T) *fixture {
	d182, err := schemas.DecimalType(18, 2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.NewSchema("money", "money", "ts", "order_id", []schemas.Field{
		{Name: "order_id", Type: schemas.String}, {Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String}, {Name: "amount", Type: d182}})
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.View{Name: "money", Schema: s, Granularity: time.Minute, Dimensions: []string{"tenant"},
		Metrics: []schemas.Metric{{Name: "orders", Agg: schemas.Count}, {Name: "revenue", Agg: schemas.Sum, Field: "amount"},
			{Name: "biggest", Agg: schemas.Max, Field: "amount"}, {Name: "smallest", Agg: schemas.Min, Field: "amount"}},
		HotRetention: 48 * time.Hour, Lateness: 5 * time.Minute}
	f := newFixture(t, func(c *APIConfig) { c.Views, c.Schemas = []*schemas.View{v}, []*schemas.Schema{s} })
	f.speedOK()
	b := f.batch.boundary
	i := func(x int64) schemas.Value { return schemas.Value{Int: x} }
	f.batch.rows = []views.Row{
		{T: b.Add(-2 * time.Minute).UnixMicro(), Dims: []schemas.Value{{Str: "a"}}, Values: []schemas.Value{i(3), i(1999999999999999997), i(999999999999999999), i(-5)}},
		{T: b.Add(-time.Minute).UnixMicro(), Dims: []schemas.Value{{Str: "b"}}, Values: []schemas.Value{i(1), i(9000000000000000000), i(10), i(1)}},
	}
	sums := func(pos, neg int64) []speed.SumParts {
		return []speed.SumParts{{}, {Int: schemas.IntSum{Pos: pos, Neg: neg}}, {}, {}}
	}
	f.speed.rows = []speed.Row{
		{T: b, Dims: []schemas.Value{{Str: "a"}}, Values: []schemas.Value{i(2), i(999999999999999998), i(999999999999999998), i(7)}, Sums: sums(999999999999999999, -1)},
		{T: b, Dims: []schemas.Value{{Str: "b"}}, Values: []schemas.Value{i(1), i(300000000000000000), i(3), i(3)}, Sums: sums(300000000000000000, 0)},
	}
	return f
}

// Batch and speed decimal figures merge exactly (sums part by part under
// the overflow rule, min/max as integers) and print with exactly the
// scale's decimals in every format: JSON and NDJSON numbers, CSV text. The
// step 08:00-10:00 straddles B (09:00): each row is a batch cell plus a
// speed rollup; tenant b's sum passes int64 only once both are added.
func TestDecimalAnswers(t *testing.T) {
	f := decimalFixture(t)
	v := f.api.cfg.Views[0]
	q := mq(v, 2*time.Hour, "tenant")
	b := f.batch.boundary
	in := mergeInput{straddleT: b.Add(-time.Hour).UnixMicro(), viewRows: [][]views.Row{f.batch.rows}}
	for _, r := range f.speed.rows {
		r.T = b.Add(-time.Hour) // the speed reader rolls up to the step
		in.speedRows = append(in.speedRows, r)
	}
	rows, approx, ovf := merge(v, q, &in)
	ans := &answer{boundary: b, rows: rows, approx: approx, overflow: ovf}
	rowA := `{"t":"2026-11-27T08:00:00Z","tenant":"a","orders":5,"revenue":29999999999999999.95,"biggest":9999999999999999.99,"smallest":-0.05}`
	rowB := `{"t":"2026-11-27T08:00:00Z","tenant":"b","orders":2,"revenue":null,"biggest":0.10,"smallest":0.01}`
	tests := []struct {
		format, want, overflow string
	}{
		{"json", `"overflow":["revenue"],"rows":[` + rowA + "," + rowB + "]}\n", ""},
		{"ndjson", rowA + "\n" + rowB + "\n", `["revenue"]`},
		{"csv", "t,tenant,orders,revenue,biggest,smallest\n2026-11-27T08:00:00Z,a,5,29999999999999999.95,9999999999999999.99,-0.05\n" +
			"2026-11-27T08:00:00Z,b,2,,0.10,0.01\n", `["revenue"]`},
	}
	for _, tc := range tests {
		q.format = tc.format
		h, body := encodeAnswer(q, ans)
		if tc.format == "json" {
			if !strings.HasSuffix(string(body), tc.want) {
				t.Errorf("json answer:\n%s\nwant it to end with\n%s", body, tc.want)
			}
			var a map[string]any
			if err := json.Unmarshal(body, &a); err != nil {
				t.Errorf("json answer is not JSON: %v", err)
			}
			continue
		}
		if string(body) != tc.want {
			t.Errorf("%s answer:\n%s\nwant\n%s", tc.format, body, tc.want)
		}
		if got := h.Get("Lambdalake-Overflow"); got != tc.overflow {
			t.Errorf("%s: Lambdalake-Overflow %q, want %q", tc.format, got, tc.overflow)
		}
	}
}

// Through the HTTP API: batch minutes and speed minutes of a decimal view
// print exactly, and GET /v1/views says which metrics are exact decimals.
func TestDecimalOverHTTP(t *testing.T) {
	f := decimalFixture(t)
	code, body, _ := f.do(t, "GET", "/v1/views/money/query?from=2026-11-27T08:58:00Z&to=2026-11-27T09:01:00Z&group_by=tenant&format=ndjson", readTok, nil)
	want := `{"t":"2026-11-27T08:58:00Z","tenant":"a","orders":3,"revenue":19999999999999999.97,"biggest":9999999999999999.99,"smallest":-0.05}
{"t":"2026-11-27T08:59:00Z","tenant":"b","orders":1,"revenue":90000000000000000.00,"biggest":0.10,"smallest":0.01}
{"t":"2026-11-27T09:00:00Z","tenant":"a","orders":2,"revenue":9999999999999999.98,"biggest":9999999999999999.98,"smallest":0.07}
{"t":"2026-11-27T09:00:00Z","tenant":"b","orders":1,"revenue":3000000000000000.00,"biggest":0.03,"smallest":0.03}
`
	if code != 200 || string(body) != want {
		t.Errorf("%d\n%s\nwant\n%s", code, body, want)
	}
	code, body, _ = f.do(t, "GET", "/v1/views", readTok, nil)
	if code != 200 || !strings.Contains(string(body), `{"name":"revenue","agg":"sum","field":"amount","type":"decimal(18,2)"}`) ||
		!strings.Contains(string(body), `{"name":"orders","agg":"count","type":"int64"}`) {
		t.Errorf("views: %d %s", code, body)
	}
}
