package serving

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/schemas"
)

// The fast path of appendJSONString must write exactly what encoding/json
// writes.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "acme", "a b-c_d.e", `quo"te`, `back\slash`, "tab\there", "<script>", "a&b", "ünïcode", "\u2028", "\x7f", "nul\x00"} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

// Values print as JSON; decimals as exact JSON numbers with their scale's
// decimals, never through float64 (the CSV text is the same digits).
func TestAppendValue(t *testing.T) {
	ts := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC).UnixMicro()
	dec := func(p, s int) schemas.Type {
		typ, err := schemas.DecimalType(p, s)
		if err != nil {
			t.Fatal(err)
		}
		return typ
	}
	for _, c := range []struct {
		t    schemas.Type
		v    schemas.Value
		want string
	}{
		{dec(18, 2), schemas.Value{Int: 2520925248}, `25209252.48`},
		{dec(18, 2), schemas.Value{Int: 1250}, `12.50`},
		{dec(18, 2), schemas.Value{Int: -5}, `-0.05`},
		{dec(18, 2), schemas.Value{Int: 0}, `0.00`},
		{dec(18, 2), schemas.Value{Null: true}, `null`},
		// beyond 2^53: a float64 would print 92233720368547760
		{dec(18, 2), schemas.Value{Int: 9223372036854775807}, `92233720368547758.07`},
		{dec(18, 0), schemas.Value{Int: -9223372036854775808}, `-9223372036854775808`},
		{dec(9, 9), schemas.Value{Int: 1}, `0.000000001`},
		{schemas.String, schemas.Value{Str: "x"}, `"x"`},
		{schemas.String, schemas.Value{Null: true}, `null`},
		{schemas.Int64, schemas.Value{Int: -42}, `-42`},
		{schemas.Bool, schemas.Value{Int: 1}, `true`},
		{schemas.Float64, schemas.Value{Float: 0.30000000000000004}, `0.30000000000000004`},
		{schemas.Float64, schemas.Value{Float: 1e21}, `1e+21`},
		{schemas.Timestamp, schemas.Value{Int: ts}, `"2026-11-27T09:00:00Z"`},
	} {
		got := string(appendValue(nil, c.t, c.v))
		if got != c.want {
			t.Errorf("%v %+v: %s, want %s", c.t, c.v, got, c.want)
		}
		var x any
		if err := json.Unmarshal([]byte(got), &x); err != nil {
			t.Errorf("%s is not JSON: %v", got, err)
		}
		if text := textValue(c.t, c.v); c.t.Kind() == schemas.Decimal && text != strings.TrimPrefix(c.want, "null") {
			t.Errorf("%v %+v: CSV %q, want %q", c.t, c.v, text, c.want)
		}
	}
}

// CSV cells a spreadsheet would run as a formula are defused; numbers and
// other text are untouched.
func TestCSVFormulaEscape(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")", "+1": "'+1", "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)",
		"\t=1": "'\t=1", "\r=1": "'\r=1", "acme": "acme", "": "", "a=b": "a=b", "'=x": "'=x",
	} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
	f := newFixture(t, nil)
	f.speedOK()
	b := f.batch.boundary
	f.batch.rows = []views.Row{vrow(b.Add(-2*time.Minute).UnixMicro(), "=cmd|' /C calc'!A0", "-de", 3, -30, -20, -1, 0, 100)}
	code, body, _ := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T08:58:00Z&to=2026-11-27T08:59:00Z&group_by=tenant,country&metrics=orders,revenue&format=csv", readTok, nil)
	want := "t,tenant,country,orders,revenue\n2026-11-27T08:58:00Z,'=cmd|' /C calc'!A0,'-de,3,-30\n"
	if code != 200 || string(body) != want {
		t.Errorf("%d\n%s\nwant\n%s", code, body, want)
	}
}

// Rows a batch hour keeps printed are copied into an answer as they would
// be printed: JSON and NDJSON bodies are byte-equal with and without the
// printed runs (partial runs at both ends, printed rows then printed
// ones, null and escaped values, no rows at all).
func TestEncodedRunsAsPrinted(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	var rows []outRow
	for m := range 90 {
		r := outRow{t: int64(m) * minute, dims: []schemas.Value{{Str: fmt.Sprintf("t\"%d<", m%3)}, {Null: m%7 == 0, Str: "de"}},
			vals: make([]schemas.Value, len(v.Metrics))}
		for mi := range r.vals {
			r.vals[mi] = schemas.Value{Int: int64(m * (mi + 1)), Float: float64(m) / 3, Null: (m+mi)%11 == 0}
		}
		rows = append(rows, r)
	}
	q := mq(v, time.Minute, "tenant", "country")
	hourA, hourB := encodeRows(q, rows[:60]), encodeRows(q, rows[60:])
	tests := []struct {
		name    string
		rows    []outRow
		encoded []encodedRun
	}{
		{"no rows", nil, nil},
		{"whole hours", rows, []encodedRun{{hourA, 0, 60}, {hourB, 0, 30}}},
		{"partial first and last hour", rows[10:75], []encodedRun{{hourA, 10, 60}, {hourB, 0, 15}}},
		{"printed rows, then rows printed here", rows[10:90], []encodedRun{{hourA, 10, 60}}},
	}
	for _, tt := range tests {
		for _, format := range []string{"json", "ndjson"} {
			q.format = format
			flags := func() ([]bool, []bool) { return make([]bool, len(v.Metrics)), make([]bool, len(v.Metrics)) }
			plain := &answer{rows: tt.rows}
			plain.approx, plain.overflow = flags()
			copied := &answer{rows: tt.rows, encoded: tt.encoded}
			copied.approx, copied.overflow = flags()
			_, want := encodeAnswer(q, plain)
			_, got := encodeAnswer(q, copied)
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s:\n got %.300s\nwant %.300s", tt.name, format, got, want)
			}
		}
	}
	// A query showing fewer metrics prints its rows: the runs are not used.
	q.format, q.metrics = "json", []int{1, 0}
	none := make([]bool, len(v.Metrics))
	_, want := encodeAnswer(q, &answer{rows: rows, approx: none, overflow: none})
	_, got := encodeAnswer(q, &answer{rows: rows, approx: none, overflow: none, encoded: []encodedRun{{hourA, 0, 60}, {hourB, 0, 30}}})
	if !bytes.Equal(got, want) {
		t.Errorf("metrics=1,0:\n got %.300s\nwant %.300s", got, want)
	}
}
