// Command mixed runs the whole system at once on the real stack, as a user
// runs it (DESIGN §7, issue 19.4), and measures it under that load.
//
// The roles run as child processes of this bench, each the lambdalake
// binary built from this tree with one config (every name unique to the
// run, the lake on LocalStack S3): `speed`, `compact`, `jobs` (recompute
// every 10 s) and `serve`; with -all, one `lambdalake all` process runs
// them all (one heap, one garbage collector, one /metrics).
//
// First, not measured: `lambdalake gen` writes a history (-history orders
// and half as many pageviews over the last -span), and the bench waits for
// speed and compaction to catch up and for the jobs' recompute to bring B
// to the last closed hour. Before that recompute the speed layer answers
// the whole history, a transient of a fresh install that the window's
// first seconds measured until 2026-12-01. Then, for
// -duration (60 s), at once:
//
//   - `lambdalake gen` produces live orders at -rate (50,000/s);
//   - -clients (64) query clients send the serve benchmark's mix
//     (bench/internal/querymix, -repeat of requests repeating a recent query);
//   - a probe writes 100 orders/s of its own tenant and polls the speed
//     layer (speed.Reader, the serving layer's read path) for their count:
//     creation → counted in Redis, p50 and p99 (bench/internal/freshness);
//   - every second the speed layer's lag (records not yet applied) and
//     the compactor's (records not yet consumed) are sampled.
//
// Summary figures: ingest_eps (records the topic gained per second while gen
// ran), fresh_p50_ms/fresh_p99_ms, query_rps and query_p99_ms (successful
// answers), errors (failed queries), recompute_runs (ok runs in the window,
// from the jobs runner's /metrics), lag_max (the largest lag sampled, either
// role). Goals (printed met/not met): fresh p99 ≤ 1,000 ms, query p99 ≤ 100
// ms, 0 errors, no growing lag (the last 10 s's mean lag at most twice the
// first 10 s's plus one second of ingest). The speed layer's lag is read
// from where it stores its progress (the topics' end offsets minus its
// offsets in Redis); the compactor's is its own gauge of records not yet
// consumed, since it writes files only every max_file_age (a minute).
//
// The last line is the DESIGN §7 summary:
//
//	bench mixed: ingest_eps=… fresh_p50_ms=… fresh_p99_ms=… query_rps=… query_p99_ms=… errors=… recompute_runs=… lag_max=…
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/bench/internal/freshness"
	"github.com/lambdalake/lambdalake/bench/internal/kafkaref"
	"github.com/lambdalake/lambdalake/bench/internal/launch"
	"github.com/lambdalake/lambdalake/bench/internal/procstat"
	"github.com/lambdalake/lambdalake/bench/internal/querymix"
	"github.com/lambdalake/lambdalake/bench/internal/stack"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const token = "change-me-read-only-token" // the example config's read:views token

