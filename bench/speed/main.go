// Command speed benchmarks the speed layer against the local stack (DESIGN
// §7, issues 19.1, 19.2 and 16.13). On one fresh 4-partition topic of ≥2M
// generated orders it measures, in the same run and on the same records:
//
//	eps:       the speed layer end to end (consume, decode, aggregate, apply
//	           to Redis with offsets), as a child process (this binary
//	           re-executed, so its RSS and CPU are its own), from its first
//	           partition assignment until the offsets stored in Redis reach
//	           the end;
//	raw_eps:   kafka-go's kafka.Reader reading every record, decoding nothing
//	           (before and after eps, the mean reported): the reference the
//	           first issues named, kept for continuity;
//	fetch_eps: the same read through stream.Fetcher, the worker's own read
//	           path (fetch_ratio = eps ÷ fetch_eps, like for like);
//	floor_eps: one loop per partition through stream.Fetcher and the schema's
//	           field decoder on the fields the view reads, doing nothing
//	           else — the least any speed layer must do (floor_ratio);
//	peer_eps:  the Kafka Streams peer (bench/peer, Java 17, Kafka Streams
//	           4.4.0, exactly_once_v2) computing the same view from the same
//	           topic, from its first record read until every result is in its
//	           window store and committed (peer_ratio = eps ÷ peer_eps);
//	           flags -peer-* set its tuning (bench/peer/README.md).
//
// Both sides' results are checked: every valid event (duplicates included:
// the speed layer counts what arrives) is counted once by ours, and the
// peer's store, read through its interactive queries, equals our Redis cells
// window by window (count, min, max exactly, sum to 1e-9, uniq — two HLLs
// with different hashes — within 4% + 3, see compare). A mismatch fails
// the run.
//
// Then, with the worker caught up, the freshness of live traffic produced
// at 50k events/s: time from an event's creation to its being counted in
// Redis, p50 and p99 (bench/internal/freshness), and the worker's peak RSS.
//
// LAMBDALAKE_BENCH_CPUPROFILE=file writes the worker's CPU profile.
//
// -redis cluster runs the same on the stack's Redis Cluster, the view with
// one shard per partition, and logs how its keys spread over the masters
// (`make bench-speed` runs it second, without the peer).
//
// The last line is the DESIGN §7 summary:
//
//	bench speed: redis=single shards=1 raw_eps=… eps=… ratio=… fetch_eps=… fetch_ratio=… floor_eps=… floor_ratio=… peer_eps=… peer_ratio=… peer_equal=true fresh_p50_ms=… fresh_p99_ms=… rss_mb=…
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/bench/internal/freshness"
	"github.com/lambdalake/lambdalake/bench/internal/kafkaref"
	"github.com/lambdalake/lambdalake/bench/internal/kstreams"
	"github.com/lambdalake/lambdalake/bench/internal/launch"
	"github.com/lambdalake/lambdalake/bench/internal/procstat"
	"github.com/lambdalake/lambdalake/bench/internal/stack"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const childEnv = "LAMBDALAKE_BENCH_SPEED_WORKER" // "topic,view,group": run as the worker

const partitions = 4

var brokers = stack.Brokers()

