package speed

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// countHook counts the commands a client sends, by kind: "m" (a bucket
// hash read), "v" (a version hash read), "mget" (sketches), and the
// round trips (a pipeline or a lone command; connection handshakes are
// not counted). delayM, if set, holds every
// round trip that reads a bucket hash that long.
type countHook struct {
	mu     sync.Mutex
	n      map[string]int
	trips  int
	delayM time.Duration
}

func newCountHook() *countHook { return &countHook{n: map[string]int{}} }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.count(cmds) && h.delayM > 0 {
			time.Sleep(h.delayM)
		}
		return next(ctx, cmds)
	}
}

// count returns whether cmds read a bucket hash.
func (h *countHook) count(cmds []redis.Cmder) (readsM bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch strings.ToLower(cmds[0].Name()) {
	case "hello", "client", "ping":
		return false // a new connection's handshake, not the reader's
	}
	h.trips++
	for _, c := range cmds {
		args := c.Args()
		name := strings.ToLower(c.Name())
		var key string
		if len(args) > 1 {
			key, _ = args[1].(string)
		}
		switch {
		case name == "hgetall" && strings.Contains(key, "}:m:"):
			h.n["m"]++
			readsM = true
		case name == "hgetall" && strings.Contains(key, "}:v:"):
			h.n["v"]++
		case name == "mget":
			h.n["mget"]++
		}
	}
	return readsM
}

// take returns the counts so far and starts again.
func (h *countHook) take() (n map[string]int, trips int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, trips = h.n, h.trips
	h.n, h.trips = map[string]int{}, 0
	return n, trips
}

