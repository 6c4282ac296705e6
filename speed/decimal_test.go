package speed

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// Decimal sums, min and max in the speed layer: a decimal(18,2) value is
// its scaled int64 (cents), so a sum is an int64 sum under the overflow
// rule of schemas.IntSum (HINCRBY under pcall in the script), and min/max
// compare exactly — also above 2^53 cents, where doubles tie. Amounts
// arrive as numbers, strings and exponent forms of one value. Stored text
// is the scaled integer; ReadCells and Reader.Query answer scaled ints.
func TestDecimalApply(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	d182, err := schemas.DecimalType(18, 2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.NewSchema("money", "money", "ts", "", []schemas.Field{
		{Name: "ts", Type: schemas.Timestamp}, {Name: "tenant", Type: schemas.String}, {Name: "amount", Type: d182, Optional: true}})
	if err != nil {
		t.Fatal(err)
	}
	m := func(name string, agg schemas.Agg, field string) schemas.Metric {
		return schemas.Metric{Name: name, Agg: agg, Field: field}
	}
	v := layoutView(viewName("decimal"), s, []string{"tenant"}, m("n", schemas.Count, ""),
		m("rev", schemas.Sum, "amount"), m("lo", schemas.Min, "amount"), m("hi", schemas.Max, "amount"))
	cleanupView(t, rdb, v)
	sh := Shards(v)[0]
	rdb.HSet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0), 0)
	b := time.Now().UTC().Truncate(2 * time.Minute).Add(-10 * time.Minute) // a 2-minute step starts at b
	e := func(tenant, amount string) []byte {
		return ev(b, fmt.Sprintf(`"tenant":%q,"amount":%s`, tenant, amount))
	}
	const top = "9999999999999999.99" // the largest decimal(18,2): 10^18 − 1 cents
	many := func(tenant string, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = e(tenant, top)
		}
		return out
	}
	flushes := [][][]byte{
		append([][]byte{e("forms", "12.5"), e("forms", `"12.50"`), e("forms", "1.25e1"), e("forms", `"-0.01"`), e("forms", "-1E-2"),
			e("big", `"9999999999999999.98"`), e("big", "-9999999999999999.98"), e("nulls", "null")},
			append(many("split", 5), many("inone", 10)...)...), // inone: the flush's own sum overflows
		// split: HINCRBY past int64; big: min and max one cent past the
		// stored ones, where doubles tie (a compare in doubles keeps the old)
		append(many("split", 5), e("big", top), e("big", "-"+top), e("big", "0.01")),
		{e("split", "0.01"), e("inone", "0.01"), // overflowed stays overflowed
			ev(b.Add(time.Minute), `"tenant":"big","amount":`+top)},
	}
	var from, ovf int64
	for _, f := range flushes {
		ovf += flushRows(t, rdb, v, sh, 0, from, time.Now(), f...).overflowed
		from += int64(len(f))
	}
	got := rdb.HGetAll(ctx, sh.BucketKey(b.UnixMicro())).Val()
	for _, tt := range []struct{ field, want string }{
		{"forms:n", "5"}, {"forms:rev", "3750"}, {"forms:rev:n", "-2"}, {"forms:lo", "-1"}, {"forms:hi", "1250"},
		{"big:rev", "1999999999999999998"}, {"big:rev:n", "-1999999999999999997"},
		{"big:lo", "-999999999999999999"}, {"big:hi", "999999999999999999"},
		{"split:n", "11"}, {"split:rev", Overflowed}, {"split:hi", "999999999999999999"}, {"split:lo", "1"},
		{"inone:n", "11"}, {"inone:rev", Overflowed},
		{"nulls:n", "1"}, {"nulls:rev", ""}, {"nulls:lo", ""},
	} {
		if got[tt.field] != tt.want {
			t.Errorf("%s = %q, want %q", tt.field, got[tt.field], tt.want)
		}
	}
	if ovf != 2 {
		t.Errorf("overflowed sums reported: %d, want 2 (split, inone)", ovf)
	}

	cells, err := ReadCells(ctx, rdb, v, b, b.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	text := func(x schemas.Value) string {
		if x.Null {
			return "null"
		}
		return schemas.FormatDecimal(x.Int, 2)
	}
	want := map[string]string{
		"big":   "n=5 rev=0.01 lo=-9999999999999999.99 hi=9999999999999999.99",
		"forms": "n=5 rev=37.48 lo=-0.01 hi=12.50",
		"inone": "n=11 rev=null lo=0.01 hi=9999999999999999.99 ovf",
		"nulls": "n=1 rev=null lo=null hi=null",
		"split": "n=11 rev=null lo=0.01 hi=9999999999999999.99 ovf",
	}
	for _, c := range cells {
		line := fmt.Sprintf("n=%d rev=%s lo=%s hi=%s", c.Values[0].Int, text(c.Values[1]), text(c.Values[2]), text(c.Values[3]))
		if c.Overflow != nil && c.Overflow[1] {
			line += " ovf"
		}
		if w := want[c.Dims[0].Str]; line != w {
			t.Errorf("cell %s: %s, want %s", c.Dims[0].Str, line, w)
		}
		delete(want, c.Dims[0].Str)
	}
	if len(want) != 0 {
		t.Errorf("cells missing: %v", want)
	}

	// The read path rolls cells up under the same rule: big's two
	// buckets add exactly past 2^53 cents; over every tenant the rollup is
	// overflowed (split's cell is), min/max exact.
	r := NewReader(ReaderConfig{Redis: rdb, CacheBytes: -1})
	for _, tc := range []struct {
		where string
		want  string
	}{
		{"big", "n=6 rev=10000000000000000.00 lo=-9999999999999999.99 hi=9999999999999999.99"},
		{"", "n=34 rev=null lo=-9999999999999999.99 hi=9999999999999999.99 ovf"},
	} {
		q := Query{View: v, From: b, To: b.Add(2 * time.Minute), Step: 2 * time.Minute}
		if tc.where != "" {
			q.Where = map[string]schemas.Value{"tenant": {Str: tc.where}}
		}
		res, err := r.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 1 {
			t.Fatalf("query %q: %d rows, want 1", tc.where, len(res.Rows))
		}
		row := res.Rows[0]
		line := fmt.Sprintf("n=%d rev=%s lo=%s hi=%s", row.Values[0].Int, text(row.Values[1]), text(row.Values[2]), text(row.Values[3]))
		if row.Overflow != nil && row.Overflow[1] {
			line += " ovf"
		}
		if line != tc.want {
			t.Errorf("query %q: %s, want %s", tc.where, line, tc.want)
		}
	}
}
