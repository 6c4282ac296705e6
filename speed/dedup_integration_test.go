package speed

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// order is one orders event as JSON.
func order(id string, ts time.Time, tenant string, amount float64, qty int) gen.Event {
	return gen.Event{Kind: gen.Valid, Key: []byte(id), Value: fmt.Appendf(nil,
		`{"order_id":%q,"ts":%q,"tenant":%q,"country":"de","user_id":"u%d","amount":%v,"qty":%d}`,
		id, ts.UTC().Format(time.RFC3339Nano), tenant, qty%97, amount, qty)}
}

// dedupOrders makes n distinct orders of the hour starting at hour (event
// times spread over [hour, limit)), with a copy of an earlier order of the
// same batch after every 33rd: the events in order, and the copies.
func dedupOrders(prefix string, n int, hour, limit time.Time, rng *rand.Rand) (events, copies []gen.Event) {
	span := limit.Sub(hour)
	var made []gen.Event
	for i := range n {
		e := order(fmt.Sprintf("%s-%d", prefix, i), hour.Add(span*time.Duration(i)/time.Duration(n)), fmt.Sprintf("t%d", i%3), float64(i%50)+0.25, i)
		made = append(made, e)
		events = append(events, e)
		if i%33 == 32 {
			c := made[rng.IntN(len(made))]
			c.Kind = gen.Duplicate
			events, copies = append(events, c), append(copies, c)
		}
	}
	return events, copies
}

// Past the memory bound the window shrinks, oldest hour first, and the
// numbers follow the stated rule: buckets of the hours still held equal
// the de-duplicated reference; in a dropped hour a copy read after the
// drop is counted (never more than every copy, never less than the
// de-duplicated figure). The metrics and the log say so.
//
// One partition, a bound of 24 KiB: the previous hour's 1,000 ids fill a
// 2,048-slot table (16 KiB); the current hour's grows 2 → 4 → 8 KiB, and
// to double again (8 more) it must drop the previous hour: 16 KiB left.
func TestDedupMemoryBound(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 1)
	s := testSchema(t, topic)
	s.DedupWindow = 3 * time.Hour
	v := testView(viewName("dbound"), s, time.Minute, []string{"tenant"})
	t.Cleanup(func() { testenv.DeleteRedisKeys(context.Background(), rdb, "ll:{"+v.Name+"*") })

	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	rng := rand.New(rand.NewPCG(3, 4))
	prev, prevCopies := dedupOrders("prev", 1000, H.Add(-time.Hour), H, rng)
	cur, curCopies := dedupOrders("cur", 1000, H, now, rng)
	// After the drop: copies of the previous hour are counted, copies of
	// the current one are still skipped.
	var late, lateCur []gen.Event
	for i := range 50 {
		late = append(late, gen.Event{Kind: gen.Duplicate, Key: prev[i].Key, Value: prev[i].Value})
	}
	for i := range 20 {
		lateCur = append(lateCur, gen.Event{Kind: gen.Duplicate, Key: cur[900+i].Key, Value: cur[900+i].Value})
	}
	var events []gen.Event
	for _, part := range [][]gen.Event{prev, cur, late, lateCur} {
		events = append(events, part...)
	}
	testenv.Produce(t, brokers, topic, events)
	end := testenv.EndOffsets(t, brokers, topic)

	var logs testenv.SyncBuffer
	reg := prometheus.NewRegistry()
	w, err := New(Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb,
		Registerer: reg, SessionTimeout: 6 * time.Second, DedupMaxBytes: 24 << 10,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitApplied(t, rdb, []*schemas.View{v}, end, 90*time.Second)
	// The gauges as the last flush left them, before the partition goes.
	time.Sleep(300 * time.Millisecond)
	bytes := testutil.ToFloat64(w.m.dedupBytes.WithLabelValues(topic, "0"))
	start := testutil.ToFloat64(w.m.dedupStart.WithLabelValues(topic, "0"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// What must have been applied: every distinct order and the late copies
	// of the dropped hour.
	var applied []gen.Event
	for _, e := range events {
		if e.Kind == gen.Valid {
			applied = append(applied, e)
		}
	}
	applied = append(applied, late...)
	ref := buildReference(t, v, applied, func(int64) bool { return true })
	ref.checkAgainst(t, v, queryAll(t, rdb, v, H.Add(-time.Hour), H.Add(time.Hour)), cellUniqTol)

	skippedDup := testutil.ToFloat64(w.m.skipped.WithLabelValues(v.Name, SkipDuplicate))
	checks := []struct {
		name      string
		got, want float64
	}{
		{"skipped{duplicate}", skippedDup, float64(len(prevCopies) + len(curCopies) + len(lateCur))},
		{"dedup_shrunk_hours_total", testutil.ToFloat64(w.m.dedupShrunk.WithLabelValues(topic)), 1},
		{"dedup_unremembered_total", testutil.ToFloat64(w.m.dedupUnremembered.WithLabelValues(topic)), 0},
		{"dedup_bytes", bytes, 16 << 10},
		{"dedup_window_start_seconds", start, float64(H.Unix())},
		{"dedup_max_bytes", testutil.ToFloat64(w.m.dedupBound), 24 << 10},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(logs.String(), "dropping its oldest hour") || !strings.Contains(logs.String(), "hour="+H.Add(-time.Hour).Format("2006-01-02T15:04:05")) {
		t.Errorf("no log line says the window dropped the previous hour:\n%s", logs.String())
	}
}

// A worker stopped and another started (a restart), then a second worker
// joining the group (a rebalance): each reads its partitions' windows back
// from Kafka before applying anything, so copies whose originals the
// previous owner applied are still skipped. On both Redis set-ups.
func TestDedupAcrossRestartAndRebalance(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) { dedupAcrossRestart(t, brokers, rs.Client(t)) })
	}
}

