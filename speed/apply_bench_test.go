package speed

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// redisStats reads INFO commandstats: per command, calls and microseconds
// (a script's commands are counted too, and also inside EVAL's and EXEC's
// time). Meaningful on a Redis nothing else uses (point
// LAMBDALAKE_REDIS_ADDR at one).
func redisStats(b *testing.B, rdb redis.UniversalClient) map[string][2]float64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string][2]float64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st [2]float64
		for _, kv := range strings.Split(rest, ",") {
			k, val, _ := strings.Cut(kv, "=")
			x, _ := strconv.ParseFloat(val, 64)
			switch k {
			case "calls":
				st[0] = x
			case "usec":
				st[1] = x
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out
}

// BenchmarkApplyFlush applies one realistic flush per op: the bench view
// (count, float sum, min, max, uniq by 10 tenants x 20 countries) over
// 60,000 events of two minutes from four partitions, as one shard. It
// reports what Redis does per flush (commands, script ones included, and
// their time) besides the client's time.
func BenchmarkApplyFlush(b *testing.B) {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{testenv.RedisAddr(b)}})
	defer rdb.Close()
	ctx := context.Background()
	s := testSchema(b, "orders")
	v := &schemas.View{Name: viewName("benchapply"), Schema: s, Granularity: time.Minute, Dimensions: []string{"tenant", "country"},
		Metrics: []schemas.Metric{{Name: "orders", Agg: schemas.Count}, {Name: "revenue", Agg: schemas.Sum, Field: "amount"},
			{Name: "biggest", Agg: schemas.Max, Field: "amount"}, {Name: "smallest", Agg: schemas.Min, Field: "amount"},
			{Name: "buyers", Agg: schemas.Uniq, Field: "user_id"}},
		HotRetention: 2 * time.Hour, Lateness: 5 * time.Minute}
	defer func() {
		deleteHotData(ctx, rdb, v.Name)
		rdb.Del(ctx, Shards(v)[0].OffsetsKey())
	}()
	now := time.Now().UTC()
	events := genEvents(b, s, 60000, now.Add(-2*time.Minute), now, 3,
		gen.Config{Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100000}})
	p, _ := newPlan(v)
	const parts = 4
	aggs := make([]*aggregator, parts)
	d := schemas.NewDecoder(s)
	var r schemas.Row
	for i := range aggs {
		aggs[i] = newAggregator(p)
	}
	for i, e := range events {
		if d.Decode(e.Value, &r) == nil {
			aggs[i%parts].add(&r, aggs[i%parts].bucket(&r))
		}
	}
	sh := Shards(v)[0]
	spans := make([]span, parts)
	for i := range spans {
		spans[i] = span{field: offsetField(s.Topic, i)}
		rdb.HSet(ctx, sh.OffsetsKey(), spans[i].field, 0)
	}
	st0 := redisStats(b, rdb)
	b.ResetTimer()
	for b.Loop() {
		for i := range spans {
			spans[i].from, spans[i].to = spans[i].to, spans[i].to+int64(len(events)/parts)
		}
		if _, err := apply(ctx, rdb, p, sh, aggs, spans, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st1 := redisStats(b, rdb)
	n := float64(b.N)
	var calls float64
	for c, st := range st1 {
		if c != "exec" && c != "multi" && c != "eval" && c != "info" {
			calls += st[0] - st0[c][0]
		}
	}
	exec := st1["exec"][1] - st0["exec"][1] // the whole transaction, script included
	b.ReportMetric(calls/n, "redis-cmds/flush")
	b.ReportMetric(exec/n, "redis-µs/flush")
	b.ReportMetric((st1["eval"][1]-st0["eval"][1])/n, "script-µs/flush")
	b.ReportMetric(exec/n/float64(len(events))*1000, "redis-ns/event")
}
