// Command serve benchmarks the serving layer (DESIGN §7, issues 16.11 and
// 18): `lambdalake serve` on loopback answering a dashboard's mix of
// queries while data arrives, with data in both layers.
//
// Preparation (not timed): a folder lake (a temp dir; DuckDB cannot reach
// LocalStack S3 here) gets raw Parquet files for the last 24 hours of
// orders (-events) and pageviews (-pageviews), written as the compactor lays
// them out; recompute.Recomputer computes the hours before B for both views
// (revenue, traffic). B is one hour before the current hour (-mode
// default: batch serves all but the last two hours) or six hours before it
// (-mode lag: batch six hours behind). A `lambdalake speed` child consumes
// fresh topics holding the events from B on, so [B, now) are Redis cells.
// Every name (topics, views, groups) is unique to the run.
//
// Check: before any load, each view's total over the 24 hours must equal
// the events generated (every valid event counted once, by exactly one
// layer), with B where it should be and no gaps; otherwise the run fails.
//
// Load (`lambdalake serve` as a child, real TCP on 127.0.0.1, the example
// config's read token), while the generator keeps producing -ingest events/s
// (two thirds orders, a third pageviews) into the speed layer:
//
//  1. the mix (bench/internal/querymix): -clients clients for -duration,
//     -repeat of the requests repeating a recent query (a dashboard
//     refresh), the rest new; rps, p50, p99, errors, and the cache hit rate
//     from the server's own counters (fresh and stale cache hits and
//     shared flights over all answers);
//  2. uncached: the same clients for -duration, every query new (never sent
//     before in the run), so each answer is computed: uncached_rps,
//     uncached_p50_ms, uncached_p99_ms, uncached_errors (closed loop: the
//     throughput; its latency is about clients ÷ throughput), and the
//     server's CPU time per answer, uncached_server_cpu_ms;
//  3. paced: every query new, offered at -rate requests/s (open loop,
//     spread over the same clients, a latency counted from when its
//     request was due): paced_rps, paced_p50_ms, paced_p99_ms, paced_errors;
//  4. solo (logged only): 400 new queries one at a time, their p50/p90/p99
//     and the slowest with their size and Server-Timing: what a tail cannot
//     go below;
//  5. against DuckDB: -duck new queries, each answered once by our server
//     (one client, uncached: single_ms is their median) and by DuckDB
//     (Python, .venv-duckdb, `make duckdb`, threads = the machine's cores,
//     the median of 3 runs inside one process each, from the raw files, with
//     exact count distinct): duckdb_ms is the median over the queries,
//     speedup = duckdb_ms ÷ single_ms.
//
// Each load phase also logs its p99 per second (by when requests were
// due), so a few seconds of stall show apart from steady queueing, and the
// uncached phase the clients' own CPU per answer, the server's peak RSS and
// the speed reader's cache counters.
//
// Goals (issue 18; printed met/not met): uncached p50 ≤ 10 ms and p99 ≤ 50
// ms at 1,000 requests/s offered (the paced phase), ≥ 1,000 requests/s
// uncached (closed loop), 0 errors; in -mode lag paced p99 ≤ 250 ms.
// Client and server share this machine's cores.
//
// The last line is the DESIGN §7 summary:
//
//	bench serve: mode=… batch_lag_h=… clients=… rps=… p50_ms=… p99_ms=… errors=0 cache_hit_rate=… repeat_share=… uncached_rps=… uncached_p50_ms=… uncached_p99_ms=… uncached_errors=0 uncached_server_cpu_ms=… paced_rate=… paced_rps=… paced_p50_ms=… paced_p99_ms=… paced_errors=0 single_ms=… duckdb_ms=… speedup=…
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/bench/internal/duck"
	"github.com/lambdalake/lambdalake/bench/internal/kafkaref"
	"github.com/lambdalake/lambdalake/bench/internal/launch"
	"github.com/lambdalake/lambdalake/bench/internal/procstat"
	"github.com/lambdalake/lambdalake/bench/internal/querymix"
	"github.com/lambdalake/lambdalake/bench/internal/rawfiles"
	"github.com/lambdalake/lambdalake/bench/internal/stack"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

const token = "change-me-read-only-token" // the example config's read:views token

// dataset is one view's data: its schema's events and where they went.
type dataset struct {
	view   *schemas.View
	card   map[string]int
	events [][]byte
	hot    [][]byte
	filter []string // values of the first dimension
	groups []int
}

