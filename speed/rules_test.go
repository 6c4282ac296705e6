package speed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// produceRaw writes raw records to one partition of topic.
func produceRaw(t *testing.T, brokers []string, topic string, partition int, values ...[]byte) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return partition }), BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// waitOffsets waits until the view stored offset want for every partition
// listed.
func waitOffsets(t *testing.T, rdb redis.UniversalClient, v *schemas.View, want map[int]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := StoredOffsets(context.Background(), rdb, v)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for p, o := range want {
			if got[p] != o {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("view %s: stored offsets %v after %s, want %v", v.Name, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two legal int64 values, MaxInt64 each, in one cell in separate flushes
// (and two 1e308 floats): the worker neither stalls nor double counts, the
// partition's offsets advance, and the cell reads "ovf" (issue #13, 2).
func TestOverflowNeverStalls(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := rs.Client(t)
			topic := testenv.Topic(t, brokers, 1)
			s := layoutSchema(t, topic)
			v := layoutView(viewName("ovf"), s, []string{"tenant"},
				schemas.Metric{Name: "n", Agg: schemas.Count},
				schemas.Metric{Name: "q", Agg: schemas.Sum, Field: "qty"},
				schemas.Metric{Name: "amt", Agg: schemas.Sum, Field: "amount"})
			cleanupView(t, rdb, v)
			reg := prometheus.NewRegistry()
			w, _ := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb,
				Registerer: reg, FlushInterval: 50 * time.Millisecond})
			b := time.Now().UTC().Truncate(time.Minute)
			big := ev(b, `"tenant":"a","country":"x","user":"u","amount":1e308,"qty":9223372036854775807`)
			for i := 1; i <= 2; i++ {
				produceRaw(t, brokers, topic, 0, big)
				waitOffsets(t, rdb, v, map[int]int64{0: int64(i)}, 60*time.Second) // a separate flush each
			}
			produceRaw(t, brokers, topic, 0, ev(b, `"tenant":"a","country":"x","user":"u","amount":1,"qty":1`))
			waitOffsets(t, rdb, v, map[int]int64{0: 3}, 60*time.Second)
			got := rdb.HGetAll(context.Background(), Shards(v)[0].BucketKey(b.UnixMicro())).Val()
			if got["a:n"] != "3" || got["a:q"] != Overflowed || got["a:amt"] != Overflowed {
				t.Errorf("cell after 3 events = %v, want n=3, q and amt %q", got, Overflowed)
			}
			if n := testutil.ToFloat64(w.m.overflowed.WithLabelValues(v.Name)); n != 2 {
				t.Errorf("lambdalake_speed_overflowed_sums_total = %v, want 2", n)
			}
			for _, c := range []prometheus.Collector{w.m.redisErrors, w.m.rejected.WithLabelValues(v.Name), w.m.conflicts.WithLabelValues(v.Name)} {
				if n := testutil.ToFloat64(c); n != 0 {
					t.Errorf("%T: %v, want 0 (no retry, no rejection, no conflict)", c, n)
				}
			}
		})
	}
}

// Every decoded event is judged by schemas.Schema.Admit first: a
// 9999-12-31 event and one an hour ahead (beyond max_future, within
// hot_retention, which the v1 rule took) are skipped "future", one 40 days
// old (past the schema's 30-day raw retention) "expired", and none of them
// reaches Redis.
func TestAdmission(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 1)
	s := layoutSchema(t, topic)
	s.Retention = 30 * 24 * time.Hour
	v := layoutView(viewName("admit"), s, []string{"tenant"}, schemas.Metric{Name: "n", Agg: schemas.Count},
		schemas.Metric{Name: "users", Agg: schemas.Uniq, Field: "user"})
	cleanupView(t, rdb, v)
	now := time.Now().UTC()
	ok := now.Add(-5 * time.Minute)
	rest := `"tenant":"a","country":"x","user":"u","amount":1,"qty":1`
	produceRaw(t, brokers, topic, 0,
		[]byte(`{"ts":"9999-12-31T23:00:00Z",`+rest+`}`),
		ev(now.Add(time.Hour), rest),
		ev(now.Add(-40*24*time.Hour), rest),
		ev(ok, rest))
	reg := prometheus.NewRegistry()
	w, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb, Registerer: reg})
	waitOffsets(t, rdb, v, map[int]int64{0: 4}, 60*time.Second)
	stop()
	for reason, want := range map[string]float64{SkipFuture: 2, SkipExpired: 1, SkipLate: 0, SkipBoundary: 0, SkipMalformed: 0} {
		if got := testutil.ToFloat64(w.m.skipped.WithLabelValues(v.Name, reason)); got != want {
			t.Errorf("skipped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(w.m.accepted.WithLabelValues(v.Name)); got != 1 {
		t.Errorf("accepted = %v, want 1", got)
	}
	sh := Shards(v)[0]
	bucket := v.Bucket(ok.UnixMicro())
	want := []string{sh.OffsetsKey(), sh.BucketKey(bucket), sh.UniqKey(bucket, "a", "users"), sh.VersionKey(HourOf(bucket))}
	got := viewKeys(t, rdb, v.Name)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys in Redis: %q\nwant only the admitted event's: %q", got, want)
	}
}

