// Command serve benchmarks the serving layer (DESIGN §7): `lambdalake
// serve` on loopback answering a dashboard's question — a view over 24
// hours at a 1 minute step, totals — with data in both layers, B two hours
// before the end of the range.
//
// Preparation (not timed): a folder lake (a temp dir; DuckDB cannot reach
// LocalStack S3 here, see bench/recompute) gets raw Parquet files for the
// last 24 hours of orders (internal/gen, -events of them), written as the
// compactor lays them out. recompute.Recomputer computes the closed hours, so
// B = end - 2h and batch serves the first 22 hours; a speed.Worker
// consumes a fresh Kafka topic holding the events from B on, so the last
// two hours are Redis cells. The view gets a unique name so its Redis keys
// clash with nothing.
//
// Load: the lambdalake binary is built and started as `lambdalake serve`
// (subprocess, real TCP on 127.0.0.1), then -clients goroutines send the
// same query with a bearer token back to back for -duration, each reading
// the whole body. Client and server share this machine's cores.
// Identical concurrent queries share one computation (singleflight) and
// the answer is kept for http.cache_ttl (1s) while B is unchanged, so the
// speed part of an answer is at most 1s stale; batch hours stay decoded in
// memory.
//
// DuckDB (Python, .venv-duckdb, `make duckdb`, 2 threads) answers the same
// question from the raw files (what a user without lambdalake would do);
// its time is the median of 3 runs inside one DuckDB process, and speedup
// is duckdb_ms / our p50.
//
// The last line is the DESIGN §7 summary:
//
//	bench serve: rps=… p50_ms=… p99_ms=… errors=0 duckdb_ms=… speedup=…
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const token = "change-me-read-only-token" // the example config's read:views token