func main() {
	events := flag.Int64("events", 1_000_000, "orders over the 24 hours")
	pageviews := flag.Int64("pageviews", 500_000, "pageviews over the 24 hours")
	clients := flag.Int("clients", 64, "concurrent clients")
	rate := flag.Float64("rate", 1000, "offered requests/s of the paced phase (open loop)")
	duration := flag.Duration("duration", 20*time.Second, "duration of each load phase")
	mode := flag.String("mode", "default", "default (B one hour before the current hour) or lag (B six hours before it)")
	repeat := flag.Float64("repeat", 0.2, "share of the mix's requests that repeat a recent query")
	ingest := flag.Float64("ingest", 3000, "live events/s into the speed layer during the load")
	duckN := flag.Int("duck", 10, "queries compared with DuckDB")
	python := flag.String("python", duck.DefaultPython, "Python with duckdb installed (make duckdb)")
	keep := flag.Bool("keep", false, "keep the lake folder")
	cpuProfile := flag.String("cpuprofile", "", "write the server's CPU profile over the uncached phase to this file (and its allocations since start to the same name, .allocs.pprof)")
	cacheTTL := flag.String("cache-ttl", "", "http.cache_ttl of the server (default: the config default, 1s); 0s turns the answer cache off, and the uncached and paced phases then draw queries as the mix does, sent before or not (half end now)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	ctx := context.Background()
	lag := time.Hour
	switch *mode {
	case "default":
	case "lag":
		lag = 6 * time.Hour
	default:
		log.Fatalf("-mode: want default or lag, got %q", *mode)
	}
	log.Printf("load average at start: %s", procstat.LoadAvg())

	dir, err := os.MkdirTemp("", "bench-serve-")
	check(err)
	if !*keep {
		defer os.RemoveAll(dir)
	}
	suffix := stack.Suffix()
	addr, err := launch.FreeAddr()
	check(err)
	run, err := launch.ExampleConfig(launch.Names{Suffix: suffix, LakeURL: "file://" + dir, HTTPAddr: addr, CacheTTL: *cacheTTL})
	check(err)
	cfgPath := filepath.Join(dir, "lambdalake.yaml")
	check(os.WriteFile(cfgPath, []byte(run.YAML), 0o644))
	cfg, err := config.Parse([]byte(run.YAML), nil)
	check(err)
	store, err := lake.NewDirStore(dir)
	check(err)
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	brokers := cfg.Kafka.Brokers
	for _, v := range run.View {
		defer stack.DeleteRedisView(context.Background(), rdb, v)
	}
	for _, t := range run.Topic {
		defer stack.DeleteTopics(brokers, t)
	}

	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	to := H.Add(time.Hour)
	from, B := to.Add(-24*time.Hour), H.Add(-lag)
	sets := []*dataset{
		{view: cfg.View(run.View["revenue"]), card: map[string]int{"tenant": 10, "country": 20, "user_id": 100_000}, groups: []int{10, 20}},
		{view: cfg.View(run.View["traffic"]), card: map[string]int{"site": 10, "visitor": 50_000}, groups: []int{10, 2}},
	}
	counts := []int64{*events, *pageviews}

	// Raw lake for 24 hours; recompute the hours before B.
	rc, err := recompute.New(recompute.Config{Store: store, Group: cfg.Compact.Group, Registerer: prometheus.NewRegistry(),
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			_, err := boundary.Publish(ctx, rdb, view, b)
			return err
		})})
	check(err)
	for i, d := range sets {
		s := d.view.Schema
		t0 := time.Now()
		g, err := gen.New(gen.Config{Schema: s, From: from, To: now, Count: counts[i], Seed: 42 + uint64(i), Cardinality: d.card})
		check(err)
		for range counts[i] {
			d.events = append(d.events, g.Next(now).Value)
		}
		var files int
		d.hot, files, err = writeRaw(ctx, store, s, d.events, B)
		check(err)
		for k := range d.card[d.view.Dimensions[0]] {
			d.filter = append(d.filter, d.view.Dimensions[0]+"-"+strconv.Itoa(k))
		}
		log.Printf("%s: %d events into %d raw files in %v", s.Name, len(d.events), files, time.Since(t0).Round(time.Millisecond))
		cp, _ := json.Marshal(raw.Checkpoint{NextOffset: int64(len(d.events)), Watermark: B})
		check(lake.PutBytes(ctx, store, lake.CheckpointKey(cfg.Compact.Group, s.Topic, 0), cp))
		t0 = time.Now()
		res, err := rc.Recompute(ctx, d.view, recompute.Options{})
		check(err)
		if !res.Boundary.Equal(B) {
			log.Fatalf("%s: B = %s, want %s", d.view.Name, res.Boundary, B)
		}
		log.Printf("%s: recomputed %d hours in %v: B = %s", d.view.Name, res.Hours, time.Since(t0).Round(time.Millisecond), B.Format(time.RFC3339))

		// The hot part into Kafka, for the speed layer.
		check(stream.EnsureTopic(ctx, brokers, s.Topic, 2))
		w := stream.NewWriter(brokers, s.Topic)
		msgs := make([]kafka.Message, len(d.hot))
		for i, b := range d.hot {
			msgs[i] = kafka.Message{Value: b}
		}
		for i := 0; i < len(msgs); i += 10000 {
			check(w.WriteMessages(ctx, msgs[i:min(i+10000, len(msgs))]...))
		}
		check(w.Close())
	}

	bin, err := launch.Build(dir)
	check(err)
	t0 := time.Now()
	worker, err := launch.Start(launch.Config{Name: "speed", Path: bin, Args: []string{"speed", "--config", cfgPath}})
	check(err)
	defer worker.Stop(10 * time.Second)
	for _, d := range sets {
		end, err := kafkaref.EndOffsets(ctx, brokers, d.view.Schema.Topic)
		check(err)
		check(kafkaref.WaitCaughtUp(ctx, end, 3*time.Minute, kafkaref.SpeedApplied(rdb, d.view, len(end))))
	}
	log.Printf("speed layer applied %d + %d events from %s in %v", len(sets[0].hot), len(sets[1].hot), B.Format(time.RFC3339), time.Since(t0).Round(time.Millisecond))

	serveArgs := []string{"serve", "--config", cfgPath}
	var pprofAddr string
	if *cpuProfile != "" {
		pprofAddr, err = launch.FreeAddr()
		check(err)
		serveArgs = append(serveArgs, "--pprof", pprofAddr)
	}
	srv, err := launch.Start(launch.Config{Name: "serve", Path: bin, Args: serveArgs,
		Env: []string{"LAMBDALAKE_LOG_LEVEL=warn"}})
	check(err)
	defer srv.Stop(10 * time.Second)
	base := "http://" + addr
	check(launch.WaitReady(ctx, base, 30*time.Second))

	// Every valid event counted once, before live data adds to it.
	for _, d := range sets {
		check(verify(ctx, base, d, from, to, B))
	}

	// Live ingest while the clients run.
	ictx, stopIngest := context.WithCancel(ctx)
	var ingestWG sync.WaitGroup
	for i, d := range sets {
		rate := *ingest * []float64{2.0 / 3, 1.0 / 3}[i]
		ingestWG.Add(1)
		go func() {
			defer ingestWG.Done()
			g, err := gen.New(gen.Config{Schema: d.view.Schema, Cardinality: d.card, Seed: 7 + uint64(i)})
			if err != nil {
				log.Printf("ingest: %v", err)
				return
			}
			w := stream.NewWriter(brokers, d.view.Schema.Topic)
			defer w.Close()
			if _, err := gen.Run(ictx, g, gen.KafkaSink{W: w}, gen.RunConfig{Rate: rate, Batch: 200, Senders: 1}); err != nil && ictx.Err() == nil {
				log.Printf("ingest: %v", err)
			}
		}()
	}
	defer func() {
		stopIngest()
		ingestWG.Wait()
	}()

	var views []querymix.View
	for _, d := range sets {
		views = append(views, querymix.View{Name: d.view.Name, Granularity: d.view.Granularity, Dimensions: d.view.Dimensions,
			FilterValues: d.filter, Groups: d.groups})
	}
	mix := querymix.New(querymix.Config{Views: views, Repeat: *repeat, Seed: 1})
	log.Printf("mix: %s", mix)

	// 1. The mix.
	c0, err := querymix.ScrapeCache(ctx, base)
	check(err)
	load := querymix.Run(ctx, querymix.LoadConfig{Base: base, Token: token, Clients: *clients, Duration: *duration, Next: mix.Next})
	c1, err := querymix.ScrapeCache(ctx, base)
	check(err)
	cache := c1.Sub(c0)
	if !cache.Found {
		log.Printf("the server exports no lambdalake_serving_compute_seconds: cache hit rate unknown")
	}
	logLoad("mix", load)
	log.Printf("mix: %d repeats sent (%.2f), server: %.0f computed, %.0f cache hits, %.0f stale, %.0f shared: hit rate %.3f",
		load.Repeats, float64(load.Repeats)/float64(max(1, load.Requests)), cache.Computed, cache.Hits, cache.Stale, cache.Shared, cache.HitRate())

	// 2. Uncached: every query new.
	fresh := func() (string, bool) { return mix.NewQuery().Path(), false }
	if d, err := time.ParseDuration(*cacheTTL); err == nil && d == 0 {
		// No answer cache: a repeated query is computed too, so queries
		// need not be new, and half end now as in the mix.
		fresh = func() (string, bool) { return mix.AnyQuery().Path(), false }
	}
	c0 = c1
	cpu0, self0 := procstat.CPU(srv.Pid()), procstat.SelfCPU()
	profiled := launch.ProfileDuring(ctx, pprofAddr, *duration-time.Second, *cpuProfile)
	live := func(path string) bool { return querymix.TouchesHour(path, time.Now()) }
	unc := querymix.Run(ctx, querymix.LoadConfig{Base: base, Token: token, Clients: *clients, Duration: *duration, Next: fresh, Live: live})
	c1, err = querymix.ScrapeCache(ctx, base)
	check(err)
	logLoad("uncached", unc)
	check(<-profiled)
	if *cpuProfile != "" {
		// Allocations since the server started, beside the CPU profile:
		// what the garbage collector has to keep up with.
		b, err := querymix.Get(ctx, http.DefaultClient, "http://"+pprofAddr+"/debug/pprof/allocs", "")
		check(err)
		check(os.WriteFile(strings.TrimSuffix(*cpuProfile, ".pprof")+".allocs.pprof", b, 0o644))
	}
	// CPU time of the server per answer: what load on a shared machine
	// moves least (latency and requests/s move with every other process).
	srvCPU := float64((procstat.CPU(srv.Pid()) - cpu0).Microseconds()) / 1000 / float64(max(1, unc.Requests))
	log.Printf("uncached: the server used %.2f ms of CPU per answer (%d cores: at most %.0f answers/s for the server alone)",
		srvCPU, runtime.NumCPU(), float64(runtime.NumCPU())*1000/max(srvCPU, 0.001))
	log.Printf("uncached: this process (the clients, and the ingest generator) used %.2f ms of CPU per answer",
		float64((procstat.SelfCPU()-self0).Microseconds())/1000/float64(max(1, unc.Requests)))
	log.Printf("uncached: server hit rate %.3f (should be ~0)", c1.Sub(c0).HitRate())
	logSpeedCache(ctx, base, "uncached")
	logServingCaches(ctx, base, "uncached")
	log.Printf("uncached: server peak RSS %d MiB", procstat.PeakRSS(srv.Pid())>>20)

	// 3. Paced: every query new, offered at -rate (open loop). The goals'
	// latencies are read here: at a closed loop's saturation p50 is about
	// clients ÷ throughput, whatever the server does per request.
	c0 = c1
	paced := querymix.Run(ctx, querymix.LoadConfig{Base: base, Token: token, Clients: *clients, Duration: *duration, Next: fresh, Rate: *rate, Live: live})
	c1, err = querymix.ScrapeCache(ctx, base)
	check(err)
	logLoad(fmt.Sprintf("paced at %.0f/s", *rate), paced)
	log.Printf("paced: server hit rate %.3f (should be ~0)", c1.Sub(c0).HitRate())

	// What one query costs alone: the floor under the tails above.
	check(solo(ctx, base, mix, 400))

	// 4. Against DuckDB, query by query.
	single, duckMS, err := againstDuckDB(ctx, *python, dir, base, sets, mix, *duckN)
	check(err)
	stopIngest()
	ingestWG.Wait()

	log.Printf("load average at end: %s", procstat.LoadAvg())
	goal := func(name string, ok bool) {
		log.Printf("goal %s: %s", name, map[bool]string{true: "met", false: "not met"}[ok])
	}
	goal(fmt.Sprintf("uncached p50 ≤ 10 ms at %.0f/s offered (%.2f)", *rate, paced.Pct(0.5)), paced.Pct(0.5) <= 10)
	goal(fmt.Sprintf("uncached p99 ≤ 50 ms at %.0f/s offered (%.2f)", *rate, paced.Pct(0.99)), paced.Pct(0.99) <= 50)
	goal(fmt.Sprintf("≥ 1,000 requests/s uncached (%.0f)", unc.RPS()), unc.RPS() >= 1000)
	goal(fmt.Sprintf("0 errors (%d + %d + %d)", load.Errors, unc.Errors, paced.Errors), load.Errors+unc.Errors+paced.Errors == 0)
	if *mode == "lag" {
		goal(fmt.Sprintf("batch 6h behind: uncached p99 ≤ 250 ms at %.0f/s offered (%.2f)", *rate, paced.Pct(0.99)), paced.Pct(0.99) <= 250)
	}
	fmt.Printf("bench serve: mode=%s batch_lag_h=%.0f clients=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d cache_hit_rate=%.3f repeat_share=%.2f uncached_rps=%.0f uncached_p50_ms=%.2f uncached_p99_ms=%.2f uncached_errors=%d uncached_server_cpu_ms=%.2f paced_rate=%.0f paced_rps=%.0f paced_p50_ms=%.2f paced_p99_ms=%.2f paced_errors=%d single_ms=%.2f duckdb_ms=%.1f speedup=%.1f\n",
		*mode, H.Sub(B).Hours(), *clients, load.RPS(), load.Pct(0.5), load.Pct(0.99), load.Errors, cache.HitRate(), *repeat,
		unc.RPS(), unc.Pct(0.5), unc.Pct(0.99), unc.Errors, srvCPU, *rate, paced.RPS(), paced.Pct(0.5), paced.Pct(0.99), paced.Errors, single, duckMS, duckMS/single)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func logLoad(phase string, r querymix.LoadResult) {
	log.Printf("%s: %d requests in %v: %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors",
		phase, r.Requests, r.Elapsed.Round(time.Millisecond), r.RPS(), r.Pct(0.5), r.Pct(0.99), r.Pct(1), r.Errors)
	// A tail from a stall sits in a few seconds; one from steady queueing in all.
	if sec, p99, n := r.Worst(); p99 >= 0 {
		log.Printf("%s: worst second +%ds: p99 %.2f ms over its %d requests; p99 per second: %s", phase, sec, p99, n, r.SecondsP99Text())
	}
	if len(r.Live) > 0 {
		log.Printf("%s: the %d requests touching the current hour (a live part): p50 %.2f ms, p99 %.2f ms", phase, len(r.Live), r.LivePct(0.5), r.LivePct(0.99))
	}
	if r.FirstError != "" {
		log.Printf("%s: first error: %s", phase, r.FirstError)
	}
}