func main() {
	history := flag.Int64("history", 1_000_000, "orders written before the measured window (pageviews: half)")
	span := flag.Duration("span", 6*time.Hour, "the history's event-time span, ending now")
	rate := flag.Float64("rate", 50000, "live orders per second during the window")
	cpuProfile := flag.String("cpuprofile", "", "write serve's (or all's) CPU profile over the window to this file")
	all := flag.Bool("all", false, "run the roles as one `lambdalake all` process instead of four")
	duration := flag.Duration("duration", 60*time.Second, "the measured window")
	clients := flag.Int("clients", 64, "query clients")
	repeat := flag.Float64("repeat", 0.2, "share of queries repeating a recent one")
	catchUp := flag.Duration("catch-up", 5*time.Minute, "how long to wait for the roles to catch up with the history")
	flag.Parse()
	log.SetFlags(log.Ltime)
	ctx := context.Background()
	log.Printf("load average at start: %s", procstat.LoadAvg())

	suffix := stack.Suffix()
	dir, err := os.MkdirTemp("", "bench-mixed-")
	check(err)
	defer os.RemoveAll(dir)
	addrs := make([]string, 4) // serve, speed metrics, compact metrics, jobs http (the metrics endpoints are for looking in by hand)
	for i := range addrs {
		addrs[i], err = launch.FreeAddr()
		check(err)
	}
	prefix := "bench-mixed-" + suffix
	run, err := launch.ExampleConfig(launch.Names{Suffix: suffix, LakeURL: "s3://" + stack.Bucket + "/" + prefix, HTTPAddr: addrs[0],
		Recompute: "*/10 * * * * *", SpeedMetrics: addrs[1]})
	check(err)
	cfgPath := filepath.Join(dir, "lambdalake.yaml")
	check(os.WriteFile(cfgPath, []byte(run.YAML), 0o644))
	cfg, err := config.Parse([]byte(run.YAML), nil)
	check(err)
	brokers := cfg.Kafka.Brokers
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	store, err := lake.NewS3Store(ctx, stack.Bucket, prefix, stack.S3Config())
	check(err)
	check(store.EnsureBucket(ctx))
	defer stack.CleanLake(store)
	defer stack.DeleteRedisKeys(context.Background(), rdb, "*"+suffix+"*")
	for _, t := range run.Topic {
		check(stream.EnsureTopic(ctx, brokers, t, cfg.Kafka.Partitions))
		defer stack.DeleteTopics(brokers, t)
	}
	revenue := cfg.View(run.View["revenue"])
	orders := revenue.Schema

	bin, err := launch.Build(dir)
	check(err)
	keys := map[string]string{"orders": "tenant=10,country=20,user_id=100000", "pageviews": "site=10,visitor=50000"}
	genArgs := func(schema string, extra ...string) []string {
		return append([]string{"gen", "--config", cfgPath, "--schema", schema, "--keys", keys[schema], "--max-delay", "2m"}, extra...)
	}
	// History, before the roles start.
	t0 := time.Now()
	for i, schema := range []string{"orders", "pageviews"} {
		n := *history / int64(1+i)
		out, err := runToEnd(bin, genArgs(schema, "--count", strconv.FormatInt(n, 10), "--span", span.String(), "--seed", strconv.Itoa(1+i))...)
		if err != nil {
			log.Fatalf("gen history: %v: %s", err, out)
		}
	}
	log.Printf("history written in %v", time.Since(t0).Round(time.Millisecond))

	// The roles.
	roles := map[string][]string{
		"speed":   {"speed", "--config", cfgPath},
		"compact": {"compact", "--config", cfgPath, "--metrics", addrs[2]},
		"jobs":    {"jobs", "--config", cfgPath, "--http", addrs[3]},
		"serve":   {"serve", "--config", cfgPath},
	}
	order := []string{"speed", "compact", "jobs", "serve"}
	// Where the compactor's lag gauge and the jobs' run counter are read.
	compactMetrics, jobsMetrics := "http://"+addrs[2]+"/metrics", "http://"+addrs[3]+"/metrics"
	profiledRole := "serve"
	if *all {
		roles = map[string][]string{"all": {"all", "--config", cfgPath}}
		order, profiledRole = []string{"all"}, "all"
		compactMetrics, jobsMetrics = "http://"+addrs[0]+"/metrics", "http://"+addrs[0]+"/metrics"
	}
	var pprofAddr string
	if *cpuProfile != "" {
		pprofAddr, err = launch.FreeAddr()
		check(err)
		roles[profiledRole] = append(roles[profiledRole], "--pprof", pprofAddr)
	}
	procs := map[string]*launch.Proc{}
	for _, name := range order {
		p, err := launch.Start(launch.Config{Name: name, Path: bin, Args: roles[name], Env: []string{"LAMBDALAKE_LOG_LEVEL=warn"}})
		check(err)
		procs[name] = p
		defer p.Stop(15 * time.Second)
	}
	base := "http://" + addrs[0]
	check(launch.WaitReady(ctx, base, time.Minute))
	// Lag: for the speed layer, records in the topics not yet applied (the
	// end offsets minus its offsets in Redis: it applies every 200 ms); for
	// the compactor, records not yet consumed (its lambdalake_compact_lag
	// gauge: it writes files only every max_file_age, a minute, so its
	// checkpoints trail by up to a minute of ingest by design).
	traffic := cfg.View(run.View["traffic"])
	lagOf := func() (speedLag, compactLag float64) {
		for _, v := range []*schemas.View{revenue, traffic} {
			end, err := kafkaref.EndOffsets(ctx, brokers, v.Schema.Topic)
			if err != nil {
				log.Printf("lag: %v", err)
				continue
			}
			applied, _ := speed.StoredOffsets(ctx, rdb, v)
			for p, e := range end {
				speedLag += float64(e - applied[p])
			}
		}
		if m, err := querymix.Scrape(ctx, compactMetrics); err == nil {
			compactLag = m["lambdalake_compact_lag"]
		}
		return
	}
	// The batch side has caught up when B is at the last hour closed by
	// now (lateness past its end): until the first recompute over the
	// history, the speed layer answers all six hours, a transient no
	// running system is in.
	batchBehind := func() (behind []string) {
		for _, v := range []*schemas.View{revenue, traffic} {
			want := time.Now().Add(-v.Lateness).Truncate(time.Hour)
			if b, ok, err := boundary.Read(ctx, rdb, v.Name); err != nil || !ok || b.Before(want) {
				behind = append(behind, fmt.Sprintf("%s B %v (want %v)", v.Name, b.Format(time.TimeOnly), want.Format(time.TimeOnly)))
			}
		}
		return behind
	}
	t0 = time.Now()
	for {
		s, c := lagOf()
		behind := batchBehind()
		// The compactor's gauge moves every 1,024 records per partition
		// while a file is open: below that it has caught up.
		if s == 0 && c < float64(1024*cfg.Kafka.Partitions*len(run.Topic)) && len(behind) == 0 && time.Since(t0) > 5*time.Second {
			break
		}
		if time.Since(t0) > *catchUp {
			log.Printf("roles not caught up after %v (speed lag %.0f, compact lag %.0f, batch %v): measuring anyway", *catchUp, s, c, behind)
			break
		}
		time.Sleep(time.Second)
	}
	log.Printf("roles caught up with the history in %v (speed and compaction lag near 0, B at the last closed hour)", time.Since(t0).Round(time.Second))

	// The window.
	end0, err := kafkaref.EndOffsets(ctx, brokers, orders.Topic)
	check(err)
	runs0, _ := querymix.ScrapeSeries(ctx, jobsMetrics, `lambdalake_job_runs_total{job="recompute",outcome="ok"}`)
	wctx, stopWindow := context.WithCancel(ctx)
	var wg sync.WaitGroup

	// Live ingest.
	genStart := time.Now()
	var genEnd time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, err := runToEnd(bin, genArgs("orders", "--rate", strconv.FormatFloat(*rate, 'f', 0, 64), "--duration", duration.String(), "--seed", "9")...)
		genEnd = time.Now()
		if err != nil {
			log.Printf("gen live: %v: %s", err, out)
			return
		}
		log.Printf("gen live: %s", strings.TrimSpace(lastLine(out)))
	}()

	// Lag, every second.
	type lagSample struct{ speed, compact float64 }
	var lags []lagSample
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			s, c := lagOf()
			lags = append(lags, lagSample{s, c})
			select {
			case <-wctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()

	// Freshness, from a probe tenant.
	var fr freshness.Result
	var frErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Not wctx: the probe drains its last events after the window.
		fr, frErr = probe(ctx, brokers, rdb, revenue, suffix, *duration)
	}()

	// Queries.
	var views []querymix.View
	for _, name := range []string{"revenue", "traffic"} {
		v := cfg.View(run.View[name])
		card := map[string]int{"tenant": 10, "country": 20, "site": 10, "bot": 2}
		var filter []string
		for k := range card[v.Dimensions[0]] {
			filter = append(filter, v.Dimensions[0]+"-"+strconv.Itoa(k))
		}
		views = append(views, querymix.View{Name: v.Name, Granularity: v.Granularity, Dimensions: v.Dimensions, FilterValues: filter,
			Groups: []int{card[v.Dimensions[0]], card[v.Dimensions[1]]}})
	}
	mix := querymix.New(querymix.Config{Views: views, Repeat: *repeat, Seed: 3})
	profiled := launch.ProfileDuring(ctx, pprofAddr, *duration-time.Second, *cpuProfile)
	live := func(path string) bool { return querymix.TouchesHour(path, time.Now()) }
	load := querymix.Run(ctx, querymix.LoadConfig{Base: base, Token: token, Clients: *clients, Duration: *duration, Next: mix.Next, Live: live})
	stopWindow()
	wg.Wait()
	check(<-profiled)
	if genEnd.IsZero() {
		genEnd = time.Now()
	}
	end1, err := kafkaref.EndOffsets(ctx, brokers, orders.Topic)
	check(err)
	ingestEPS := float64(kafkaref.Total(end1)-kafkaref.Total(end0)) / genEnd.Sub(genStart).Seconds()
	runs1, _ := querymix.ScrapeSeries(ctx, jobsMetrics, `lambdalake_job_runs_total{job="recompute",outcome="ok"}`)
	check(frErr)

	log.Printf("queries: %d in %v: %.0f/s, p50 %.2f ms, p99 %.2f ms, %d errors", load.Requests, load.Elapsed.Round(time.Millisecond),
		load.RPS(), load.Pct(0.5), load.Pct(0.99), load.Errors)
	if load.FirstError != "" {
		log.Printf("queries: first error: %s", load.FirstError)
	}
	if len(load.Live) > 0 {
		log.Printf("queries: the %d touching the current hour (a live part): p50 %.2f ms, p99 %.2f ms", len(load.Live), load.LivePct(0.5), load.LivePct(0.99))
	}
	if sec, p99, n := load.Worst(); p99 >= 0 {
		log.Printf("queries: worst second +%ds: p99 %.2f ms over its %d; p99 per second: %s", sec, p99, n, load.SecondsP99Text())
	}
	log.Printf("freshness over %d probe events: p50 %v, p99 %v, max %v", fr.N, fr.P50, fr.P99, fr.Max)
	var lagMax float64
	for _, l := range lags {
		lagMax = max(lagMax, l.speed, l.compact)
	}
	growing := growingLag(lags, *rate, func(l lagSample) float64 { return l.speed }) || growingLag(lags, *rate, func(l lagSample) float64 { return l.compact })
	log.Printf("lag samples (speed/compact): %v", lags)
	for name, p := range procs {
		log.Printf("%s: CPU %.1fs, peak RSS %d MB", name, procstat.CPU(p.Pid()).Seconds(), procstat.PeakRSS(p.Pid())>>20)
	}
	log.Printf("load average at end: %s", procstat.LoadAvg())
	goal := func(name string, ok bool) {
		log.Printf("goal %s: %s", name, map[bool]string{true: "met", false: "not met"}[ok])
	}
	goal(fmt.Sprintf("fresh p99 ≤ 1,000 ms (%d)", fr.P99.Milliseconds()), fr.P99 <= time.Second)
	goal(fmt.Sprintf("query p99 ≤ 100 ms (%.1f)", load.Pct(0.99)), load.Pct(0.99) <= 100)
	goal(fmt.Sprintf("0 errors (%d)", load.Errors), load.Errors == 0)
	goal("no growing lag", !growing)
	fmt.Printf("bench mixed: ingest_eps=%.0f fresh_p50_ms=%d fresh_p99_ms=%d query_rps=%.0f query_p99_ms=%.1f errors=%d recompute_runs=%.0f lag_max=%.0f\n",
		ingestEPS, fr.P50.Milliseconds(), fr.P99.Milliseconds(), load.RPS(), load.Pct(0.99), load.Errors, runs1-runs0, lagMax)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// runToEnd runs the binary to its end and returns its combined output.