func dedupAcrossRestart(t *testing.T, brokers []string, rdb redis.UniversalClient) {
	topic := testenv.Topic(t, brokers, 4)
	s := testSchema(t, topic)
	s.DedupWindow = 2 * time.Hour
	v := testView(viewName("drestart"), s, time.Minute, []string{"tenant", "country"})
	t.Cleanup(func() { testenv.DeleteRedisKeys(context.Background(), rdb, "ll:{"+v.Name+"*") })
	views := []*schemas.View{v}
	group := testenv.Name("speed")

	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	rng := rand.New(rand.NewPCG(5, 6))
	first, copies1 := dedupOrders("a", 3000, H.Add(-time.Hour), now, rng)
	// Copies of the first batch's orders in every later one: each straddles
	// a restart or a rebalance.
	again := func(n int) []gen.Event {
		var out []gen.Event
		for range n {
			c := first[rng.IntN(len(first))]
			if c.Kind == gen.Valid {
				c.Kind = gen.Duplicate
				out = append(out, c)
			}
		}
		return out
	}
	second, copies2 := dedupOrders("b", 2000, H.Add(-time.Hour), now, rng)
	second = append(second, again(100)...)
	third, copies3 := dedupOrders("c", 2000, H.Add(-time.Hour), now, rng)
	third = append(third, again(100)...)

	testenv.Produce(t, brokers, topic, first)
	w1, stop1 := startWorker(t, Config{Brokers: brokers, Group: group, Views: views, Redis: rdb})
	waitApplied(t, rdb, views, testenv.EndOffsets(t, brokers, topic), 90*time.Second)
	stop1()

	testenv.Produce(t, brokers, topic, second)
	var log2, log3 testenv.SyncBuffer
	logTo := func(b *testenv.SyncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
	w2, _ := startWorker(t, Config{Brokers: brokers, Group: group, Views: views, Redis: rdb, Logger: logTo(&log2)})
	waitApplied(t, rdb, views, testenv.EndOffsets(t, brokers, topic), 90*time.Second)

	w3, _ := startWorker(t, Config{Brokers: brokers, Group: group, Views: views, Redis: rdb, Logger: logTo(&log3)})
	// Both must own partitions (w2 a second time) before the third batch
	// goes out.
	assigned := func(b *testenv.SyncBuffer) int { return strings.Count(b.String(), "partition assigned") }
	deadline := time.Now().Add(60 * time.Second)
	for assigned(&log3) == 0 || assigned(&log2) <= 4 {
		if time.Now().After(deadline) {
			t.Fatalf("no rebalance onto the second worker:\n%s\n%s", log2.String(), log3.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	testenv.Produce(t, brokers, topic, third)
	waitApplied(t, rdb, views, testenv.EndOffsets(t, brokers, topic), 90*time.Second)
	time.Sleep(300 * time.Millisecond) // the last flush's counts

	var events, applied []gen.Event
	for _, part := range [][]gen.Event{first, second, third} {
		events = append(events, part...)
	}
	for _, e := range events {
		if e.Kind == gen.Valid {
			applied = append(applied, e)
		}
	}
	ref := buildReference(t, v, applied, func(int64) bool { return true })
	ref.checkAgainst(t, v, queryAll(t, rdb, v, H.Add(-time.Hour), H.Add(time.Hour)), cellUniqTol)

	dups := func(w *Worker) float64 { return testutil.ToFloat64(w.m.skipped.WithLabelValues(v.Name, SkipDuplicate)) }
	replayed := testutil.ToFloat64(w2.m.dedupReplayed.WithLabelValues(topic)) + testutil.ToFloat64(w3.m.dedupReplayed.WithLabelValues(topic))
	if got, want := dups(w1)+dups(w2)+dups(w3), float64(len(events)-len(applied)); got != want {
		t.Errorf("skipped{duplicate} over the workers = %v, want %v (%d+%d+%d copies in the batches, 200 across the restarts)",
			got, want, len(copies1), len(copies2), len(copies3))
	}
	if !strings.Contains(log3.String(), "dedup window read back") {
		t.Errorf("the joining worker read no window back:\n%s", log3.String())
	}
	if replayed < float64(len(first)) {
		t.Errorf("the later workers read back %v records, fewer than the first batch's %d", replayed, len(first))
	}
}