// logSpeedCache logs the speed reader's cache counters so far: a speed read
// that misses computes rollups from decoded buckets, or reads Redis.
func logSpeedCache(ctx context.Context, base, phase string) {
	var parts []string
	for _, kind := range []string{"bucket", "rollup"} {
		for _, res := range []string{"hit", "miss"} {
			n, err := querymix.ScrapeSeries(ctx, base+"/metrics", fmt.Sprintf(`lambdalake_speed_read_cache_lookups_total{kind="%s",result="%s"}`, kind, res))
			if err != nil {
				log.Printf("%s: scrape: %v", phase, err)
				return
			}
			parts = append(parts, fmt.Sprintf("%s %s %.0f", kind, res, n))
		}
	}
	f, _ := querymix.ScrapeSeries(ctx, base+"/metrics", "lambdalake_speed_read_buckets_fetched_total")
	ev, _ := querymix.ScrapeSeries(ctx, base+"/metrics", "lambdalake_speed_read_cache_evictions_total")
	by, _ := querymix.ScrapeSeries(ctx, base+"/metrics", "lambdalake_speed_read_cache_bytes")
	en, _ := querymix.ScrapeSeries(ctx, base+"/metrics", "lambdalake_speed_read_cache_entries")
	log.Printf("%s: speed read cache so far: %s; buckets fetched %.0f, evictions %.0f; now %.0f entries, %.0f MiB",
		phase, strings.Join(parts, ", "), f, ev, en, by/(1<<20))
}