func runToEnd(bin string, args ...string) (string, error) {
	var mu sync.Mutex
	var out strings.Builder
	p, err := launch.Start(launch.Config{Name: args[0], Path: bin, Args: args, OnLine: func(l string) {
		mu.Lock()
		out.WriteString(l + "\n")
		mu.Unlock()
	}})
	if err != nil {
		return "", err
	}
	<-p.Exited()
	mu.Lock()
	defer mu.Unlock()
	if !p.Cmd.ProcessState.Success() {
		return out.String(), fmt.Errorf("%s %s: %s", bin, args[0], p.Cmd.ProcessState)
	}
	return out.String(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// growingLag says whether a role's lag grew over the window: the last 10
// samples' mean above twice the first 10's plus one second of ingest.
func growingLag[T any](samples []T, rate float64, lag func(T) float64) bool {
	if len(samples) < 20 {
		return false
	}
	mean := func(s []T) float64 {
		var sum float64
		for _, x := range s {
			sum += lag(x)
		}
		return sum / float64(len(s))
	}
	return mean(samples[len(samples)-10:]) > 2*mean(samples[:10])+rate
}

// probe writes 100 orders/s of a tenant of its own (10 every 100 ms) for d
// and measures their creation → counted-in-Redis latency.
func probe(ctx context.Context, brokers []string, rdb redis.UniversalClient, v *schemas.View, suffix string, d time.Duration) (freshness.Result, error) {
	tenant := "probe-" + suffix
	start := time.Now().Add(-time.Minute)
	r := speed.NewReader(speed.ReaderConfig{Redis: rdb})
	count := func(ctx context.Context) (int64, error) {
		res, err := r.Query(ctx, speed.Query{View: v, From: start, To: time.Now().Add(time.Minute), Where: map[string]schemas.Value{"tenant": {Str: tenant}}, Step: time.Hour})
		if err != nil {
			return 0, err
		}
		var n int64
		for _, row := range res.Rows {
			n += row.Values[0].Int // the count metric comes first
		}
		return n, nil
	}
	w := stream.NewWriter(brokers, v.Schema.Topic)
	w.BatchTimeout = time.Millisecond
	defer w.Close()
	return freshness.Measure(ctx, freshness.Config{Count: count, Poll: 20 * time.Millisecond,
		Produce: func(ctx context.Context, rec *freshness.Recorder) (int64, error) {
			var n int64
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			stop := time.Now().Add(d)
			for time.Now().Before(stop) {
				select {
				case <-ctx.Done():
					return n, nil
				case <-tick.C:
				}
				now := time.Now()
				msgs := make([]kafka.Message, 10)
				for i := range msgs {
					msgs[i] = kafka.Message{Value: fmt.Appendf(nil, `{"order_id":"%s-%d","ts":%q,"tenant":%q,"country":"probe","user_id":"u-%d","amount":1}`,
						tenant, n+int64(i), now.UTC().Format("2006-01-02T15:04:05.000Z"), tenant, n+int64(i))}
				}
				rec.Created(len(msgs), now)
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					return n, err
				}
				n += int64(len(msgs))
			}
			return n, nil
		}})
}