// A flush Redis rejects for a deterministic reason (here a bucket key of
// another type in the view's namespace) never blocks its partition: it is
// skipped whole (its offsets move, none of its cells is written), counted,
// and the partition goes on. What Redis holds is then exactly the accepted
// events minus the skipped ones: none counted twice.
func TestRejectedFlushIsSkipped(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := rs.Client(t)
			ctx := context.Background()
			topic := testenv.Topic(t, brokers, 1)
			s := layoutSchema(t, topic)
			v := layoutView(viewName("reject"), s, []string{"tenant"}, schemas.Metric{Name: "n", Agg: schemas.Count})
			cleanupView(t, rdb, v)
			sh := Shards(v)[0]
			bad := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
			good := bad.Add(-time.Minute)
			if err := rdb.Set(ctx, sh.BucketKey(bad.UnixMicro()), "not a hash", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			w, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb,
				Registerer: reg, FlushInterval: 50 * time.Millisecond})
			row := func(b time.Time) []byte {
				return ev(b, `"tenant":"a","country":"x","user":"u","amount":1,"qty":1`)
			}
			produceRaw(t, brokers, topic, 0, row(good), row(good))
			waitOffsets(t, rdb, v, map[int]int64{0: 2}, 60*time.Second)
			produceRaw(t, brokers, topic, 0, row(good), row(bad), row(good))
			waitOffsets(t, rdb, v, map[int]int64{0: 5}, 60*time.Second)
			produceRaw(t, brokers, topic, 0, row(good))
			waitOffsets(t, rdb, v, map[int]int64{0: 6}, 60*time.Second)
			stop()
			if n := testutil.ToFloat64(w.m.rejected.WithLabelValues(v.Name)); n < 1 {
				t.Errorf("rejected flushes = %v, want at least 1", n)
			}
			skipped := testutil.ToFloat64(w.m.skipped.WithLabelValues(v.Name, SkipRejected))
			accepted := testutil.ToFloat64(w.m.accepted.WithLabelValues(v.Name))
			n, _ := strconv.ParseFloat(rdb.HGet(ctx, sh.BucketKey(good.UnixMicro()), "a:n").Val(), 64)
			if accepted != 6 || skipped < 1 || n != accepted-skipped || n < 3 {
				t.Errorf("accepted %v, skipped as rejected %v, counted in Redis %v: want 6 accepted and counted = accepted - skipped (≥ 3)", accepted, skipped, n)
			}
			if typ := rdb.Type(ctx, sh.BucketKey(bad.UnixMicro())).Val(); typ != "string" {
				t.Errorf("the foreign key became a %s", typ)
			}
		})
	}
}

// One shard's flush is one atomic step: when Redis rejects shard 1's part
// of a flush, none of shard 1's cells (in any bucket) is written and its
// offsets stay, while shards 0 and 2 apply theirs.
func TestShardFlushIsAtomic(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := rs.Client(t)
			ctx := context.Background()
			s := layoutSchema(t, "atomic")
			v := layoutView(viewName("atomic"), s, []string{"tenant"}, schemas.Metric{Name: "n", Agg: schemas.Count})
			v.Shards = 3
			cleanupView(t, rdb, v)
			b1 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
			b2 := b1.Add(time.Minute)
			shards := Shards(v)
			if err := rdb.Set(ctx, shards[1].BucketKey(b2.UnixMicro()), "x", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			row := func(b time.Time) []byte { return ev(b, `"tenant":"a","country":"x","user":"u","amount":1,"qty":1`) }
			for _, sh := range shards {
				rdb.HSet(ctx, sh.OffsetsKey(), offsetField(s.Topic, sh.Index), 0)
				p, _ := newPlan(v)
				a := newAggregator(p)
				d := schemas.NewDecoder(s)
				var r schemas.Row
				for _, e := range [][]byte{row(b1), row(b2)} {
					if err := d.Decode(e, &r); err != nil {
						t.Fatal(err)
					}
					a.add(&r, a.bucket(&r))
				}
				_, err := apply(ctx, rdb, p, sh, []*aggregator{a}, []span{{offsetField(s.Topic, sh.Index), 0, 2}}, time.Now())
				var rej *errRejected
				if sh.Index == 1 {
					if !errors.As(err, &rej) || !strings.Contains(err.Error(), "LLREJECT") {
						t.Errorf("shard 1: err = %v, want a rejection (LLREJECT)", err)
					}
				} else if err != nil {
					t.Errorf("shard %d: %v", sh.Index, err)
				}
			}
			for _, sh := range shards {
				wantN, wantOff := "1", "2"
				if sh.Index == 1 {
					wantN, wantOff = "", "0"
				}
				if got := rdb.HGet(ctx, sh.BucketKey(b1.UnixMicro()), "a:n").Val(); got != wantN {
					t.Errorf("shard %d: a:n in the first bucket = %q, want %q", sh.Index, got, wantN)
				}
				if got := rdb.HGet(ctx, sh.OffsetsKey(), offsetField(s.Topic, sh.Index)).Val(); got != wantOff {
					t.Errorf("shard %d: stored offset %q, want %q", sh.Index, got, wantOff)
				}
				if sh.Index == 1 && rdb.Exists(ctx, sh.VersionKey(HourOf(b1.UnixMicro()))).Val() != 0 {
					t.Errorf("shard 1: a version hash was written by the rejected flush")
				}
			}
		})
	}
}