// logServingCaches logs the serving caches' counters so far: a cube miss
// builds a batch hour's cube from its view rows, a rollup miss rolls one up.
func logServingCaches(ctx context.Context, base, phase string) {
	var parts []string
	for _, c := range []string{"answers", "rollups", "cubes"} {
		var v [5]float64
		for i, series := range []string{
			`lambdalake_serving_cache_lookups_total{cache="%s",result="hit"}`,
			`lambdalake_serving_cache_lookups_total{cache="%s",result="miss"}`,
			`lambdalake_serving_cache_evictions_total{cache="%s"}`,
			`lambdalake_serving_cache_entries{cache="%s"}`,
			`lambdalake_serving_cache_bytes{cache="%s"}`,
		} {
			n, err := querymix.ScrapeSeries(ctx, base+"/metrics", fmt.Sprintf(series, c))
			if err != nil {
				log.Printf("%s: scrape: %v", phase, err)
				return
			}
			v[i] = n
		}
		parts = append(parts, fmt.Sprintf("%s hit %.0f miss %.0f evicted %.0f, now %.0f entries %.0f MiB", c, v[0], v[1], v[2], v[3], v[4]/(1<<20)))
	}
	log.Printf("%s: serving caches so far: %s", phase, strings.Join(parts, "; "))
}

