package speed

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// layoutSchema has an optional numeric field, for cells whose every
// count/sum/min/max value is null.
func layoutSchema(t testing.TB, topic string) *schemas.Schema {
	t.Helper()
	s, err := schemas.NewSchema("layout", topic, "ts", "", []schemas.Field{
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String},
		{Name: "country", Type: schemas.String},
		{Name: "user", Type: schemas.String},
		{Name: "amount", Type: schemas.Float64},
		{Name: "qty", Type: schemas.Int64},
		{Name: "score", Type: schemas.Float64, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func layoutView(name string, s *schemas.Schema, dims []string, metrics ...schemas.Metric) *schemas.View {
	return &schemas.View{Name: name, Schema: s, Granularity: time.Minute, Dimensions: dims, Metrics: metrics,
		HotRetention: 2 * time.Hour, Lateness: 5 * time.Minute}
}

// ev is one event of the layout tests: JSON with the time given.
func ev(ts time.Time, rest string) []byte {
	return []byte(fmt.Sprintf(`{"ts":%q,%s}`, ts.Format(time.RFC3339Nano), rest))
}

// flushRows applies events as one flush of partition 0 of shard sh,
// covering offsets [from, from+len(events)).
func flushRows(t *testing.T, rdb redis.UniversalClient, v *schemas.View, sh Shard, part int, from int64, now time.Time, events ...[]byte) applied {
	t.Helper()
	p, err := newPlan(v)
	if err != nil {
		t.Fatal(err)
	}
	a := newAggregator(p)
	d := schemas.NewDecoder(v.Schema)
	var r schemas.Row
	for _, e := range events {
		if err := d.Decode(e, &r); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		a.add(&r, a.bucket(&r))
	}
	sp := span{field: offsetField(v.Schema.Topic, part), from: from, to: from + int64(len(events))}
	res, err := apply(context.Background(), rdb, p, sh, []*aggregator{a}, []span{sp}, now)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

// viewKeys lists every key of a view (all tags), boundary excepted.
func viewKeys(t *testing.T, rdb redis.UniversalClient, view string) []string {
	t.Helper()
	var keys []string
	for _, pattern := range []string{"ll:{" + view + "}:*", "ll:{" + view + ":*"} {
		err := scanAll(context.Background(), rdb, pattern, func(_ context.Context, ks []string) {
			keys = append(keys, ks...)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keys)
	return keys
}

// A flush writes exactly the keys, fields, values and expiries of the v2
// layout contract (SPEED.md), on a single Redis and on the cluster.
func TestFlushWritesTheContractLayout(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := rs.Client(t)
			ctx := context.Background()
			s := layoutSchema(t, "layout")
			m := func(name string, agg schemas.Agg, field string) schemas.Metric {
				return schemas.Metric{Name: name, Agg: agg, Field: field}
			}
			v := layoutView(viewName("layout"), s, []string{"tenant", "country"},
				m("n", schemas.Count, ""), m("amt", schemas.Sum, "amount"), m("amt_max", schemas.Max, "amount"),
				m("amt_min", schemas.Min, "amount"), m("q", schemas.Sum, "qty"), m("q_min", schemas.Min, "qty"),
				m("q_max", schemas.Max, "qty"), m("users", schemas.Uniq, "user"), m("s_sum", schemas.Sum, "score"))
			cleanupView(t, rdb, v)
			sh := Shards(v)[0]
			rdb.HSet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0), 0)

			H := time.Now().UTC().Truncate(time.Hour)
			b1, b0 := H.Add(time.Minute), H.Add(-time.Minute) // b0 in the hour before
			now := time.Now()
			flushRows(t, rdb, v, sh, 0, 0, now,
				ev(b1, `"tenant":"a","country":"de","user":"u1","amount":1.5,"qty":3,"score":2.5`),
				ev(b1.Add(time.Second), `"tenant":"a","country":"de","user":"u2","amount":-2.25,"qty":-4`),
				ev(b1, `"tenant":"b","country":"fr x","user":"u1","amount":10,"qty":7`),
				ev(b0, `"tenant":"a","country":"de","user":"u3","amount":0.5,"qty":1`))

			us := func(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }
			mk := "ll:{" + v.Name + "}:m:"
			want := map[string]map[string]string{
				mk + us(b1): {
					"a,de:n": "2", "a,de:amt": "1.5", "a,de:amt:n": "-2.25", "a,de:amt_max": "1.5", "a,de:amt_min": "-2.25",
					"a,de:q": "3", "a,de:q:n": "-4", "a,de:q_min": "-4", "a,de:q_max": "3", "a,de:s_sum": "2.5",
					"b,fr+x:n": "1", "b,fr+x:amt": "10", "b,fr+x:amt_max": "10", "b,fr+x:amt_min": "10",
					"b,fr+x:q": "7", "b,fr+x:q_min": "7", "b,fr+x:q_max": "7",
				},
				mk + us(b0): {
					"a,de:n": "1", "a,de:amt": "0.5", "a,de:amt_max": "0.5", "a,de:amt_min": "0.5",
					"a,de:q": "1", "a,de:q_min": "1", "a,de:q_max": "1",
				},
				"ll:{" + v.Name + "}:v:" + us(H):                 {us(b1): "1"},
				"ll:{" + v.Name + "}:v:" + us(H.Add(-time.Hour)): {us(b0): "1"},
				"ll:{" + v.Name + "}:offsets":                    {s.Topic + ":0": "4"},
			}
			uniq := map[string]int64{
				"ll:{" + v.Name + "}:u:" + us(b1) + ":a,de:users":   2,
				"ll:{" + v.Name + "}:u:" + us(b1) + ":b,fr+x:users": 1,
				"ll:{" + v.Name + "}:u:" + us(b0) + ":a,de:users":   1,
			}
			retention := v.HotRetention
			expiry := map[string]time.Time{
				mk + us(b1): b1.Add(time.Minute + retention), mk + us(b0): b0.Add(time.Minute + retention),
				"ll:{" + v.Name + "}:v:" + us(H):                    H.Add(time.Hour + retention),
				"ll:{" + v.Name + "}:v:" + us(H.Add(-time.Hour)):    H.Add(retention),
				"ll:{" + v.Name + "}:offsets":                       time.UnixMilli(now.UnixMilli()).Add(2 * retention),
				"ll:{" + v.Name + "}:u:" + us(b1) + ":a,de:users":   b1.Add(time.Minute + retention),
				"ll:{" + v.Name + "}:u:" + us(b1) + ":b,fr+x:users": b1.Add(time.Minute + retention),
				"ll:{" + v.Name + "}:u:" + us(b0) + ":a,de:users":   b0.Add(time.Minute + retention),
			}
			checkLayout := func(want map[string]map[string]string) {
				t.Helper()
				wantKeys := slices.Sorted(maps.Keys(expiry))
				if got := viewKeys(t, rdb, v.Name); !slices.Equal(got, wantKeys) {
					t.Errorf("keys:\n got %q\nwant %q", got, wantKeys)
				}
				for k, fields := range want {
					if got := rdb.HGetAll(ctx, k).Val(); !maps.Equal(got, fields) {
						t.Errorf("%s:\n got %v\nwant %v", k, got, fields)
					}
				}
				for k, n := range uniq {
					if got := rdb.PFCount(ctx, k).Val(); got != n {
						t.Errorf("PFCOUNT %s = %d, want %d", k, got, n)
					}
				}
				for k, e := range expiry {
					if got := rdb.PExpireTime(ctx, k).Val().Milliseconds(); got != e.UnixMilli() {
						t.Errorf("%s expires at %d ms, want %d (%s)", k, got, e.UnixMilli(), e)
					}
				}
			}
			checkLayout(want)
			if t.Failed() {
				return
			}

			// A second flush into b1 only: exact int64 above 2^53, the
			// positive part leaving int64 (the sum becomes "ovf", its
			// negative part goes), float parts added as doubles.
			now = now.Add(time.Second)
			res := flushRows(t, rdb, v, sh, 0, 4, now,
				ev(b1, `"tenant":"a","country":"de","user":"u1","amount":0.1,"qty":9223372036854775805`),
				ev(b1, `"tenant":"a","country":"de","user":"u4","amount":0.2,"qty":0`))
			if res.overflowed != 1 {
				t.Errorf("overflowed = %d, want 1 (a,de:q)", res.overflowed)
			}
			w := want[mk+us(b1)]
			w["a,de:n"] = "4"
			w["a,de:amt"] = rdb.HGet(ctx, mk+us(b1), "a,de:amt").Val() // checked as a double below
			w["a,de:q"] = Overflowed
			delete(w, "a,de:q:n")
			w["a,de:q_max"] = "9223372036854775805"
			want["ll:{"+v.Name+"}:v:"+us(H)][us(b1)] = "2"
			want["ll:{"+v.Name+"}:offsets"][s.Topic+":0"] = "6"
			uniq["ll:{"+v.Name+"}:u:"+us(b1)+":a,de:users"] = 3
			expiry["ll:{"+v.Name+"}:offsets"] = time.UnixMilli(now.UnixMilli()).Add(2 * retention)
			checkLayout(want)
			x, y := 0.1, 0.2 // variables: Go folds constants exactly
			if got, _ := strconv.ParseFloat(w["a,de:amt"], 64); got != 1.5+(x+y) {
				t.Errorf("a,de:amt = %q, want the double 1.5 + (0.1+0.2) = %v", w["a,de:amt"], 1.5+(x+y))
			}
		})
	}
}

// A cell whose every count/sum/min/max value is null still exists: the
// bucket hash lists it as "<dims>:_" = "0", unless it has another field.
func TestEmptyCellField(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	s := layoutSchema(t, "layout")
	v := layoutView(viewName("empty"), s, []string{"tenant"},
		schemas.Metric{Name: "s_max", Agg: schemas.Max, Field: "score"},
		schemas.Metric{Name: "users", Agg: schemas.Uniq, Field: "user"})
	cleanupView(t, rdb, v)
	sh := Shards(v)[0]
	rdb.HSet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0), 0)
	b := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	key := sh.BucketKey(b.UnixMicro())
	now := time.Now()
	flushRows(t, rdb, v, sh, 0, 0, now,
		ev(b, `"tenant":"a","country":"x","user":"u1","amount":1,"qty":1,"score":2.5`),
		ev(b, `"tenant":"b","country":"x","user":"u1","amount":1,"qty":1`))
	// Later: a null-only event for a (which has s_max: no "_"), a value
	// for b (whose "_" stays: it was true when written), a new null-only c.
	flushRows(t, rdb, v, sh, 0, 2, now,
		ev(b, `"tenant":"a","country":"x","user":"u2","amount":1,"qty":1`),
		ev(b, `"tenant":"b","country":"x","user":"u2","amount":1,"qty":1,"score":7`),
		ev(b, `"tenant":"c","country":"x","user":"u3","amount":1,"qty":1`))
	want := map[string]string{"a:s_max": "2.5", "b:_": "0", "b:s_max": "7", "c:_": "0"}
	if got := rdb.HGetAll(ctx, key).Val(); !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", key, got, want)
	}
	if n := rdb.PFCount(ctx, sh.UniqKey(b.UnixMicro(), "c", "users")).Val(); n != 1 {
		t.Errorf("users of c = %d, want 1", n)
	}
}