func main() {
	events := flag.Int64("events", 1_000_000, "events over the 24 hours")
	clients := flag.Int("clients", 64, "concurrent clients")
	duration := flag.Duration("duration", 30*time.Second, "load duration")
	python := flag.String("python", ".venv-duckdb/bin/python", "Python with duckdb installed (make duckdb)")
	keep := flag.Bool("keep", false, "keep the lake folder")
	metrics := flag.String("metrics", "", "metrics= of the query (default: all of the view's)")
	cacheTTL := flag.String("cache-ttl", "", "http.cache_ttl of the server (default: the config default, 1s)")
	flag.Parse()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	dir, err := os.MkdirTemp("", "bench-serve-")
	check(err)
	if !*keep {
		defer os.RemoveAll(dir)
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	viewName, topic := "bench_"+suffix, "bench-serve-"+suffix
	addr := freeAddr()
	yml := string(lambdalake.ExampleConfig)
	for old, new := range map[string]string{
		"url: s3://lambdalake/lake":      "url: file://" + dir,
		"addr: 127.0.0.1:8080":           "addr: " + addr,
		"topic: orders":                  "topic: " + topic,
		"  revenue:\n    schema: orders": "  " + viewName + ":\n    schema: orders",
	} {
		if !strings.Contains(yml, old) {
			log.Fatalf("example config has no %q", old)
		}
		yml = strings.Replace(yml, old, new, 1)
	}
	if *cacheTTL != "" {
		yml = strings.Replace(yml, "http:\n", "http:\n  cache_ttl: "+*cacheTTL+"\n", 1)
	}
	cfgPath := filepath.Join(dir, "lambdalake.yaml")
	check(os.WriteFile(cfgPath, []byte(yml), 0o644))
	cfg, err := config.Parse([]byte(yml), nil)
	check(err)
	v := cfg.View(viewName)
	s := v.Schema
	store, err := lake.NewDirStore(dir)
	check(err)
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	defer cleanupRedis(ctx, rdb, viewName)

	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	to := H.Add(time.Hour)
	from, B := to.Add(-24*time.Hour), to.Add(-2*time.Hour)

	// Raw lake for 24 hours; recompute the 22 closed ones.
	t0 := time.Now()
	g, err := gen.New(gen.Config{Schema: s, From: from, To: now, Count: *events, Seed: 42,
		Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100_000}})
	check(err)
	evs := make([][]byte, 0, *events)
	for range *events {
		e := g.Next(now)
		evs = append(evs, e.Value)
	}
	hot, files, err := writeRaw(ctx, store, s, evs, B)
	check(err)
	log.Printf("generated %d events into %d raw files in %v (%s)", len(evs), files, time.Since(t0).Round(time.Millisecond), dir)
	cp, _ := json.Marshal(raw.Checkpoint{NextOffset: int64(len(evs)), Watermark: B})
	check(lake.PutBytes(ctx, store, lake.CheckpointKey(cfg.Compact.Group, topic, 0), cp))
	rc, err := recompute.New(recompute.Config{Store: store, Group: cfg.Compact.Group, Registerer: prometheus.NewRegistry(), Logger: quiet,
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error { return speed.SetBoundary(ctx, rdb, view, b) })})
	check(err)
	t0 = time.Now()
	res, err := rc.Recompute(ctx, v, recompute.Options{})
	check(err)
	if !res.Boundary.Equal(B) {
		log.Fatalf("B = %s, want %s", res.Boundary, B)
	}
	log.Printf("recomputed %d hours in %v: B = %s", res.Hours, time.Since(t0).Round(time.Millisecond), B.Format(time.RFC3339))

	// The hot part through Kafka and a speed worker into Redis.
	check(stream.EnsureTopic(ctx, cfg.Kafka.Brokers, topic, 2))
	defer deleteTopic(cfg.Kafka.Brokers, topic)
	t0 = time.Now()
	w := stream.NewWriter(cfg.Kafka.Brokers, topic)
	msgs := make([]kafka.Message, len(hot))
	for i, b := range hot {
		msgs[i] = kafka.Message{Value: b}
	}
	for i := 0; i < len(msgs); i += 10000 {
		check(w.WriteMessages(ctx, msgs[i:min(i+10000, len(msgs))]...))
	}
	check(w.Close())
	worker, err := speed.New(speed.Config{Brokers: cfg.Kafka.Brokers, Group: "bench-speed-" + suffix, Views: []*schemas.View{v},
		Redis: rdb, Registerer: prometheus.NewRegistry(), Logger: quiet})
	check(err)
	wctx, wcancel := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- worker.Run(wctx) }()
	check(waitSpeed(ctx, rdb, v, topic, int64(len(hot))))
	wcancel()
	check(<-werr)
	log.Printf("speed layer applied %d events from %s in %v", len(hot), B.Format(time.RFC3339), time.Since(t0).Round(time.Millisecond))

	// lambdalake serve.
	bin := filepath.Join(dir, "lambdalake")
	build := exec.Command("go", "build", "-o", bin, "./cmd/lambdalake")
	build.Stderr = os.Stderr
	check(build.Run())
	srv := exec.Command(bin, "serve", "--config", cfgPath)
	srv.Env = append(os.Environ(), "LAMBDALAKE_LOG_LEVEL=warn")
	srv.Stderr = os.Stderr
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the bench
	check(srv.Start())
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	base := "http://" + addr
	check(waitReady(base))

	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {"1m"}}
	if *metrics != "" {
		q.Set("metrics", *metrics)
	}
	target := base + "/v1/views/" + viewName + "/query?" + q.Encode()
	check(verify(target, from, B, len(evs)))

	// Load.
	rps, p50, p99, errs, n := load(target, *clients, *duration)
	log.Printf("%d requests in %v from %d clients: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors", n, *duration, *clients, rps, p50, p99, errs)
	serverMetrics(base)

	// DuckDB on the raw files.
	duckMS, err := runDuckDB(*python, dir, s, from, to)
	check(err)
	fmt.Printf("requests=%d clients=%d duration=%s events=%d batch_hours=%d speed_events=%d\n", n, *clients, *duration, len(evs), res.Hours, len(hot))
	fmt.Printf("bench serve: rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d duckdb_ms=%.1f speedup=%.1f\n", rps, p50, p99, errs, duckMS, duckMS/p50)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