// verify checks one view's answer over the whole range before any load:
// B where it should be, no gaps, and every generated event counted once.
func verify(ctx context.Context, base string, d *dataset, from, to, b time.Time) error {
	q := querymix.Query{View: d.view.Name, From: from, To: to, Step: time.Hour}
	body, err := querymix.Get(ctx, querymix.Client(1), base+q.Path(), token)
	if err != nil {
		return fmt.Errorf("verify %s: %w", d.view.Name, err)
	}
	var a struct {
		Boundary string           `json:"boundary"`
		Gaps     []any            `json:"gaps"`
		Rows     []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("verify %s: %w", d.view.Name, err)
	}
	count := d.view.Metrics[0].Name // orders, views: the count metric comes first
	if d.view.Metrics[0].Agg != schemas.Count {
		return fmt.Errorf("verify %s: its first metric is not a count", d.view.Name)
	}
	var total float64
	for _, r := range a.Rows {
		total += r[count].(float64)
	}
	log.Printf("verify %s: %d rows, boundary %s, gaps %v, %v %s of %d events", d.view.Name, len(a.Rows), a.Boundary, a.Gaps, total, count, len(d.events))
	if a.Boundary != b.Format(time.RFC3339) || len(a.Gaps) != 0 {
		return fmt.Errorf("verify %s: boundary %s gaps %v, want %s and none", d.view.Name, a.Boundary, a.Gaps, b.Format(time.RFC3339))
	}
	if int64(total) != int64(len(d.events)) {
		return fmt.Errorf("verify %s: %v events counted, want every one of %d once", d.view.Name, total, len(d.events))
	}
	return nil
}

