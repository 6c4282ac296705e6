package speed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// Sketches must group like Query and give, per group, a sketch whose
// estimate is exactly PFCOUNT over the same keys (a union in Redis).
func TestSketchesMatchPFCOUNT(t *testing.T) {
	testenv.Integration(t)
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	v := testView(viewName("sketch"), testSchema(t, "orders"), time.Minute, []string{"tenant", "country"})
	base := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	type cell struct {
		min             int
		tenant, country string
		lo, hi          int
	}
	cells := []cell{
		{0, "a", "de", 0, 300}, {1, "a", "fr", 200, 900}, {2, "b", "de", 0, 50},
		{5, "a", "de", 800, 2000}, {6, "b", "fr", 1, 2}, {9, "a", "de", 0, 10},
	}
	// Cells go to two shards by turns: a group's sketch is the union over both.
	v.Shards = 2
	now := base.Add(30 * time.Minute)
	w := newContractWriter(t, rdb, v, base, now)
	var keys []string
	for i, c := range cells {
		b := base.Add(time.Duration(c.min) * time.Minute).UnixMicro()
		dims := c.tenant + "," + c.country
		var users []string
		for u := c.lo; u < c.hi; u++ {
			users = append(users, fmt.Sprintf("u%d", u))
		}
		w.flush([]fixtureLine{
			{shard: i % 2, bucket: b, dims: dims, field: "orders", values: []string{"1"}},
			{shard: i % 2, bucket: b, dims: dims, field: "buyers", values: users},
		})
		keys = append(keys, Shard{View: v.Name, Index: i % 2, Count: 2}.UniqKey(b, dims, "buyers"))
	}
	buyers := 4 // index of buyers in testMetrics

	r := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }})
	tests := []struct {
		name string
		q    Query
		want map[string][]int // "t|dims" → indexes into keys
	}{
		{"5m totals", Query{View: v, From: base, To: base.Add(10 * time.Minute), Step: 5 * time.Minute},
			map[string][]int{"0|": {0, 1, 2}, "5|": {3, 4, 5}}},
		{"5m by tenant, where country", Query{View: v, From: base, To: base.Add(10 * time.Minute), Step: 5 * time.Minute,
			GroupBy: []string{"tenant"}, Where: map[string]schemas.Value{"country": {Str: "de"}}},
			map[string][]int{"0|a": {0}, "0|b": {2}, "5|a": {3, 5}}},
		{"narrow range", Query{View: v, From: base.Add(time.Minute), To: base.Add(6 * time.Minute), Step: 10 * time.Minute},
			map[string][]int{"0|": {1, 2, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := r.Sketches(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tt.want) {
				t.Fatalf("%d rows, want %d", len(rows), len(tt.want))
			}
			res, err := r.Query(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			for i, row := range rows {
				key := strconv.Itoa(int(row.T.Sub(base)/time.Minute)) + "|"
				for _, d := range row.Dims {
					key += d.Str
				}
				idx, ok := tt.want[key]
				if !ok {
					t.Fatalf("unexpected group %s", key)
				}
				var ks []string
				for _, j := range idx {
					ks = append(ks, keys[j])
				}
				want, err := rdb.PFCount(ctx, ks...).Result()
				if err != nil {
					t.Fatal(err)
				}
				sk, err := hll.Unmarshal(row.HLL[buyers])
				if err != nil {
					t.Fatal(err)
				}
				if got := int64(sk.Estimate()); got != want {
					t.Errorf("group %s: sketch estimate %d, PFCOUNT %d", key, got, want)
				}
				if q := res.Rows[i]; !q.T.Equal(row.T) || q.Values[buyers].Int != want {
					t.Errorf("group %s: Query row %v disagrees (want T=%s buyers=%d)", key, q, row.T, want)
				}
				for mi, m := range v.Metrics {
					if m.Agg != schemas.Uniq && row.HLL[mi] != nil {
						t.Errorf("metric %s has a sketch", m.Name)
					}
				}
			}
		})
	}
}

// sketchStack is a fresh view by tenant and country on the real Redis, the
// contract writer of its cells and a reader, at now = base + at.
type sketchStack struct {
	rdb       redis.UniversalClient
	v         *schemas.View
	base, now time.Time
	w         *contractWriter
	r         *Reader
}

func newSketchStack(t *testing.T, name string, at time.Duration) *sketchStack {
	testenv.Integration(t)
	st := &sketchStack{rdb: testenv.RedisClient(t), base: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	st.v = testView(viewName(name), testSchema(t, "orders"), time.Minute, []string{"tenant", "country"})
	st.now = st.base.Add(at)
	st.w = newContractWriter(t, st.rdb, st.v, st.base, st.now)
	st.r = NewReader(ReaderConfig{Redis: st.rdb, Now: func() time.Time { return st.now }})
	return st
}

// A sketch in Redis that is not a HyperLogLog (written by something else,
// or damaged) fails the read naming its key, before any rollup merges it:
// the rollups merge sketches unchecked once they are read.
func TestBadSketchNamesItsKey(t *testing.T) {
	st := newSketchStack(t, "badhll", 30*time.Minute)
	ctx := context.Background()
	rdb, v, base, w, r := st.rdb, st.v, st.base, st.w, st.r
	b := base.UnixMicro()
	w.flush([]fixtureLine{
		{bucket: b, dims: "a,de", field: "orders", values: []string{"1"}},
		{bucket: b, dims: "a,de", field: "buyers", values: []string{"u1", "u2"}},
		{bucket: b, dims: "b,de", field: "orders", values: []string{"1"}},
		{bucket: b, dims: "b,de", field: "buyers", values: []string{"u3"}},
	})
	key := Shard{View: v.Name, Count: 1}.UniqKey(b, "b,de", "buyers")
	good, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte{}, good...)
	bad = append(bad, 0x7f, 0xff) // runs past the last register
	if err := rdb.Set(ctx, key, bad, 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Query(ctx, Query{View: v, From: base, To: base.Add(time.Minute)})
	if !errors.Is(err, hll.ErrInvalid) || !strings.Contains(fmt.Sprint(err), key) {
		t.Fatalf("query over a bad sketch: %v; want hll.ErrInvalid naming %s", err, key)
	}
	// Once it is a sketch again, the same reader answers.
	if err := rdb.Set(ctx, key, good, 0).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := r.Query(ctx, Query{View: v, From: base, To: base.Add(time.Minute)})
	if err != nil || len(res.Rows) != 1 || res.Rows[0].Values[4].Int != 3 {
		t.Fatalf("after the repair: %+v, %v; want one row with buyers = 3", res, err)
	}
}

// The unit holding the live minute grows at every flush from the rollup
// of the flush before (its settled registers and their histogram, plus
// the changed cells). Through several flushes, with more cells than a
// rollup keeps by reference, its uniq figure stays exactly Redis's
// PFCOUNT over every cell's key.
func TestLiveUnitEstimateIsPFCOUNT(t *testing.T) {
	st := newSketchStack(t, "liveunit", 50*time.Minute)
	ctx := context.Background()
	rdb, v, base, w, r := st.rdb, st.v, st.base, st.w, st.r
	hourly := Query{View: v, From: base, To: base.Add(time.Hour), Step: time.Hour}
	var keys []string
	user := 0
	flush := func(minute, cells, users int) {
		var lines []fixtureLine
		b := base.Add(time.Duration(minute) * time.Minute).UnixMicro()
		for c := range cells {
			dims := fmt.Sprintf("t%d,c%d", c%7, c)
			var us []string
			for range users {
				us = append(us, "u"+strconv.Itoa(user))
				user++
			}
			lines = append(lines,
				fixtureLine{bucket: b, dims: dims, field: "orders", values: []string{"1"}},
				fixtureLine{bucket: b, dims: dims, field: "buyers", values: us})
			keys = append(keys, Shard{View: v.Name, Count: 1}.UniqKey(b, dims, "buyers"))
		}
		w.flush(lines)
	}
	check := func(step string) {
		t.Helper()
		res, err := r.Query(ctx, hourly)
		if err != nil || len(res.Rows) != 1 {
			t.Fatalf("%s: %+v, %v", step, res, err)
		}
		want, err := rdb.PFCount(ctx, keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Rows[0].Values[4].Int; got != want {
			t.Errorf("%s: buyers = %d, PFCOUNT over the %d keys = %d", step, got, len(keys), want)
		}
	}
	// 40 minutes of 3 cells: 120 cell sketches, past what a rollup keeps
	// by reference, so the hour's rollup holds registers of its own.
	for m := range 40 {
		flush(m, 3, 5)
	}
	check("first read")
	// The live minute, flush after flush: new users in new and old cells.
	for f := range 6 {
		flush(40+f/2, 2+f, 40)
		check(fmt.Sprintf("flush %d", f))
	}
	// A flush of users already counted changes nothing.
	user = 0
	flush(45, 1, 30)
	check("users seen before")
}

// A busy cell's sketch is dense in Redis; the reader estimates it on its
// own at the cell's step and through the rollup of a coarser step. Both
// must be PFCOUNT's figure: on the first read, from a reader that reads
// Redis's copy after PFCOUNT cached its figure in the header, and after a
// flush changes the registers.
func TestDenseCellEstimateIsPFCOUNT(t *testing.T) {
	st := newSketchStack(t, "densecell", 30*time.Minute)
	ctx := context.Background()
	rdb, v, base, w, r := st.rdb, st.v, st.base, st.w, st.r
	b := base.Add(5 * time.Minute).UnixMicro()
	key := Shard{View: v.Name, Count: 1}.UniqKey(b, "a,de", "buyers")
	user := 0
	flush := func(users int) {
		us := make([]string, users)
		for i := range us {
			us[i] = "u" + strconv.Itoa(user)
			user++
		}
		w.flush([]fixtureLine{
			{bucket: b, dims: "a,de", field: "orders", values: []string{"1"}},
			{bucket: b, dims: "a,de", field: "buyers", values: us},
		})
	}
	check := func(step string, r *Reader) {
		t.Helper()
		for _, q := range []Query{
			{View: v, From: base, To: base.Add(10 * time.Minute), Step: time.Minute}, // the cell on its own
			{View: v, From: base, To: base.Add(10 * time.Minute)},                    // its rollup
		} {
			res, err := r.Query(ctx, q)
			if err != nil || len(res.Rows) != 1 {
				t.Fatalf("%s, step %v: %+v, %v", step, q.Step, res, err)
			}
			enc, err := rdb.Get(ctx, key).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if enc[4] != 0 {
				t.Fatalf("%s: the cell's sketch is not dense in Redis (encoding %d): the test needs more users", step, enc[4])
			}
			want, err := rdb.PFCount(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Rows[0].Values[4].Int; got != want {
				t.Errorf("%s, step %v: buyers = %d, PFCOUNT = %d", step, q.Step, got, want)
			}
		}
	}
	flush(6000)
	check("first read", r)
	check("Redis cached its figure", NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return st.now }}))
	flush(500)
	check("after a flush", r)
}