// writeRaw writes one raw file per event hour (partition 0, offsets in
// generation order, rows sorted by event time) and returns the events at
// or after b, which the speed layer gets.
func writeRaw(ctx context.Context, store lake.Store, s *schemas.Schema, evs [][]byte, b time.Time) (hot [][]byte, files int, err error) {
	dec := schemas.NewDecoder(s)
	layout := s.RawLayout()
	type hrow struct {
		t, off int64
		row    parquet.Row
	}
	hours := map[time.Time][]hrow{}
	for i, e := range evs {
		var row schemas.Row
		if dec.Decode(e, &row) != nil {
			continue
		}
		ts := s.TimeMicros(&row)
		if ts >= b.UnixMicro() {
			hot = append(hot, e)
		}
		h := time.UnixMicro(ts).UTC().Truncate(time.Hour)
		hours[h] = append(hours[h], hrow{ts, int64(i), layout.AppendRow(nil, &row, 0, int64(i), ts)})
	}
	for h, rows := range hours {
		slices.SortFunc(rows, func(a, b hrow) int { return cmp.Compare(a.t, b.t) })
		first, last := int64(math.MaxInt64), int64(-1)
		prows := make([]parquet.Row, len(rows))
		for i, r := range rows {
			first, last = min(first, r.off), max(last, r.off)
			prows[i] = r.row
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema, parquet.Compression(&parquet.Zstd))
		if _, err := w.WriteRows(prows); err != nil {
			return nil, 0, err
		}
		if err := w.Close(); err != nil {
			return nil, 0, err
		}
		key := lake.RawFile{Schema: s.Name, Hour: h, Topic: s.Topic, Partition: 0, First: first, Last: last}.Key()
		if err := lake.PutBytes(ctx, store, key, buf.Bytes()); err != nil {
			return nil, 0, err
		}
		files++
	}
	return hot, files, nil
}

// waitSpeed waits until the view's stored offsets cover n records.
func waitSpeed(ctx context.Context, rdb redis.UniversalClient, v *schemas.View, topic string, n int64) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		m, err := rdb.HGetAll(ctx, speed.OffsetsKey(v.Name)).Result()
		if err != nil {
			return err
		}
		var sum int64
		for k, val := range m {
			if strings.HasPrefix(k, topic+":") {
				x, _ := strconv.ParseInt(val, 10, 64)
				sum += x
			}
		}
		if sum >= n {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("speed layer did not catch up in 3 minutes")
}

func waitReady(base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			log.Printf("readyz: %d %s", resp.StatusCode, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("lambdalake serve not ready in 30s")
}

func get(c *http.Client, target string) (int, []byte, error) {
	req, _ := http.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// serverMetrics prints the server's own view of the load: answers
// computed (and how long that took), fresh and stale cache hits, shared
// flights.
func serverMetrics(base string) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		log.Printf("metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		for _, p := range []string{"lambdalake_serving_compute_seconds_sum", "lambdalake_serving_compute_seconds_count",
			"lambdalake_serving_cache_hits_total", "lambdalake_serving_cache_stale_total", "lambdalake_serving_singleflight_shared_total"} {
			if strings.HasPrefix(l, p+" ") {
				log.Printf("server: %s", l)
			}
		}
	}
}