// A second query reads only versions; a query of another shape reuses the
// decoded buckets; a flush makes exactly the buckets it touched read again,
// and the answer is the new one (never a stale one); concurrent queries
// after a flush read the changed bucket once between them.
func TestReaderReadsOnlyChangedBuckets(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	wdb := testenv.RedisClient(t)
	rdb := testenv.RedisClient(t)
	hook := newCountHook()
	rdb.(*redis.Client).AddHook(hook)
	now := time.Now().UTC()
	base := now.Truncate(time.Hour).Add(-time.Hour)
	v := shopView(t, 2)
	w := newContractWriter(t, wdb, v, base, now)
	w.flush(w.load("testdata/reader/contract.txt"))
	clock := now
	r := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return clock }})
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	grain := Query{View: v, From: at(0), To: at(5), GroupBy: []string{"tenant", "country"}}
	totals := Query{View: v, From: at(0), To: at(5), Step: 5 * time.Minute}
	byTenant := Query{View: v, From: at(0), To: at(5), Step: 15 * time.Minute, GroupBy: []string{"tenant"}}
	query := func(q Query) []string {
		t.Helper()
		res, err := r.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, row := range res.Rows {
			out = append(out, rowString(v, base, row))
		}
		return out
	}
	expect := func(step string, m, mget, trips int) {
		t.Helper()
		n, tr := hook.take()
		if n["m"] != m || n["mget"] != mget || tr != trips {
			t.Errorf("%s: %d bucket reads, %d MGETs, %d round trips; want %d, %d, %d", step, n["m"], n["mget"], tr, m, mget, trips)
		}
	}

	first := query(grain)
	// shard 0 holds minutes 0-3, shard 1 minutes 0, 2 and 4: 7 buckets.
	expect("first query", 7, 7, 3)
	if again := query(grain); !slices.Equal(again, first) {
		t.Errorf("second query answered\n%s\nfirst\n%s", strings.Join(again, "\n"), strings.Join(first, "\n"))
	}
	expect("same query again", 0, 0, 1)
	query(totals)
	query(byTenant)
	expect("other shapes", 0, 0, 2)

	// A flush into (minute 2, shard 1) changes one row.
	w.flush([]fixtureLine{{shard: 1, bucket: at(2).UnixMicro(), dims: "!,de", field: "orders", values: []string{"5"}}})
	got := query(grain)
	expect("after a flush", 1, 1, 3)
	want := slices.Clone(first)
	want[4] = strings.Replace(want[4], "orders=1", "orders=5", 1)
	if !slices.Equal(got, want) {
		t.Errorf("after a flush\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tot := query(totals); len(tot) != 1 || !strings.Contains(tot[0], "orders=14 ") {
		t.Errorf("totals after a flush: %v, want orders=14", tot)
	}
	expect("totals after a flush", 0, 0, 1)

	// Concurrent queries of several shapes after a flush: one read.
	w.flush([]fixtureLine{{shard: 0, bucket: at(3).UnixMicro(), dims: "a+b,de", field: "orders", values: []string{"2"}}})
	hook.delayM = 300 * time.Millisecond
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := []Query{grain, totals, byTenant}[i%3]
			if _, err := r.Query(ctx, q); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	hook.delayM = 0
	if n, _ := hook.take(); n["m"] != 1 {
		t.Errorf("16 concurrent queries after a flush read the changed bucket %d times, want once", n["m"])
	}
	if tot := query(totals); len(tot) != 1 || !strings.Contains(tot[0], "orders=15 ") {
		t.Errorf("totals after the second flush: %v, want orders=15", tot)
	}

	// Rollups grown from the previous ones (new users in a cell, a new
	// cell) answer what rollups computed afresh do; a bucket that expires
	// makes them computed afresh.
	fresh := func(q Query) []string {
		t.Helper()
		res, err := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return clock }, CacheBytes: -1}).Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, row := range res.Rows {
			out = append(out, rowString(v, base, row))
		}
		return out
	}
	hourly := Query{View: v, From: at(0), To: at(60), Step: time.Hour, GroupBy: []string{"country"}}
	for _, step := range []struct {
		name  string
		flush []fixtureLine
		clock time.Time
	}{
		{"new users in a cell", []fixtureLine{{shard: 1, bucket: at(0).UnixMicro(), dims: "a,de", field: "buyers", values: []string{"u40", "u41", "u42"}}}, now},
		{"a new cell", []fixtureLine{{shard: 0, bucket: at(4).UnixMicro(), dims: "d,fr", field: "buyers", values: []string{"u50"}}}, now},
		{"minute 0 expired, minute 2 changed", []fixtureLine{{shard: 0, bucket: at(2).UnixMicro(), dims: "a,fr", field: "buyers", values: []string{"u60"}}}, at(1).Add(v.HotRetention)},
	} {
		if step.flush != nil {
			w.flush(step.flush)
		}
		clock = step.clock
		for _, q := range []Query{totals, byTenant, hourly} {
			if got, want := query(q), fresh(q); !slices.Equal(got, want) {
				t.Errorf("%s, step %s: the cached reader answers\n%s\nafresh\n%s", step.name, q.Step, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
}

// The cache stays within its byte budget however many buckets queries
// touch, evicts to do so, and answers as a Reader without cache does.
func TestReaderCacheBytesBound(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	now := time.Now().UTC()
	base := now.Truncate(time.Hour).Add(-time.Hour)
	v := shopView(t, 1)
	w := newContractWriter(t, rdb, v, base, now)
	var lines []fixtureLine
	for m := range 60 {
		b := base.Add(time.Duration(m) * time.Minute).UnixMicro()
		for c := range 20 {
			dims := fmt.Sprintf("t%d,c%d", c%5, c)
			lines = append(lines,
				fixtureLine{bucket: b, dims: dims, field: "orders", values: []string{fmt.Sprint(m + c)}},
				fixtureLine{bucket: b, dims: dims, field: "qty", values: []string{fmt.Sprint(m * c)}},
				fixtureLine{bucket: b, dims: dims, field: "buyers", values: []string{fmt.Sprintf("u%d", m), fmt.Sprintf("u%d", c), "x"}})
		}
	}
	w.flush(lines)

	const budget = 200 << 10
	r := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }, CacheBytes: budget})
	plain := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }, CacheBytes: -1})
	var qs []Query
	for _, step := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour} {
		for _, g := range [][]string{nil, {"tenant"}, {"tenant", "country"}} {
			qs = append(qs, Query{View: v, From: base, To: base.Add(time.Hour), Step: step, GroupBy: g})
			qs = append(qs, Query{View: v, From: base, To: base.Add(time.Hour), Step: step, GroupBy: g,
				Where: map[string]schemas.Value{"tenant": {Str: "t1"}}})
		}
	}
	for round := range 2 {
		for i, q := range qs {
			got, err := r.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := plain.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.Rows) != fmt.Sprint(want.Rows) {
				t.Fatalf("round %d query %d: the bounded cache answered differently", round, i)
			}
			if n := r.CacheBytes(); n > budget {
				t.Fatalf("round %d query %d: cache holds %d bytes, budget %d", round, i, n, budget)
			}
		}
	}
	if ev := testutil.ToFloat64(r.m.evictions); ev == 0 {
		t.Errorf("no eviction: the test did not fill the %d-byte budget (holds %d)", budget, r.CacheBytes())
	}
	if n := testutil.ToFloat64(r.m.size); n <= 0 || n > budget {
		t.Errorf("lambdalake_speed_read_cache_bytes = %v, want in (0, %d]", n, budget)
	}
}