// The numbers the v1 script got wrong: int64 min/max beyond 2^53 compare
// exactly, int64 sums stay exact above 2^53, a float64 sum keeps 9.8e-301
// (HINCRBYFLOAT rounds it to 0), and sums leaving their type's range become
// "ovf" in a later flush or within one, positive or negative part, and stay
// so. Every flush applies (the offsets move).
func TestApplyNumbers(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	s := layoutSchema(t, "layout")
	m := func(name string, agg schemas.Agg, field string) schemas.Metric {
		return schemas.Metric{Name: name, Agg: agg, Field: field}
	}
	v := layoutView(viewName("numbers"), s, []string{"tenant"}, m("n", schemas.Count, ""),
		m("q", schemas.Sum, "qty"), m("q_min", schemas.Min, "qty"), m("q_max", schemas.Max, "qty"),
		m("amt", schemas.Sum, "amount"), m("amt_min", schemas.Min, "amount"))
	cleanupView(t, rdb, v)
	sh := Shards(v)[0]
	rdb.HSet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0), 0)
	b := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	key := sh.BucketKey(b.UnixMicro())
	e := func(tenant string, qty int64, amount float64) []byte {
		return ev(b, fmt.Sprintf(`"tenant":%q,"country":"x","user":"u","amount":%s,"qty":%d`, tenant, strconv.FormatFloat(amount, 'g', -1, 64), qty))
	}
	const p53 = int64(1) << 53
	flushes := [][][]byte{
		{e("max2", math.MaxInt64, 1), e("big", p53, 1), e("minmax", p53+1, 1), e("neg", -1, 1), e("tiny", 0, 9.8e-301),
			e("fbig", 0, 1e308), e("one", math.MaxInt64, 1), e("one", math.MaxInt64, 1), e("fone", 0, 1e308), e("fone", 0, 1e308),
			e("negovf", math.MinInt64, -1e308)},
		{e("max2", math.MaxInt64, 1), e("big", p53+1, 1), e("minmax", p53, 1), e("neg", math.MinInt64+1, 1), e("tiny", 0, 0),
			e("fbig", 0, 1e308), e("negovf", -1, -1e308)},
		{e("max2", 1, 1), e("one", 1, 1), e("negovf", 5, 5)}, // overflowed stays overflowed
	}
	var from int64
	var ovf int64
	for i, f := range flushes {
		ovf += flushRows(t, rdb, v, sh, 0, from, time.Now(), f...).overflowed
		from += int64(len(f))
		if got := rdb.HGet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0)).Val(); got != strconv.FormatInt(from, 10) {
			t.Fatalf("after flush %d: stored offset %s, want %d", i+1, got, from)
		}
	}
	got := rdb.HGetAll(ctx, key).Val()
	tests := []struct{ field, want string }{
		{"max2:n", "3"}, {"max2:q", Overflowed}, {"max2:q_max", "9223372036854775807"},
		{"big:q", strconv.FormatInt(2*p53+1, 10)}, {"big:q_max", strconv.FormatInt(p53+1, 10)}, {"big:q_min", strconv.FormatInt(p53, 10)},
		{"minmax:q_min", strconv.FormatInt(p53, 10)}, {"minmax:q_max", strconv.FormatInt(p53+1, 10)},
		{"neg:q", "0"}, {"neg:q:n", strconv.FormatInt(math.MinInt64, 10)}, {"neg:q_min", strconv.FormatInt(math.MinInt64+1, 10)},
		{"one:n", "3"}, {"one:q", Overflowed}, {"fone:amt", Overflowed},
		{"fbig:amt", Overflowed}, {"fbig:amt_min", "1e+308"},
		{"negovf:q", Overflowed}, {"negovf:q:n", ""}, {"negovf:amt", Overflowed}, {"negovf:amt:n", ""}, {"negovf:n", "3"},
	}
	for _, tt := range tests {
		if got[tt.field] != tt.want {
			t.Errorf("%s = %q, want %q", tt.field, got[tt.field], tt.want)
		}
	}
	if x, err := strconv.ParseFloat(got["tiny:amt"], 64); err != nil || x != 9.8e-301 {
		t.Errorf("tiny:amt = %q, want 9.8e-301 exactly", got["tiny:amt"])
	}
	// max2, one, fone, fbig, negovf (q and amt): each became "ovf" once.
	if ovf != 6 {
		t.Errorf("overflowed sums reported: %d, want 6", ovf)
	}
	// ReadCells answers an overflowed sum as null, flagged.
	cells, err := ReadCells(ctx, rdb, v, b, b.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		if c.Dims[0].Str == "max2" && (c.Overflow == nil || !c.Overflow[1] || !c.Values[1].Null) {
			t.Errorf("max2: q read as %+v, overflow %v", c.Values[1], c.Overflow)
		}
	}
}