// benchView is the example config's revenue view over the orders schema,
// renamed and pointed at the benchmark's topic.
func benchView(topic, name string) *schemas.View {
	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		log.Fatal(err)
	}
	o := cfg.Schema("orders")
	s, err := schemas.NewSchema(o.Name, topic, o.Time, o.ID, o.Fields)
	if err != nil {
		log.Fatal(err)
	}
	v := *cfg.View("revenue")
	v.Name, v.Schema = name, s
	if stack.ClusterMode() {
		v.Shards = partitions // spread over the cluster's masters
	}
	return &v
}

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	count := flag.Int64("events", 2_000_000, "events in the backlog")
	rate := flag.Float64("rate", 50000, "live events per second for the freshness phase")
	liveFor := flag.Duration("live", 15*time.Second, "how long the live phase produces")
	peer := flag.Bool("peer", true, "run the Kafka Streams peer (bench/peer, `make peer`)")
	peerThreads := flag.Int("peer-threads", runtime.NumCPU(), "the peer's num.stream.threads (default: cores, the best measured; see bench/peer/README.md)")
	peerCache := flag.Int64("peer-cache-bytes", 64<<20, "the peer's statestore.cache.max.bytes")
	peerCommit := flag.Int("peer-commit-ms", 100, "the peer's commit.interval.ms")
	peerStore := flag.String("peer-store", "memory", "the peer's window store: memory or rocksdb")
	peerTopology := flag.String("peer-topology", "local", "the peer's topology: local (per-partition windows, merged by the query) or repartition (groupByKey through a repartition topic)")
	peerBuffer := flag.Bool("peer-buffer", true, "the peer's write-back buffer of live aggregates (local topology)")
	peerGuarantee := flag.String("peer-guarantee", "exactly_once_v2", "the peer's processing.guarantee")
	keepRedis := flag.Bool("keep-redis", false, "leave the view's keys in Redis after the run (they expire with its hot_retention; the offsets hashes stay), to inspect how they spread")
	redisMode := flag.String("redis", "single", "the Redis set-up: single, or cluster (the stack's 3 masters; the view gets one shard per partition)")
	peerJVM := flag.String("peer-jvm", "-Xms1g -Xmx1g -XX:+UseParallelGC", "JVM options of the peer")
	flag.Parse()
	switch *redisMode {
	case "single":
	case "cluster":
		// The worker child reads the set-up from the environment.
		os.Setenv(stack.RedisModeEnv, "cluster")
	default:
		log.Fatalf("-redis: want single or cluster, got %q", *redisMode)
	}
	log.SetFlags(log.Ltime)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Printf("load average at start: %s", procstat.LoadAvg())
	suffix := stack.Suffix()
	topic := "bench-speed-" + suffix
	view := benchView(topic, "bench_speed_"+suffix)
	rdb := stack.Redis()
	defer rdb.Close()
	defer func() {
		if *keepRedis {
			log.Printf("kept the keys of view %s in Redis (-keep-redis): see them per master with `redis-cli -c -p 7001 --scan --pattern 'll:{%s*'` on each master, or CLUSTER COUNTKEYSINSLOT", view.Name, view.Name)
			return
		}
		stack.DeleteRedisView(context.Background(), rdb, view.Name)
	}()
	defer stack.DeleteTopics(brokers, topic)

	// The backlog.
	check(stream.EnsureTopic(ctx, brokers, topic, partitions))
	now := time.Now()
	from := now.Add(-time.Hour)
	g, err := gen.New(gen.Config{Schema: view.Schema, From: from, To: now, Count: *count,
		Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100000},
		// Out-of-order events land up to 4 minutes back: with the age of a
		// duplicate's original on top, every event stays within the
		// peer's 5-minute grace, so both sides must count all of them.
		OutOfOrder: 0.05, MaxDelay: 4 * time.Minute, Duplicates: 0.02, Malformed: 0.01, Seed: 1})
	check(err)
	w := stream.NewWriter(brokers, topic)
	start := time.Now()
	// One sender, so each partition holds the events in generation order
	// and the only disorder is the generator's (≤ 5 minutes, within the
	// peer's grace): concurrent senders interleave whole batches, minutes
	// of event time apart, which a 5-minute grace would rightly drop.
	counts, err := gen.Run(ctx, g, gen.KafkaSink{W: w}, gen.RunConfig{Count: *count, Batch: 10000, Senders: 1})
	w.Close()
	check(err)
	log.Printf("produced %s in %s", counts, time.Since(start).Round(time.Millisecond))
	end, err := kafkaref.EndOffsets(ctx, brokers, topic)
	check(err)
	total := kafkaref.Total(end)
	// The speed layer counts every decodable event (duplicates too); all
	// lie within hot_retention and after B, so none is skipped.
	want := counts.Valid + counts.Duplicate

	// raw_eps, before and after ours, so that load from elsewhere on the
	// machine weighs on both sides alike.
	cpu0 := procstat.SelfCPU()
	rawBefore, err := kafkaref.Reader(ctx, brokers, topic, end)
	check(err)
	log.Printf("raw kafka.Reader: %d records, %.0f/s, %.2f µs CPU each", rawBefore.Records, rawBefore.EPS(), perRecord(procstat.SelfCPU()-cpu0, total))

	// Ours, in a child process.
	child, assigned := startChild(topic, view.Name, "bench-speed-"+suffix)
	defer child.Stop(10 * time.Second)
	var t0 time.Time
	select {
	case t0 = <-assigned:
	case <-time.After(60 * time.Second):
		log.Fatal("worker got no partitions within 60s")
	}
	cpu0 = procstat.CPU(child.Pid())
	check(kafkaref.WaitCaughtUp(ctx, end, 5*time.Minute, kafkaref.SpeedApplied(rdb, view, len(end))))
	el := time.Since(t0)
	eps := float64(total) / el.Seconds()
	// CPU per record is steadier than rates on a shared machine; Redis'
	// and the broker's share is not in it.
	log.Printf("ours (speed layer end to end): %d records in %s, %.0f/s, %.2f µs worker CPU each",
		total, el.Round(time.Millisecond), eps, perRecord(procstat.CPU(child.Pid())-cpu0, total))

	rawAfter, err := kafkaref.Reader(ctx, brokers, topic, end)
	check(err)
	rawEPS := (rawBefore.EPS() + rawAfter.EPS()) / 2
	log.Printf("raw kafka.Reader again: %.0f/s; mean %.0f/s", rawAfter.EPS(), rawEPS)
	cpu0 = procstat.SelfCPU()
	fetch, err := kafkaref.Fetcher(ctx, brokers, topic, end)
	check(err)
	log.Printf("fetch (stream.Fetcher, ours' read path): %.0f/s, %.2f µs CPU each", fetch.EPS(), perRecord(procstat.SelfCPU()-cpu0, total))
	cpu0 = procstat.SelfCPU()
	floor, decoded, err := kafkaref.Floor(ctx, brokers, topic, end, view.Schema, kafkaref.ViewFields(view))
	check(err)
	log.Printf("floor (stream.Fetcher + field decoder): %.0f/s, %.2f µs CPU each, %d of %d decoded",
		floor.EPS(), perRecord(procstat.SelfCPU()-cpu0, total), decoded, total)
	if decoded != want {
		log.Fatalf("floor decoded %d records, want %d (valid + duplicates)", decoded, want)
	}

	// Ours counted every valid event once.
	ours, err := ourWindows(ctx, rdb, view, from.Add(-10*time.Minute), time.Now().Add(time.Minute))
	check(err)
	var oursCount int64
	for _, c := range ours {
		oursCount += c.Orders
	}
	if oursCount != want {
		log.Fatalf("ours counted %d events, want %d (valid %d + duplicates %d)", oursCount, want, counts.Valid, counts.Duplicate)
	}
	log.Printf("ours: %d windows, %d events counted = valid + duplicates", len(ours), oursCount)
	if keys, bytes, err := stack.RedisViewMemory(ctx, rdb, view.Name); err != nil {
		log.Printf("redis memory: %v", err)
	} else {
		log.Printf("redis memory of the view: %d keys, %d bytes (MEMORY USAGE, SAMPLES 0), %.1f bytes per event", keys, bytes, float64(bytes)/float64(total))
	}
	if spread, err := stack.RedisViewSpread(ctx, rdb, view.Name); err != nil {
		log.Printf("redis spread: %v", err)
	} else {
		log.Printf("keys of the view per Redis node (%d shards): %v", max(1, view.Shards), spread)
	}

	// The peer, on the same topic, while ours idles.
	peerEPS, peerEqual := math.NaN(), false
	if *peer {
		appID := "bench-peer-" + suffix
		p, err := kstreams.Start(kstreams.Config{Bootstrap: strings.Join(brokers, ","), Topic: topic, AppID: appID, Expect: want,
			JVMArgs: strings.Fields(*peerJVM),
			Settings: map[string]string{"threads": strconv.Itoa(*peerThreads), "cache-bytes": strconv.FormatInt(*peerCache, 10),
				"commit-ms": strconv.Itoa(*peerCommit), "store": *peerStore, "guarantee": *peerGuarantee, "topology": *peerTopology,
				"buffer": strconv.FormatBool(*peerBuffer)}})
		check(err)
		pr, err := p.Wait(ctx, 10*time.Minute)
		if err != nil {
			p.Stop()
			log.Fatal(err)
		}
		log.Printf("peer (Kafka Streams): %d records read, %d malformed, %d aggregated, %.0f dropped, %.0f/s to the store and committed (%.0f/s to the last aggregate update), %.2f µs CPU each (JVM start included), peak RSS %d MB",
			pr.Read, pr.Malformed, pr.Aggregated, pr.Dropped, pr.EPS, pr.AggregatedEPS, perRecord(pr.CPU, total), pr.PeakRSS>>20)
		peerEPS = pr.EPS
		theirs, err := p.Windows(ctx)
		p.Stop()
		stack.DeleteTopics(brokers, p.InternalTopics()...)
		check(err)
		peerEqual = compare(ours, theirs)
		if pr.Read != total {
			log.Printf("peer read %d records, the topic holds %d", pr.Read, total)
			peerEqual = false
		}
	}

	// Freshness under live traffic: counted from the current bucket on.
	lo := view.Bucket(time.Now().UnixMicro())
	fr, err := freshness.Measure(ctx, freshness.Config{
		Count: func(ctx context.Context) (int64, error) { return counted(ctx, rdb, view, lo) },
		Produce: func(ctx context.Context, rec *freshness.Recorder) (int64, error) {
			return live(ctx, view, *rate, *liveFor, rec)
		}})
	check(err)
	log.Printf("freshness over %d live events at %.0f/s: p50=%s p99=%s max=%s", fr.N, *rate, fr.P50, fr.P99, fr.Max)

	log.Printf("load average at end: %s", procstat.LoadAvg())
	rss := procstat.PeakRSS(child.Pid())
	equal := strconv.FormatBool(peerEqual)
	if !*peer {
		equal = "skipped"
	}
	fmt.Printf("bench speed: redis=%s shards=%d raw_eps=%.0f eps=%.0f ratio=%.2f fetch_eps=%.0f fetch_ratio=%.2f floor_eps=%.0f floor_ratio=%.2f peer_eps=%.0f peer_ratio=%.2f peer_equal=%s fresh_p50_ms=%d fresh_p99_ms=%d rss_mb=%d\n",
		*redisMode, max(1, view.Shards), rawEPS, eps, eps/rawEPS, fetch.EPS(), eps/fetch.EPS(), floor.EPS(), eps/floor.EPS(), peerEPS, eps/peerEPS, equal,
		fr.P50.Milliseconds(), fr.P99.Milliseconds(), rss>>20)
	if *peer && !peerEqual {
		fmt.Fprintln(os.Stderr, "bench speed: FAILED: the peer's results differ from ours (see above)")
		child.Stop(10 * time.Second)
		stack.DeleteRedisView(context.Background(), rdb, view.Name)
		stack.DeleteTopics(brokers, topic)
		os.Exit(1)
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func perRecord(d time.Duration, n int64) float64 { return d.Seconds() * 1e6 / float64(n) }

// startChild re-executes this binary as the worker; assigned receives the
// time the first partition was assigned.
func startChild(topic, view, group string) (*launch.Proc, <-chan time.Time) {
	self, err := os.Executable()
	check(err)
	assigned := make(chan time.Time, 1)
	once := false
	p, err := launch.Start(launch.Config{Name: "worker", Path: self, Env: []string{childEnv + "=" + topic + "," + view + "," + group},
		OnLine: func(line string) {
			if !once && strings.Contains(line, "partition assigned") {
				assigned <- time.Now()
				once = true
			}
		}})
	check(err)
	return p, assigned
}

// runChild is the worker process: a plain speed.Worker on the bench view.
func runChild(spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		log.Fatalf("bad %s=%q", childEnv, spec)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rdb := stack.Redis()
	defer rdb.Close()
	w, err := speed.New(speed.Config{Brokers: brokers, Group: parts[2], Views: []*schemas.View{benchView(parts[0], parts[1])},
		Redis: rdb, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	check(err)
	if path := os.Getenv("LAMBDALAKE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		check(err)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	check(w.Run(ctx))
}

// live produces events of now at rate for d, recording each batch.
func live(ctx context.Context, v *schemas.View, rate float64, d time.Duration, rec *freshness.Recorder) (int64, error) {
	g, err := gen.New(gen.Config{Schema: v.Schema, Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100000}, Seed: 2})
	if err != nil {
		return 0, err
	}
	w := stream.NewWriter(brokers, v.Schema.Topic)
	defer w.Close()
	sent, err := gen.Run(ctx, g, recordingSink{KafkaSink: gen.KafkaSink{W: w}, rec: rec}, gen.RunConfig{Rate: rate, Duration: d, Batch: 500, Senders: 2})
	return sent.Total, err
}

// recordingSink forwards to Kafka and records when each batch was created.
type recordingSink struct {
	gen.KafkaSink
	rec *freshness.Recorder
}

func (s recordingSink) Send(ctx context.Context, batch []gen.Event) error {
	s.rec.Created(len(batch), batch[0].Time)
	return s.KafkaSink.Send(ctx, batch)
}

// counted sums the view's count metric over cells from bucket lo on: the
// version hashes of the hours from lo's on list the buckets, one HGETALL
// each (every shard).
func counted(ctx context.Context, rdb redis.UniversalClient, v *schemas.View, lo int64) (int64, error) {
	var n int64
	for _, sh := range speed.Shards(v) {
		var buckets []int64
		for h := speed.HourOf(lo); h <= time.Now().Add(time.Hour).UnixMicro(); h += time.Hour.Microseconds() {
			vs, err := rdb.HGetAll(ctx, sh.VersionKey(h)).Result()
			if err != nil {
				return 0, err
			}
			for f := range vs {
				if b, _ := strconv.ParseInt(f, 10, 64); b >= lo {
					buckets = append(buckets, b)
				}
			}
		}
		cmds := make([]*redis.MapStringStringCmd, len(buckets))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, b := range buckets {
				cmds[i] = p.HGetAll(ctx, sh.BucketKey(b))
			}
			return nil
		}); err != nil {
			return 0, err
		}
		for _, c := range cmds {
			for f, val := range c.Val() {
				if _, metric, neg, ok := speed.SplitField(f); ok && metric == "orders" && !neg {
					x, _ := strconv.ParseInt(val, 10, 64)
					n += x
				}
			}
		}
	}
	return n, nil
}
