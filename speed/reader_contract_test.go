package speed

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// shopView is the view of testdata/reader/contract.txt: two shards, two
// dimensions (tenant may be null), every aggregation.
func shopView(t testing.TB, shards int) *schemas.View {
	t.Helper()
	s, err := schemas.NewSchema("shop", "shop", "ts", "", []schemas.Field{
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String, Optional: true},
		{Name: "country", Type: schemas.String},
		{Name: "user", Type: schemas.String, Optional: true},
		{Name: "amount", Type: schemas.Float64, Optional: true},
		{Name: "qty", Type: schemas.Int64, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &schemas.View{Name: viewName("shop"), Schema: s, Granularity: time.Minute, Dimensions: []string{"tenant", "country"},
		Metrics: []schemas.Metric{
			{Name: "orders", Agg: schemas.Count},
			{Name: "revenue", Agg: schemas.Sum, Field: "amount"},
			{Name: "biggest", Agg: schemas.Max, Field: "amount"},
			{Name: "smallest", Agg: schemas.Min, Field: "amount"},
			{Name: "buyers", Agg: schemas.Uniq, Field: "user"},
			{Name: "qty", Agg: schemas.Sum, Field: "qty"},
			{Name: "qty_max", Agg: schemas.Max, Field: "qty"},
		},
		HotRetention: 2 * time.Hour, Lateness: 5 * time.Minute, Shards: shards}
}

// rowString prints a row as the table below writes them: minutes after
// base, the group_by values ("-" for none, "null"), then every metric
// ("ovf" for an overflowed sum).
func rowString(v *schemas.View, base time.Time, r Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+d ", int(r.T.Sub(base)/time.Minute))
	if len(r.Dims) == 0 {
		b.WriteString("-")
	}
	for k, d := range r.Dims {
		if k > 0 {
			b.WriteString(",")
		}
		if d.Null {
			b.WriteString("null")
		} else {
			b.WriteString(d.Str)
		}
	}
	for mi, m := range v.Metrics {
		val := r.Values[mi]
		var s string
		switch {
		case r.Overflow != nil && r.Overflow[mi]:
			s = "ovf"
			if !val.Null {
				s += "(not null!)"
			}
		case val.Null:
			s = "null"
		case v.MetricType(m) == schemas.Float64:
			s = strconv.FormatFloat(val.Float, 'g', -1, 64)
		default:
			s = strconv.FormatInt(val.Int, 10)
		}
		fmt.Fprintf(&b, " %s=%s", m.Name, s)
	}
	return b.String()
}

// The read path against the key layout contract: cells of one bucket in
// two shards merged part by part, rollups over steps and group_bys that add
// cells' values under the overflow rule, where filters (escaped and null
// values), all-null cells, an expired bucket that is neither answered nor
// listed, and uniq as the union of the cells' sketches. Each query runs
// three times: on a fresh Reader, again on it (from its cache), and on a
// Reader that keeps nothing.
func TestReadPathAgainstContract(t *testing.T) {
	testenv.Integration(t)
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	now := time.Now().UTC()
	base := now.Truncate(time.Hour).Add(-time.Hour)
	v := shopView(t, 2)
	w := newContractWriter(t, rdb, v, base, now)
	w.flush(w.load("testdata/reader/contract.txt"))

	const maxInt = "9223372036854775807"
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	off := func(step time.Duration) int { return int(schemas.FloorTime(base, step).Sub(base) / time.Minute) }
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"the stored grain", Query{From: at(0), To: at(5), GroupBy: []string{"tenant", "country"}}, []string{
			"+0 a,de orders=3 revenue=14 biggest=10.5 smallest=-0.5 buyers=3 qty=8 qty_max=9007199254740993",
			"+0 b,fr orders=1 revenue=2 biggest=2 smallest=2 buyers=1 qty=9223372036854775797 qty_max=" + maxInt,
			"+1 b,de orders=1 revenue=ovf biggest=1e+308 smallest=1e+308 buyers=1 qty=1 qty_max=1",
			"+1 b,fr orders=1 revenue=1 biggest=1 smallest=1 buyers=2 qty=5 qty_max=5",
			"+2 null,de orders=1 revenue=7 biggest=7 smallest=7 buyers=0 qty=2 qty_max=2",
			"+2 a,fr orders=2 revenue=6 biggest=3 smallest=3 buyers=2 qty=ovf qty_max=" + maxInt,
			"+3 a b,de orders=1 revenue=1 biggest=1 smallest=1 buyers=1 qty=1 qty_max=1",
			"+4 c,de orders=0 revenue=null biggest=null smallest=null buyers=0 qty=null qty_max=null",
		}},
		{"5m totals: overflow is sticky in a rollup", Query{From: at(0), To: at(5), Step: 5 * time.Minute}, []string{
			"+0 - orders=10 revenue=ovf biggest=1e+308 smallest=-0.5 buyers=8 qty=ovf qty_max=" + maxInt,
		}},
		{"by tenant where country: cells' values add", Query{From: at(0), To: at(5), Step: 5 * time.Minute, GroupBy: []string{"tenant"},
			Where: map[string]schemas.Value{"country": {Str: "fr"}}}, []string{
			"+0 a orders=2 revenue=6 biggest=3 smallest=3 buyers=2 qty=ovf qty_max=" + maxInt,
			"+0 b orders=2 revenue=3 biggest=2 smallest=1 buyers=2 qty=9223372036854775802 qty_max=" + maxInt,
		}},
		{"where an escaped value", Query{From: at(0), To: at(5), Step: 5 * time.Minute, GroupBy: []string{"country"},
			Where: map[string]schemas.Value{"tenant": {Str: "a b"}}}, []string{
			"+0 de orders=1 revenue=1 biggest=1 smallest=1 buyers=1 qty=1 qty_max=1",
		}},
		{"where null", Query{From: at(0), To: at(5), Where: map[string]schemas.Value{"tenant": {Null: true}}}, []string{
			"+2 - orders=1 revenue=7 biggest=7 smallest=7 buyers=0 qty=2 qty_max=2",
		}},
		{"a range inside a step", Query{From: at(1), To: at(3), Step: 5 * time.Minute, GroupBy: []string{"country"}}, []string{
			"+0 de orders=2 revenue=ovf biggest=1e+308 smallest=7 buyers=1 qty=3 qty_max=2",
			"+0 fr orders=3 revenue=7 biggest=3 smallest=1 buyers=4 qty=ovf qty_max=" + maxInt,
		}},
		{"2h steps: hours rolled up", Query{From: base.Add(-time.Hour), To: base.Add(time.Hour), Step: 2 * time.Hour}, []string{
			fmt.Sprintf("%+d - orders=10 revenue=ovf biggest=1e+308 smallest=-0.5 buyers=8 qty=ovf qty_max=%s", off(2*time.Hour), maxInt),
		}},
		{"90m steps by tenant: buckets rolled up", Query{From: at(0), To: at(5), Step: 90 * time.Minute, GroupBy: []string{"tenant"}}, []string{
			fmt.Sprintf("%+d null orders=1 revenue=7 biggest=7 smallest=7 buyers=0 qty=2 qty_max=2", off(90*time.Minute)),
			fmt.Sprintf("%+d a orders=5 revenue=20 biggest=10.5 smallest=-0.5 buyers=5 qty=ovf qty_max=%s", off(90*time.Minute), maxInt),
			fmt.Sprintf("%+d a b orders=1 revenue=1 biggest=1 smallest=1 buyers=1 qty=1 qty_max=1", off(90*time.Minute)),
			fmt.Sprintf("%+d b orders=3 revenue=ovf biggest=1e+308 smallest=1 buyers=3 qty=9223372036854775803 qty_max=%s", off(90*time.Minute), maxInt),
			fmt.Sprintf("%+d c orders=0 revenue=null biggest=null smallest=null buyers=0 qty=null qty_max=null", off(90*time.Minute)),
		}},
		{"from before the expired bucket", Query{From: now.Add(-3 * time.Hour), To: at(1), Step: time.Minute}, []string{
			"+0 - orders=4 revenue=16 biggest=10.5 smallest=-0.5 buyers=4 qty=9223372036854775805 qty_max=" + maxInt,
		}},
	}
	cached := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }})
	uncached := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }, CacheBytes: -1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.View = v
			for i, r := range []*Reader{NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }}), cached, cached, uncached} {
				res, err := r.Query(ctx, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, row := range res.Rows {
					got = append(got, rowString(v, base, row))
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("reader %d: rows\n%s\nwant\n%s", i, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
			}
		})
	}

	// Buckets: what Redis holds in range, the expired one left out.
	res, err := cached.Query(ctx, Query{View: v, From: now.Add(-3 * time.Hour), To: now})
	if err != nil {
		t.Fatal(err)
	}
	var buckets []int
	for _, b := range res.Buckets {
		buckets = append(buckets, int(b.Sub(base)/time.Minute))
	}
	if !slices.Equal(buckets, []int{0, 1, 2, 3, 4}) {
		t.Errorf("buckets %v (minutes after base), want 0..4 without the expired one", buckets)
	}
	first, end, ok, err := cached.HotRange(ctx, v)
	if err != nil || !ok || !first.Equal(at(0)) || !end.Equal(at(5)) {
		t.Errorf("HotRange = %s, %s, %v, %v; want %s, %s", first, end, ok, err, at(0), at(5))
	}

	// uniq is PFCOUNT over the same keys, computed in Go.
	keys := w.uniqKeys("buyers", "0 a,de", "0 b,fr", "1 b,fr", "1 b,de", "2 a,fr", "3 a+b,de")
	want, err := rdb.PFCount(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	res, err = cached.Query(ctx, Query{View: v, From: at(0), To: at(5), Step: 5 * time.Minute})
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("totals: %v, %v", res, err)
	}
	if got := res.Rows[0].Values[4].Int; got != want {
		t.Errorf("buyers = %d, PFCOUNT over the same keys = %d", got, want)
	}
	if s := res.Rows[0].Sums; s == nil || !s[1].Float.Overflow || !s[5].Int.Overflow || s[0] != (SumParts{}) {
		t.Errorf("totals' sum parts = %+v, want revenue and qty overflowed", s)
	}
}
