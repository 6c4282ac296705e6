package speed

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// Redis goes away mid-stream: the worker must stop reading (bounded
// memory), store no offset it did not apply, count the Redis errors, and
// once Redis is back apply everything exactly once.
func TestRedisOutageBackpressure(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	direct := testenv.RedisClient(t)
	proxy := testenv.NewCutProxy(t, testenv.RedisAddr(t))
	viaProxy := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{proxy.Addr()},
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { viaProxy.Close() })

	topic := testenv.Topic(t, brokers, 2)
	s := testSchema(t, topic)
	v := testView(viewName("outage"), s, time.Minute, []string{"tenant", "country"})
	views := []*schemas.View{v}
	now := time.Now().UTC()
	events := genEvents(t, s, 50000, now.Add(-30*time.Minute), now, 31, gen.Config{Duplicates: 0.02, Malformed: 0.01})
	before, during := events[:20000], events[20000:]

	reg := prometheus.NewRegistry()
	const maxPending = 2000
	w, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: views, Redis: viaProxy,
		Registerer: reg, MaxPending: maxPending})
	testenv.Produce(t, brokers, topic, before)
	applied := testenv.EndOffsets(t, brokers, topic)
	waitApplied(t, direct, views, applied, 90*time.Second)

	proxy.Cut()
	testenv.Produce(t, brokers, topic, during)
	end := testenv.EndOffsets(t, brokers, topic)
	// Wait until the worker has hit the outage and stopped reading: a flush
	// failed (counted), and every partition has read some of the new
	// records but not all, and stays put for a second (its buffers are
	// full and wait for Redis).
	read := func(p int) int64 {
		return int64(testutil.ToFloat64(w.m.position.WithLabelValues(topic, strconv.Itoa(p)))) - applied[p]
	}
	stopped := func(p int, n int64) bool { return n > 0 && n < end[p]-applied[p] }
	stable, last := 0, [2]int64{-1, -1}
	for deadline := time.Now().Add(30 * time.Second); stable < 10; {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not settle during the outage within 30s: read %d and %d, %v Redis errors",
				read(0), read(1), testutil.ToFloat64(w.m.redisErrors))
		}
		time.Sleep(100 * time.Millisecond)
		cur := [2]int64{read(0), read(1)}
		if cur == last && stopped(0, cur[0]) && stopped(1, cur[1]) && testutil.ToFloat64(w.m.redisErrors) > 0 {
			stable++
		} else {
			stable = 0
		}
		last = cur
	}
	if got := storedOffsets(t, direct, v, 2); got[0] != applied[0] || got[1] != applied[1] {
		t.Errorf("offsets stored while Redis was away: %v, want still %v", got, applied)
	}
	if n := testutil.ToFloat64(w.m.redisErrors); n == 0 {
		t.Error("no Redis errors counted during the outage")
	}
	// Each partition may hold two buffers of maxPending (cells + uniq
	// values: at least one per accepted event) while Redis is away, and no
	// more: it stops reading.
	for p := range 2 {
		read, total := read(p), end[p]-applied[p]
		if read > 2*maxPending*105/100 {
			t.Errorf("partition %d read %d of %d new records while Redis was away; want it to stop after about %d", p, read, total, 2*maxPending)
		} else {
			t.Logf("partition %d read %d of %d new records while Redis was away", p, read, total)
		}
	}

	proxy.Restore()
	waitApplied(t, direct, views, end, 90*time.Second)
	stop()
	ref := buildReference(t, v, events, func(int64) bool { return true })
	ref.checkAgainst(t, v, queryAll(t, direct, v, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)
}

// Workers join and leave one consumer group while records flow: every
// rebalance hands partitions over (final flush by the old owner, reload by
// the new), and the figures must still be exact.
func TestRebalanceExactlyOnce(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 4)
	s := testSchema(t, topic)
	v := testView(viewName("rebalance"), s, time.Minute, []string{"tenant", "country"})
	views := []*schemas.View{v}
	now := time.Now().UTC()
	events := genEvents(t, s, 80000, now.Add(-40*time.Minute), now, 41,
		gen.Config{OutOfOrder: 0.1, MaxDelay: 5 * time.Minute, Duplicates: 0.02, Malformed: 0.01})
	group := testenv.Name("speed")

	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < len(events); i += 4000 {
			testenv.Produce(t, brokers, topic, events[i:min(i+4000, len(events))])
			time.Sleep(400 * time.Millisecond)
		}
	}()
	progress := func(n int64) {
		deadline := time.Now().Add(60 * time.Second)
		for sumOffsets(storedOffsets(t, rdb, v, 4)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no progress to %d records within 60s", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_, stopA := startWorker(t, Config{Brokers: brokers, Group: group, Views: views, Redis: rdb})
	progress(10000)
	_, stopB := startWorker(t, Config{Brokers: brokers, Group: group, Views: views, Redis: rdb})
	progress(30000)
	stopA()
	progress(50000)
	_, stopC := startWorker(t, Config{Brokers: brokers, Group: group, Views: views, Redis: rdb})
	<-produced
	end := testenv.EndOffsets(t, brokers, topic)
	waitApplied(t, rdb, views, end, 120*time.Second)
	stopB()
	stopC()
	ref := buildReference(t, v, events, func(int64) bool { return true })
	ref.checkAgainst(t, v, queryAll(t, rdb, v, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)
}

// Shutdown flushes: with a flush interval longer than the test, nothing
// reaches Redis until the worker is stopped, and then everything does.
func TestGracefulShutdownFlushes(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 2)
	s := testSchema(t, topic)
	v := testView(viewName("shutdown"), s, time.Minute, []string{"tenant"})
	now := time.Now().UTC()
	events := genEvents(t, s, 6000, now.Add(-10*time.Minute), now, 51, gen.Config{Malformed: 0.01})
	testenv.Produce(t, brokers, topic, events)
	end := testenv.EndOffsets(t, brokers, topic)
	w, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb,
		FlushInterval: time.Hour})
	deadline := time.Now().Add(60 * time.Second)
	for p := 0; p < 2; {
		if int64(testutil.ToFloat64(w.m.position.WithLabelValues(topic, strconv.Itoa(p)))) == end[p] {
			p++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d not read to its end within 60s", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := storedOffsets(t, rdb, v, 2); got[0] != 0 || got[1] != 0 {
		t.Fatalf("offsets %v applied before any flush was due", got)
	}
	stop()
	if got := storedOffsets(t, rdb, v, 2); got[0] != end[0] || got[1] != end[1] {
		t.Errorf("after shutdown: offsets %v, want %v", got, end)
	}
	ref := buildReference(t, v, events, func(int64) bool { return true })
	ref.checkAgainst(t, v, queryAll(t, rdb, v, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)
}