// duckQueries runs each SQL statement 3 times in one DuckDB process and
// prints the median time of each, in ms.
const duckQueries = `
import duckdb, statistics, sys, time
threads, sqls = sys.argv[1], sys.argv[2].split(";\n")
con = duckdb.connect()
con.execute("SET threads=" + threads)
con.execute("SET enable_progress_bar=false")
con.execute("SET TimeZone='UTC'")
out = []
for sql in sqls:
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        con.execute(sql).fetchall()
        ts.append((time.perf_counter() - t0) * 1000)
    out.append(f"{statistics.median(ts):.3f}")
print(" ".join(out))
`

// solo sends n new queries one at a time and logs their latency
// percentiles and the slowest ones with their answer sizes: a p99 under
// load cannot be below what the slowest queries cost alone.
func solo(ctx context.Context, base string, mix *querymix.Mix, n int) error {
	c := querymix.Client(1)
	type one struct {
		ms           float64
		bytes        int
		path, timing string
	}
	var all []one
	for range n {
		p := mix.NewQuery().Path()
		t0 := time.Now()
		b, h, err := querymix.GetHeader(ctx, c, base+p, token)
		if err != nil {
			return fmt.Errorf("solo %s: %w", p, err)
		}
		all = append(all, one{float64(time.Since(t0).Microseconds()) / 1000, len(b), p, h.Get("Server-Timing")})
	}
	slices.SortFunc(all, func(a, b one) int { return cmp.Compare(a.ms, b.ms) })
	pct := func(p float64) float64 { return all[min(len(all)-1, int(p*float64(len(all))))].ms }
	log.Printf("solo: %d new queries one at a time: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", n, pct(0.5), pct(0.9), pct(0.99), pct(1))
	for _, x := range all[max(0, len(all)-8):] {
		log.Printf("solo: %.2f ms, %d bytes, server %s: %s", x.ms, x.bytes, x.timing, x.path)
	}
	return nil
}

