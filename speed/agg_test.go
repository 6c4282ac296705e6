package speed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// newMiniRedis is an in-process Redis for the tests that need no services.
func newMiniRedis(t *testing.T) (*miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{mr.Addr()}})
	t.Cleanup(func() { rdb.Close() })
	return mr, rdb
}

// applyEvents deals the events round-robin to three partitions, aggregates
// them chunk by chunk and applies each chunk as one flush of all three, as
// the worker does (one atomic step per shard); a partition's offsets are
// its events' positions in it.
func applyEvents(t *testing.T, rdb redis.UniversalClient, v *schemas.View, events []gen.Event, chunk int, now time.Time) {
	t.Helper()
	const parts = 3
	p, err := newPlan(v)
	if err != nil {
		t.Fatal(err)
	}
	aggs := []*aggregator{newAggregator(p), newAggregator(p), newAggregator(p)}
	d := schemas.NewDecoder(v.Schema)
	var r schemas.Row
	ctx := context.Background()
	// As loadOffsets does for a new view: the stored offset is where the
	// first flush must start.
	next := make([]int64, parts)
	for part := range parts {
		rdb.HSet(ctx, PartitionShard(v, part).OffsetsKey(), offsetField(v.Schema.Topic, part), 0)
	}
	cleanupView(t, rdb, v)
	for from := 0; from < len(events); from += chunk {
		to := min(from+chunk, len(events))
		spans := make([]span, parts)
		for part := range parts {
			spans[part] = span{field: offsetField(v.Schema.Topic, part), from: next[part], to: next[part]}
		}
		for k, e := range events[from:to] {
			part := (from + k) % parts
			spans[part].to++
			if d.Decode(e.Value, &r) != nil {
				continue
			}
			aggs[part].add(&r, aggs[part].bucket(&r))
		}
		for _, sh := range Shards(v) {
			var sa []*aggregator
			var ss []span
			for part := range parts {
				if PartitionShard(v, part) == sh {
					sa, ss = append(sa, aggs[part]), append(ss, spans[part])
				}
			}
			if _, err := apply(ctx, rdb, p, sh, sa, ss, now); err != nil {
				t.Fatalf("apply [%d,%d) shard %s: %v", from, to, sh.Tag(), err)
			}
		}
		for part := range parts {
			next[part] = spans[part].to
			aggs[part].reset()
		}
	}
}

// cleanupView deletes the view's keys (every shard) when the test ends.
func cleanupView(t *testing.T, rdb redis.UniversalClient, v *schemas.View) {
	t.Cleanup(func() {
		if err := deleteHotData(context.Background(), rdb, v.Name); err != nil {
			t.Logf("cleanup %s: %v", v.Name, err)
		}
		for _, sh := range allTags(v.Name) {
			rdb.Del(context.Background(), sh.OffsetsKey())
		}
	})
}

// The aggregation and the Lua merge, end to end on Redis: several flushes
// into the same cells, over one shard or three, must add up to the plain
// reference.
func TestAggregateApplyQuery(t *testing.T) {
	rdb := testenv.RedisClient(t)
	now := time.Now().UTC()
	s := testSchema(t, "orders")
	events := genEvents(t, s, 6000, now.Add(-30*time.Minute), now, 7,
		gen.Config{OutOfOrder: 0.2, MaxDelay: 10 * time.Minute, Duplicates: 0.05, Malformed: 0.02})
	all := func(int64) bool { return true }

	tests := []struct {
		name   string
		g      time.Duration
		dims   []string
		chunk  int
		shards int
	}{
		{"minute by tenant and country, small flushes", time.Minute, []string{"tenant", "country"}, 250, 1},
		{"five minutes by tenant, one flush", 5 * time.Minute, []string{"tenant"}, 6000, 1},
		{"no dimensions", time.Minute, nil, 1000, 1},
		{"minute by tenant and country, three shards", time.Minute, []string{"tenant", "country"}, 250, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := testView(viewName("unit"), s, tt.g, tt.dims)
			v.Shards = tt.shards
			applyEvents(t, rdb, v, events, tt.chunk, now)
			ref := buildReference(t, v, events, all)
			res := queryAll(t, rdb, v, now.Add(-time.Hour), now.Add(time.Minute))
			ref.checkAgainst(t, v, res, cellUniqTol)
			if len(res.Buckets) == 0 {
				t.Error("no buckets reported")
			}
		})
	}
}

