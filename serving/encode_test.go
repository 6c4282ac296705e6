package serving

import (
	"encoding/json"
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