// Errors are sorted into what a retry can change (transient: retried) and
// what it cannot (deterministic: the flush is skipped). Error replies are
// made by a real Redis, so they are what the client really returns.
func TestDeterministicErrors(t *testing.T) {
	rdb := testenv.RedisClient(t)
	reply := func(msg string) error {
		return rdb.Eval(context.Background(), "return redis.error_reply(ARGV[1])", nil, msg).Err()
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"our refusal", reply("LLREJECT ll:{v}:m:1 is a string"), true},
		{"a Lua error", rdb.Eval(context.Background(), "return nil + 1", nil).Err(), true},
		{"a command refusing inside the script", rdb.Eval(context.Background(), "return redis.call('HINCRBY', KEYS[1], 'f', 'x')", []string{"ll:{detcheck}:k"}).Err(), true},
		{"memory full inside a script", reply("OOM command not allowed when used memory > 'maxmemory'. script: abc, on @user_script:12."), false},
		{"failover", reply("READONLY You can't write against a read only replica. script: abc, on @user_script:3."), false},
		{"loading", reply("LOADING Redis is loading the dataset in memory"), false},
		{"cluster down", reply("CLUSTERDOWN The cluster is down"), false},
		{"unknown reply", reply("ERR something else"), false},
		{"not reachable", fmt.Errorf("dial tcp: %w", errors.New("connection refused")), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if tt.err == nil && tt.want {
			t.Fatalf("%s: no error to classify", tt.name)
		}
		if got := deterministic(tt.err); got != tt.want {
			t.Errorf("%s (%v): deterministic = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// Changing a view's shard count rebuilds it: a worker started with the new
// count clears the hot data written under the old tags and replays Kafka
// from now - hot_retention into the new ones, so the figures stay exact
// (nothing lost, nothing counted twice) and Whole answers for the new
// count only.
func TestShardCountChangeRebuilds(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := rs.Client(t)
			ctx := context.Background()
			topic := testenv.Topic(t, brokers, 4)
			s := testSchema(t, topic)
			one := testView(viewName("reshard"), s, time.Minute, []string{"tenant", "country"})
			cleanupView(t, rdb, one)
			now := time.Now().UTC()
			events := genEvents(t, s, 8000, now.Add(-30*time.Minute), now, 61, gen.Config{Duplicates: 0.02, Malformed: 0.01})
			testenv.Produce(t, brokers, topic, events)
			end := testenv.EndOffsets(t, brokers, topic)
			ref := buildReference(t, one, events, func(int64) bool { return true })

			_, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{one}, Redis: rdb})
			waitApplied(t, rdb, []*schemas.View{one}, end, 90*time.Second)
			stop()
			ref.checkAgainst(t, one, queryAll(t, rdb, one, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)

			three := *one
			three.Shards = 3
			for _, step := range []struct {
				from, to *schemas.View
			}{{one, &three}, {&three, one}} {
				reg := prometheus.NewRegistry()
				_, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{step.to}, Redis: rdb, Registerer: reg})
				waitApplied(t, rdb, []*schemas.View{step.to}, end, 90*time.Second)
				stop()
				name := fmt.Sprintf("%d to %d shards", ShardCount(step.from), ShardCount(step.to))
				ref.checkAgainst(t, step.to, queryAll(t, rdb, step.to, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)
				// Nothing is left under the other count's tags but an
				// offsets hash holding the new fingerprint only.
				current := map[string]bool{}
				for _, sh := range Shards(step.to) {
					current[sh.Tag()] = true
				}
				for _, k := range viewKeys(t, rdb, one.Name) {
					tag := k[len("ll:") : strings.Index(k, "}:")+1]
					if !current[tag] {
						if !strings.HasSuffix(k, ":offsets") {
							t.Errorf("%s: %s is left from the other shard count", name, k)
						} else if h := rdb.HGetAll(ctx, k).Val(); len(h) != 1 || h[fingerprintField] != shardFingerprint(step.to) {
							t.Errorf("%s: %s = %v, want only the new fingerprint", name, k, h)
						}
					}
				}
				r := NewReader(ReaderConfig{Redis: rdb})
				if whole, err := r.Whole(ctx, step.to); err != nil || !whole {
					t.Errorf("%s: Whole(new count) = %v, %v; want true", name, whole, err)
				}
				if whole, err := r.Whole(ctx, step.from); err != nil || whole {
					t.Errorf("%s: Whole(old count) = %v, %v; want false", name, whole, err)
				}
			}
		})
	}
}

