package speed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// BenchmarkReaderMix answers a dashboard's mix of queries over two hours
// of hot data (10 tenants x 20 countries per minute, 60 users per cell) with
// a flush into the live minute every 20 queries: what one query costs the
// serving process once the closed minutes are decoded and rolled up
// (-benchtime sets the number of queries; run with -run '^$').
func BenchmarkReaderMix(b *testing.B) {
	testenv.Integration(b)
	ctx := context.Background()
	rdb := redisClientTB(b)
	now := time.Now().UTC()
	v := shopView(b, 1)
	start := now.Truncate(time.Minute).Add(-2 * time.Hour)
	w := newContractWriter(b, rdb, v, start, now)
	rng := rand.New(rand.NewPCG(1, 2))
	cellLines := func(bucket int64, ti, ci int) []fixtureLine {
		dims := fmt.Sprintf("tenant-%d,country-%d", ti, ci)
		users := make([]string, 60)
		for k := range users {
			users[k] = fmt.Sprintf("u%d", rng.IntN(100_000))
		}
		return []fixtureLine{
			{bucket: bucket, dims: dims, field: "orders", values: []string{"60"}},
			{bucket: bucket, dims: dims, field: "revenue", values: []string{"1234.5"}},
			{bucket: bucket, dims: dims, field: "biggest", values: []string{"99.5"}},
			{bucket: bucket, dims: dims, field: "smallest", values: []string{"0.5"}},
			{bucket: bucket, dims: dims, field: "qty", values: []string{"120"}},
			{bucket: bucket, dims: dims, field: "qty_max", values: []string{"9"}},
			{bucket: bucket, dims: dims, field: "buyers", values: users},
		}
	}
	for m := range 121 {
		var lines []fixtureLine
		bucket := start.Add(time.Duration(m) * time.Minute).UnixMicro()
		for ti := range 10 {
			for ci := range 20 {
				lines = append(lines, cellLines(bucket, ti, ci)...)
			}
		}
		w.flush(lines)
	}
	live := start.Add(120 * time.Minute).UnixMicro()
	r := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return now }})
	ranges := []time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour}
	steps := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour}
	groups := [][]string{nil, nil, {"tenant"}, {"country"}, {"tenant", "country"}}
	query := func() Query {
		step := steps[rng.IntN(len(steps))]
		to := now.Truncate(step).Add(step)
		q := Query{View: v, To: to, From: to.Add(-ranges[rng.IntN(len(ranges))]).Truncate(step), Step: step, GroupBy: groups[rng.IntN(len(groups))]}
		if rng.Float64() < 0.4 {
			q.Where = map[string]schemas.Value{"tenant": {Str: fmt.Sprintf("tenant-%d", rng.IntN(10))}}
		}
		return q
	}
	// Warm: every shape once.
	for range 400 {
		if _, err := r.Query(ctx, query()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if i%20 == 0 {
			b.StopTimer()
			w.flush(cellLines(live, rng.IntN(10), rng.IntN(20)))
			b.StartTimer()
		}
		if _, err := r.Query(ctx, query()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(r.CacheBytes())/(1<<20), "cache_MiB")
	b.Logf("cache entries and bytes by kind: %v", r.cache.breakdown())
}

func redisClientTB(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{testenv.RedisAddr(tb)}})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// breakdown is the cache's entries and bytes by kind: b decoded buckets,
// p bucket rollups, u unit rollups.
func (c *lru) breakdown() map[string][2]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][2]int64{}
	for k, e := range c.items {
		kind := "?"
		switch {
		case strings.Contains(k, "|b"):
			kind = "b"
		case strings.Contains(k, "|p|"):
			kind = "p"
		case strings.Contains(k, "|u|"):
			kind = "u"
		}
		x := out[kind]
		x[0]++
		x[1] += e.Value.(*lruItem).size
		out[kind] = x
	}
	return out
}