// TestRollUp checks the Reader's roll-ups over what apply wrote.
func TestRollUp(t *testing.T) {
	_, rdb := newMiniRedis(t)
	// An hour boundary, so the hourly query below is one row; recent,
	// because keys expire by the wall clock (hot_retention is 2h here).
	now := time.Now().UTC().Truncate(time.Hour)
	s := testSchema(t, "orders")
	events := genEvents(t, s, 4000, now.Add(-20*time.Minute), now, 3, gen.Config{})
	v := withoutUniq(testView(viewName("rollup"), s, time.Minute, []string{"tenant", "country"}))
	applyEvents(t, rdb, v, events, 500, now)

	// The reference at the 10-minute grain, by tenant only, is the fine
	// view's reference rolled up: count/sum add, min/max fold, uniq unions.
	rolled := withoutUniq(testView(v.Name, s, 10*time.Minute, []string{"tenant"}))
	ref := buildReference(t, rolled, events, func(int64) bool { return true })
	res, err := NewReader(ReaderConfig{Redis: rdb}).Query(context.Background(), Query{
		View: v, From: now.Add(-time.Hour), To: now, GroupBy: []string{"tenant"}, Step: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ref.checkAgainst(t, rolled, res, 0)

	res, err = NewReader(ReaderConfig{Redis: rdb}).Query(context.Background(), Query{
		View: v, From: now.Add(-time.Hour), To: now, Where: map[string]schemas.Value{"tenant": {Str: "tenant-1"}, "country": {Str: "country-2"}}, Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	d := schemas.NewDecoder(s)
	var r schemas.Row
	for _, e := range events {
		if d.Decode(e.Value, &r) == nil && r.Values[2].Str == "tenant-1" && r.Values[3].Str == "country-2" {
			want++
		}
	}
	if len(res.Rows) != 1 || res.Rows[0].Values[0].Int != want || want == 0 {
		t.Errorf("where tenant-1/country-2 over the hour: rows %+v, want one row with orders=%d", res.Rows, want)
	}
}

// A flush whose offsets are already applied (a replay after a crash) or do
// not start at the stored offset must change nothing.
func TestApplyIsGuardedByOffsets(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	now := time.Now().UTC()
	s := testSchema(t, "orders")
	v := withoutUniq(testView(viewName("guard"), s, time.Minute, []string{"tenant"}))
	cleanupView(t, rdb, v)
	sh := Shards(v)[0]
	events := genEvents(t, s, 200, now.Add(-10*time.Minute), now, 1, gen.Config{})
	p, _ := newPlan(v)
	a := newAggregator(p)
	d := schemas.NewDecoder(s)
	var r schemas.Row
	fill := func() {
		a.reset()
		for _, e := range events {
			if d.Decode(e.Value, &r) == nil {
				a.add(&r, a.bucket(&r))
			}
		}
	}
	rdb.HSet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0), 100, offsetField(s.Topic, 1), 7)
	p0 := func(from, to int64) span { return span{offsetField(s.Topic, 0), from, to} }
	p1 := func(from, to int64) span { return span{offsetField(s.Topic, 1), from, to} }
	tests := []struct {
		name    string
		spans   []span
		applied bool
	}{
		{"starts before the stored offset (replay)", []span{p0(0, 100)}, false},
		{"starts after the stored offset (gap)", []span{p0(150, 200)}, false},
		{"one of two partitions is a replay", []span{p0(100, 300), p1(5, 9)}, false},
		{"both start at their stored offsets", []span{p0(100, 300), p1(7, 9)}, true},
		{"the same flush again", []span{p0(100, 300), p1(7, 9)}, false},
	}
	for _, tt := range tests {
		fill()
		_, err := apply(ctx, rdb, p, sh, []*aggregator{a}, tt.spans, now)
		var conflict *errConflict
		if tt.applied && err != nil || !tt.applied && !errors.As(err, &conflict) {
			t.Fatalf("%s: err = %v, applied want %v", tt.name, err, tt.applied)
		}
	}
	res := queryAll(t, rdb, v, now.Add(-time.Hour), now.Add(time.Minute))
	var total int64
	for _, row := range res.Rows {
		total += row.Values[0].Int
	}
	if total != int64(len(events)) {
		t.Errorf("orders = %d after one applied flush of %d events", total, len(events))
	}
	if got := rdb.HMGet(ctx, sh.OffsetsKey(), offsetField(s.Topic, 0), offsetField(s.Topic, 1)).Val(); got[0] != "300" || got[1] != "9" {
		t.Errorf("stored offsets = %v, want 300 and 9", got)
	}
}

func TestDimsRoundTrip(t *testing.T) {
	tests := []struct {
		typ  schemas.Type
		val  schemas.Value
		text string // as a where clause gives it
	}{
		{schemas.String, schemas.Value{Str: "acme"}, "acme"},
		{schemas.String, schemas.Value{Str: "a,b:c{d}"}, "a,b:c{d}"},
		{schemas.String, schemas.Value{Str: ""}, ""},
		{schemas.String, schemas.Value{Str: "!"}, "!"},
		{schemas.String, schemas.Value{Str: "é %2C"}, "é %2C"},
		{schemas.Int64, schemas.Value{Int: -42}, "-42"},
		{schemas.Bool, schemas.Value{Int: 1}, "true"},
		{schemas.Bool, schemas.Value{Int: 0}, "false"},
		{schemas.String, schemas.Value{Null: true}, ""},
	}
	for _, tt := range tests {
		enc := string(appendDim(nil, tt.typ, &tt.val))
		got, err := dimValue(tt.typ, enc)
		if err != nil || got != tt.val {
			t.Errorf("%v %+v: encoded %q, decoded %+v, %v", tt.typ, tt.val, enc, got, err)
		}
		for _, c := range enc {
			if c == ',' || c == ':' || c == '{' || c == '}' {
				t.Errorf("%+v: encoding %q contains %q", tt.val, enc, c)
			}
		}
		if tt.val.Null {
			continue
		}
		// A where clause is parsed by the schemas rule, then encoded as
		// the cell is: the two must meet.
		wv, err := schemas.ParseDimValue(tt.typ, tt.text)
		if w := string(appendDim(nil, tt.typ, &wv)); err != nil || w != enc {
			t.Errorf("where %q encodes to %q (%v), cell has %q", tt.text, w, err, enc)
		}
	}
}

// FuzzDims: any tuple of dimension values survives the key encoding, in
// every position; whatever else is read back from Redis as a tuple splits
// without panic.
func FuzzDims(f *testing.F) {
	for _, s := range []string{"acme", "", "a,b", "!", "%", "x:y", "{v}", "é %2C"} {
		f.Add(s, "de", int64(-42), true, int64(1795775400000000), s+":"+s)
	}
	types := []schemas.Type{schemas.String, schemas.String, schemas.Int64, schemas.Bool}
	f.Fuzz(func(t *testing.T, s1, s2 string, n int64, b bool, bucket int64, raw string) {
		vals := []schemas.Value{{Str: s1}, {Str: s2}, {Int: n}, {}}
		if b {
			vals[3].Int = 1
		}
		if n%3 == 0 {
			vals[1] = schemas.Value{Null: true} // nulls take part too
		}
		var enc []byte
		for i, v := range vals {
			if i > 0 {
				enc = append(enc, ',')
			}
			enc = appendDim(enc, types[i], &v)
		}
		dims := string(enc)
		parts, err := decodeDims(dims, len(vals))
		if err != nil || len(parts) != len(vals) {
			t.Fatalf("%q: tuple split %q, %v", dims, parts, err)
		}
		for i, p := range parts {
			got, err := dimValue(types[i], p)
			if err != nil || got != vals[i] {
				t.Fatalf("dimension %d %+v: encoded %q, decoded %+v, %v", i, vals[i], p, got, err)
			}
		}
		decodeDims(raw, len(vals))
	})
}

func BenchmarkAggregate(b *testing.B) {
	now := time.Now().UTC()
	s := testSchema(b, "orders")
	v := testView("bench", s, time.Minute, []string{"tenant", "country"})
	events := genEvents(b, s, 10000, now.Add(-10*time.Minute), now, 1, gen.Config{})
	p, _ := newPlan(v)
	a := newAggregator(p)
	d := schemas.NewDecoder(s)
	rows := make([]schemas.Row, len(events))
	for i, e := range events {
		if err := d.Decode(e.Value, &rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := &rows[i%len(rows)]
		a.add(r, a.bucket(r))
		if i%len(rows) == 0 {
			a.reset()
		}
	}
}