// drain sends one query and reads the whole answer without keeping it.
func drain(c *http.Client, target string) (int, error) {
	req, _ := http.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// verify checks the answer once before the load: 1440 rows, B where it
// should be, no gaps, every valid event counted once.
func verify(target string, from, b time.Time, events int) error {
	code, body, err := get(http.DefaultClient, target)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("query: %d %s", code, body)
	}
	var a struct {
		Boundary string           `json:"boundary"`
		Gaps     [][2]string      `json:"gaps"`
		Rows     []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return err
	}
	var total float64
	for _, r := range a.Rows {
		total += r["orders"].(float64)
	}
	log.Printf("answer: %d rows, %d bytes, boundary %s, gaps %v, %v orders of %d events", len(a.Rows), len(body), a.Boundary, a.Gaps, total, events)
	if a.Boundary != b.Format(time.RFC3339) || len(a.Gaps) != 0 || len(a.Rows) < 1380 {
		return fmt.Errorf("unexpected answer: boundary %s gaps %v rows %d", a.Boundary, a.Gaps, len(a.Rows))
	}
	return nil
}

// load runs clients back to back for d and returns requests/s, p50 and p99
// in ms, errors and the request count.
func load(target string, clients int, d time.Duration) (rps, p50, p99 float64, errs, n int) {
	// Answers are ~160 KB: a large read buffer reads one in a few syscalls
	// instead of forty (the client shares the machine with the server).
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true,
		ReadBufferSize: 256 << 10}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	var firstErr error
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			var e error
			for time.Now().Before(end) {
				t0 := time.Now()
				code, err := drain(c, target)
				if err != nil || code != 200 {
					bad++
					if e == nil {
						e = fmt.Errorf("code %d: %v", code, err)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			if firstErr == nil {
				firstErr = e
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		log.Printf("first error: %v", firstErr)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	n = len(lat) + errs
	if len(lat) == 0 {
		return 0, 0, 0, errs, n
	}
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	return float64(len(lat)) / el.Seconds(), pct(0.50), pct(0.99), errs, n
}

// duckScript runs the query 3 times in one DuckDB process and prints the
// median in ms and the row count.
const duckScript = `
import duckdb, statistics, sys, time
sql = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads=2")
con.execute("SET enable_progress_bar=false")
ts, n = [], 0
for _ in range(3):
    t0 = time.perf_counter()
    n = len(con.execute(sql).fetchall())
    ts.append((time.perf_counter() - t0) * 1000)
print(f"{statistics.median(ts):.3f} {n}")
`

// runDuckDB answers the same question from the raw files: per minute over
// [from, to), count, sum, max, min and exact count distinct.
func runDuckDB(python, dir string, s *schemas.Schema, from, to time.Time) (float64, error) {
	sql := fmt.Sprintf(`SELECT epoch_ms(time_bucket(INTERVAL 1 minute, ts)) AS t, count(*) AS orders, sum(amount) AS revenue,
  max(amount) AS biggest, min(amount) AS smallest, count(DISTINCT user_id) AS buyers
FROM read_parquet('%s/raw/%s/*/*/*.parquet', hive_partitioning=1)
WHERE ts >= TIMESTAMPTZ '%s' AND ts < TIMESTAMPTZ '%s'
GROUP BY 1 ORDER BY 1`, dir, s.Name, from.Format(time.RFC3339), to.Format(time.RFC3339))
	cmd := exec.Command(python, "-c", duckScript, sql)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("duckdb (run `make duckdb` first): %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, fmt.Errorf("duckdb: unexpected output %q", out)
	}
	log.Printf("duckdb: median %s ms over 3 runs, %s rows", f[0], f[1])
	return strconv.ParseFloat(f[0], 64)
}

// cleanupRedis removes the bench view's keys.
func cleanupRedis(ctx context.Context, rdb redis.UniversalClient, view string) {
	iter := rdb.Scan(ctx, 0, "ll:{"+view+"}:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			rdb.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}

func deleteTopic(brokers []string, topic string) {
	if err := stream.DeleteTopic(context.Background(), brokers, topic); err != nil {
		log.Printf("cleanup: %v", err)
	}
}