// A view with three shards on the 3-master cluster spreads its keys over
// every master, each shard's offsets in the slot of its cells; the figures
// stay exact. The view's name is picked so that its three tags hash to
// three different masters (which nodes a tag lands on depends on the
// name's hash, see the package doc).
func TestShardsSpreadOverCluster(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	var rdb redis.UniversalClient
	for _, rs := range testenv.RedisSetups(t) {
		if rs.Name == "cluster" {
			rdb = rs.Client(t)
		}
	}
	cc := rdb.(*redis.ClusterClient)
	ctx := context.Background()
	masterOf := func(key string) string {
		c, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return c.Options().Addr
	}
	var name string
	for i := 0; name == ""; i++ {
		n := fmt.Sprintf("%s_%d", viewName("spread"), i)
		seen := map[string]bool{}
		for s := range 3 {
			seen[masterOf("ll:"+Shard{View: n, Index: s, Count: 3}.Tag()+":offsets")] = true
		}
		if len(seen) == 3 {
			name = n
		}
	}
	topic := testenv.Topic(t, brokers, 6)
	s := testSchema(t, topic)
	v := testView(name, s, time.Minute, []string{"tenant", "country"})
	v.Shards = 3
	cleanupView(t, rdb, v)
	now := time.Now().UTC()
	events := genEvents(t, s, 12000, now.Add(-20*time.Minute), now, 71, gen.Config{Duplicates: 0.02, Malformed: 0.01})
	testenv.Produce(t, brokers, topic, events)
	end := testenv.EndOffsets(t, brokers, topic)
	_, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb})
	waitApplied(t, rdb, []*schemas.View{v}, end, 90*time.Second)
	stop()
	buildReference(t, v, events, func(int64) bool { return true }).
		checkAgainst(t, v, queryAll(t, rdb, v, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)

	slot := func(key string) int64 {
		n, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	masters := map[string]int{}
	perShard := map[string]int{}
	for _, k := range viewKeys(t, rdb, v.Name) {
		masters[masterOf(k)]++
		tag := k[len("ll:") : strings.Index(k, "}:")+1]
		off := "ll:" + tag + ":offsets"
		if slot(k) != slot(off) {
			t.Errorf("%s is in slot %d, its shard's offsets in %d", k, slot(k), slot(off))
		}
		perShard[tag]++
	}
	if len(masters) != 3 || len(perShard) != 3 {
		t.Errorf("keys per master %v, per shard %v: want all three of each", masters, perShard)
	}
	t.Logf("keys per master: %v; per shard: %v", masters, perShard)
	for p := range 6 {
		if got := rdb.HGet(ctx, PartitionShard(v, p).OffsetsKey(), offsetField(topic, p)).Val(); got != strconv.FormatInt(end[p], 10) {
			t.Errorf("partition %d: offset %q in shard %s, want %d", p, got, PartitionShard(v, p).Tag(), end[p])
		}
	}
	if whole, err := NewReader(ReaderConfig{Redis: rdb}).Whole(ctx, v); err != nil || !whole {
		t.Errorf("Whole = %v, %v", whole, err)
	}
}

// A worker refuses a view with more shards than its topic has partitions:
// the extra shards would never hold offsets.
func TestMoreShardsThanPartitions(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 2)
	v := testView(viewName("toomany"), testSchema(t, topic), time.Minute, nil)
	v.Shards = 3
	w, err := New(Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Run(ctx); !errors.Is(err, errShards) || !strings.Contains(err.Error(), "views."+v.Name+".shards") {
		t.Errorf("Run = %v, want the shard count refused, naming views.%s.shards", err, v.Name)
	}
	if _, err := Reset(ctx, ResetConfig{Brokers: brokers, Redis: rdb, View: v}); !errors.Is(err, errShards) {
		t.Errorf("Reset = %v, want the shard count refused", err)
	}
}