// againstDuckDB answers n new queries with our server (one client, each
// uncached) and with DuckDB from the raw files, and returns the median times.
func againstDuckDB(ctx context.Context, python, dir, base string, sets []*dataset, mix *querymix.Mix, n int) (oursMS, duckMS float64, err error) {
	byName := map[string]*schemas.View{}
	for _, d := range sets {
		byName[d.view.Name] = d.view
	}
	c := querymix.Client(1)
	var ours []float64
	var sqls []string
	for range n {
		q := mix.NewQuery()
		t0 := time.Now()
		if _, err := querymix.Get(ctx, c, base+q.Path(), token); err != nil {
			return 0, 0, fmt.Errorf("uncached query %s: %w", q.Path(), err)
		}
		ours = append(ours, float64(time.Since(t0).Microseconds())/1000)
		sqls = append(sqls, duckSQL(dir, byName[q.View], q))
	}
	f, err := duck.Run(ctx, python, duckQueries, strconv.Itoa(runtime.NumCPU()), strings.Join(sqls, ";\n"))
	if err != nil {
		return 0, 0, err
	}
	theirs, err := duck.Floats(f, n)
	if err != nil {
		return 0, 0, err
	}
	log.Printf("against DuckDB, %d queries: ours (one client, uncached) %v ms; DuckDB %v ms", n, ours, theirs)
	return median(ours), median(theirs), nil
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}

// duckSQL is a mix query as DuckDB SQL over the view's raw files: the same
// buckets, groups and filter, exact count distinct for uniq.
func duckSQL(dir string, v *schemas.View, q querymix.Query) string {
	s := v.Schema
	stepMS := q.Step.Milliseconds()
	sel := []string{fmt.Sprintf("epoch_ms(%s) // %d * %d AS t", s.Time, stepMS, stepMS)}
	sel = append(sel, q.GroupBy...)
	for _, m := range v.Metrics {
		switch m.Agg {
		case schemas.Count:
			sel = append(sel, "count(*) AS "+m.Name)
		case schemas.Uniq:
			sel = append(sel, fmt.Sprintf("count(DISTINCT %s) AS %s", m.Field, m.Name))
		default:
			sel = append(sel, fmt.Sprintf("%s(%s) AS %s", m.Agg, m.Field, m.Name))
		}
	}
	where := fmt.Sprintf("%s >= make_timestamp(%d) AND %s < make_timestamp(%d)", s.Time, q.From.UnixMicro(), s.Time, q.To.UnixMicro())
	if q.Where != "" {
		dim, val, _ := strings.Cut(q.Where, ":")
		where += " AND " + dim + " = " + duck.Quote(val)
	}
	return fmt.Sprintf("SELECT %s FROM read_parquet('%s/raw/%s/*/*/*.parquet', hive_partitioning=1) WHERE %s GROUP BY ALL ORDER BY ALL",
		strings.Join(sel, ", "), dir, s.Name, where)
}

// writeRaw writes the events as raw files of partition 0 (offsets in
// generation order, one file per event hour) and returns the events at or
// after b, which the speed layer gets.
func writeRaw(ctx context.Context, store lake.Store, s *schemas.Schema, evs [][]byte, b time.Time) (hot [][]byte, files int, err error) {
	recs := make([]rawfiles.Record, len(evs))
	dec := schemas.NewDecoder(s)
	var row schemas.Row
	for i, e := range evs {
		recs[i] = rawfiles.Record{Offset: int64(i), Value: e}
		if dec.Decode(e, &row) == nil && s.TimeMicros(&row) >= b.UnixMicro() {
			hot = append(hot, e)
		}
	}
	files, err = rawfiles.WriteFlush(ctx, store, s, 0, recs)
	return hot, files, err
}
