// Command compact benchmarks batch compaction against the local stack
// (DESIGN §7, issues 19.3 and 16.13). On one fresh 4-partition topic holding
// ≥2M generated orders it measures, in the same run:
//
//	eps:       `lambdalake compact` (a child process, so its RSS is its own)
//	           from the moment it holds its partitions until every lake
//	           checkpoint on LocalStack S3 reaches the end offsets (seen on
//	           its lambdalake_compact_stored_offset gauge, then confirmed in
//	           S3): fetch, decode, buffer, sort, Parquet+zstd, upload,
//	           checkpoint;
//	raw_eps:   kafka-go's kafka.Reader reading every record, decoding nothing
//	           (before and after eps, the mean reported): the first issues'
//	           reference, kept for continuity;
//	fetch_eps: the same read through stream.Fetcher, the compactor's own read
//	           path (fetch_ratio = eps ÷ fetch_eps, like for like);
//	peer_eps:  DuckDB (Python duckdb 2.0.0, .venv-duckdb) converting the same
//	           records, written beforehand as a local NDJSON file (the page
//	           cache holds it), into one Parquet file with zstd: COPY (SELECT …
//	           FROM read_json(…)) TO '…' (FORMAT parquet). Its SELECT keeps
//	           exactly the records our schema decoder accepts (types checked
//	           with json_type, the time as RFC 3339 or epoch ms) and gives the
//	           columns our raw files' types. peer_ratio = eps ÷ peer_eps: ours
//	           Kafka → S3 against DuckDB file → file.
//
// Both sides run with the same parallelism: the compactor with GOMAXPROCS
// and DuckDB with SET threads both at -threads (default: the machine's
// cores), printed as threads=.
//
// Also CPU per record: cpu_us (the compactor process) and peer_cpu_us
// (DuckDB's process), cpu_ratio = peer_cpu_us ÷ cpu_us (records per CPU
// second, ours ÷ DuckDB). The machine is busy throughout our run (1 % idle
// in a run sampled from /proc/stat), about a quarter of it other processes:
// the Kafka broker and LocalStack serving the compactor, which DuckDB's
// file → file run does not need, and this bench. peer_ratio compares what
// each delivers on the same machine, cpu_ratio what each process spends.
//
// Then both outputs are read with DuckDB (ours copied from S3 to a local
// folder, since DuckDB's S3 extension cannot be downloaded here) and
// compared: equal row counts and, per schema column, an order-independent
// checksum (sum of DuckDB's hash() of each value, and the non-null count).
// A difference fails the run. Also reported: the raw lake's Parquet bytes per
// event and the compactor's peak RSS (VmHWM). The compactor runs with the
// example config's compact settings (budget 256 MiB, 1M rows or 64 MiB per
// file) except max_file_age 2s, on the orders schema only.
//
// The last line is the DESIGN §7 summary:
//
//	bench compact: raw_eps=… eps=… ratio=… fetch_eps=… fetch_ratio=… peer_eps=… peer_ratio=… cpu_us=… peer_cpu_us=… cpu_ratio=… equal=true threads=… bytes_per_event=… rss_mb=…
package main

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/bench/internal/duck"
	"github.com/lambdalake/lambdalake/bench/internal/kafkaref"
	"github.com/lambdalake/lambdalake/bench/internal/launch"
	"github.com/lambdalake/lambdalake/bench/internal/procstat"
	"github.com/lambdalake/lambdalake/bench/internal/querymix"
	"github.com/lambdalake/lambdalake/bench/internal/stack"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

const partitions = 4

func main() {
	events := flag.Int64("events", 2_000_000, "events to produce")
	threads := flag.Int("threads", runtime.NumCPU(), "parallelism of both sides: the compactor's GOMAXPROCS and DuckDB's threads")
	python := flag.String("python", duck.DefaultPython, "Python with duckdb installed (make duckdb)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.Printf("load average at start: %s", procstat.LoadAvg())
	ok, err := run(context.Background(), *events, *threads, *python)
	if err != nil {
		log.Fatalf("bench compact: %v", err)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "bench compact: FAILED: DuckDB's output differs from our raw lake (see above)")
		os.Exit(1)
	}
}

func run(ctx context.Context, events int64, threads int, python string) (bool, error) {
	brokers := stack.Brokers()
	endpoint := stack.S3Endpoint()
	suffix := stack.Suffix()
	topic, group, prefix := "bench-compact-"+suffix, "bench-compact-"+suffix, "bench-compact-"+suffix

	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		return false, err
	}
	o := cfg.Schema("orders")
	s, err := schemas.NewSchema(o.Name, topic, o.Time, o.ID, o.Fields)
	if err != nil {
		return false, err
	}
	if err := stream.EnsureTopic(ctx, brokers, topic, partitions); err != nil {
		return false, err
	}
	defer stack.DeleteTopics(brokers, topic)
	store, err := lake.NewS3Store(ctx, stack.Bucket, prefix, stack.S3Config())
	if err != nil {
		return false, err
	}
	if err := store.EnsureBucket(ctx); err != nil {
		return false, err
	}
	defer stack.CleanLake(store)
	dir, err := os.MkdirTemp("", "bench-compact-")
	if err != nil {
		return false, err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		log.Printf("keeping %s (BENCH_KEEP)", dir)
	}

	// Data: two hours of history, with the usual out-of-order, duplicate
	// and malformed shares, into Kafka and, the same records, into an
	// NDJSON file for DuckDB.
	to := time.Now().UTC().Truncate(time.Hour)
	g, err := gen.New(gen.Config{Schema: s, From: to.Add(-2 * time.Hour), To: to, Count: events,
		OutOfOrder: 0.05, MaxDelay: 10 * time.Minute, Duplicates: 0.02, Malformed: 0.01, Seed: 42,
		Cardinality: map[string]int{"tenant": 20, "country": 50, "user_id": 100_000}})
	if err != nil {
		return false, err
	}
	ndjson := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(ndjson)
	if err != nil {
		return false, err
	}
	fileSink := &ndjsonSink{w: bufio.NewWriterSize(f, 1<<20)}
	w := stream.NewWriter(brokers, topic)
	start := time.Now()
	counts, err := gen.Run(ctx, g, teeSink{gen.KafkaSink{W: w}, fileSink}, gen.RunConfig{Count: events, Senders: 4})
	w.Close()
	if err == nil {
		err = fileSink.w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	log.Printf("produced %v in %v, and %d lines into %s", counts, time.Since(start).Round(time.Millisecond), fileSink.n, ndjson)
	end, err := kafkaref.EndOffsets(ctx, brokers, topic)
	if err != nil {
		return false, err
	}
	total := kafkaref.Total(end)

	// raw_eps, before.
	rawBefore, err := kafkaref.Reader(ctx, brokers, topic, end)
	if err != nil {
		return false, err
	}
	log.Printf("raw kafka.Reader: %d records in %s = %.0f/s", rawBefore.Records, rawBefore.Elapsed.Round(time.Millisecond), rawBefore.EPS())

	// Ours: the compactor, as `lambdalake compact`.
	bin, err := launch.Build(dir)
	if err != nil {
		return false, err
	}
	cfgPath := filepath.Join(dir, "lambdalake.yaml")
	// BENCH_MAX_FILE_AGE (default 2s) is for experiments only: the last
	// partial files wait that long, which is part of what eps measures.
	yaml := fmt.Sprintf(benchConfig, strings.Join(brokers, ", "), prefix, endpoint, group,
		cfg.Compact.Budget>>20, cfg.Compact.MaxFileRows, cfg.Compact.MaxFileBytes>>20, cmp.Or(os.Getenv("BENCH_MAX_FILE_AGE"), "2s"), topic)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		return false, err
	}
	metricsAddr, err := launch.FreeAddr()
	if err != nil {
		return false, err
	}
	// The clock starts when the compactor holds its partitions: group
	// join time is not throughput.
	var assignedAt atomic.Int64
	launched := time.Now()
	proc, err := launch.Start(launch.Config{Name: "compactor", Path: bin,
		Args: []string{"compact", "--config", cfgPath, "--metrics", metricsAddr},
		Env:  []string{"GOMAXPROCS=" + strconv.Itoa(threads), "LAMBDALAKE_LAKE_URL=s3://" + stack.Bucket + "/" + prefix, "LAMBDALAKE_LAKE_S3_ENDPOINT=" + endpoint},
		OnLine: func(line string) {
			if strings.Contains(line, "partition start") {
				assignedAt.CompareAndSwap(0, time.Now().UnixNano())
			}
		}})
	if err != nil {
		return false, err
	}
	defer proc.Stop(10 * time.Second)
	if out := os.Getenv("BENCH_CPUPROFILE"); out != "" {
		// A second in, for three seconds: the compactor's steady state.
		go func() {
			time.Sleep(time.Second)
			if err := launch.FetchProfile(ctx, metricsAddr, 3*time.Second, out); err != nil {
				log.Printf("profile: %v", err)
			}
		}()
	}
	// Progress is polled from the compactor's stored-offset gauge, set
	// once a checkpoint is written, not from S3: listing and reading the
	// checkpoints every 10 ms kept LocalStack busy enough to take about a
	// seventh of the compactor's throughput (0.80 → 0.91 of DuckDB when
	// polled every 100 ms instead). S3 is read once at the end to confirm.
	var peak int64
	err = kafkaref.WaitCaughtUp(ctx, end, 4*time.Minute, func(ctx context.Context) ([]int64, error) {
		peak = max(peak, procstat.PeakRSS(proc.Pid()))
		stored, err := querymix.ScrapeEach(ctx, "http://"+metricsAddr+"/metrics", "lambdalake_compact_stored_offset{")
		if err != nil {
			return nil, err
		}
		next := make([]int64, len(end))
		for p := range next {
			next[p] = int64(stored[fmt.Sprintf("lambdalake_compact_stored_offset{partition=%q,topic=%q}", strconv.Itoa(p), topic)])
		}
		return next, nil
	})
	if err != nil {
		return false, fmt.Errorf("the compactor's stored offsets: %w", err)
	}
	finished := time.Now()
	cps, err := raw.ReadCheckpoints(ctx, store, group, topic)
	if err != nil {
		return false, fmt.Errorf("the compactor's checkpoints: %w", err)
	}
	for p, e := range end {
		if got := cps[int32(p)].NextOffset; got < e {
			return false, fmt.Errorf("partition %d: the stored-offset gauge says caught up, the checkpoint in S3 says next offset %d < %d", p, got, e)
		}
	}
	peak = max(peak, procstat.PeakRSS(proc.Pid()))
	logMetrics(metricsAddr)
	cpu := procstat.CPU(proc.Pid())
	log.Printf("compactor CPU time: %.1fs = %.2f µs/record", cpu.Seconds(), cpu.Seconds()*1e6/float64(total))
	proc.Stop(10 * time.Second)
	t0 := time.Unix(0, assignedAt.Load())
	if assignedAt.Load() == 0 {
		t0 = launched
	}
	sec := finished.Sub(t0).Seconds()
	eps := float64(total) / sec
	log.Printf("ours (compactor): %d records in %.2fs = %.0f/s (group join took %.2fs, not counted)", total, sec, eps, t0.Sub(launched).Seconds())

	// raw_eps again: the machine is shared, so its load drifts during a
	// run; the mean of before and after brackets the compactor's.
	rawAfter, err := kafkaref.Reader(ctx, brokers, topic, end)
	if err != nil {
		return false, err
	}
	rawEPS := (rawBefore.EPS() + rawAfter.EPS()) / 2
	log.Printf("raw kafka.Reader again: %.0f/s; mean %.0f/s", rawAfter.EPS(), rawEPS)
	fetch, err := kafkaref.Fetcher(ctx, brokers, topic, end)
	if err != nil {
		return false, err
	}
	log.Printf("fetch (stream.Fetcher, the compactor's read path): %.0f/s", fetch.EPS())

	// The peer: DuckDB, file to file, on the same records.
	duckOut := filepath.Join(dir, "duckdb.parquet")
	fields, err := duck.Run(ctx, python, duckCopy, ndjson, duckOut, strconv.Itoa(threads), duckSelect(s))
	if err != nil {
		return false, err
	}
	fig, err := duck.Floats(fields, 3)
	if err != nil {
		return false, err
	}
	peerEPS := float64(fileSink.n) / fig[0]
	log.Printf("peer (DuckDB read_json → Parquet zstd, %d threads): %d lines in %.2fs = %.0f/s, %.1f CPU s, peak RSS %.0f MB",
		threads, fileSink.n, fig[0], peerEPS, fig[1], fig[2])

	// Same work: both outputs read back with DuckDB.
	objs, err := store.List(ctx, lake.RawPrefix(s.Name))
	if err != nil {
		return false, err
	}
	var bytes int64
	for _, o := range objs {
		bytes += o.Size
	}
	oursDir := filepath.Join(dir, "ours")
	if err := download(ctx, store, objs, oursDir); err != nil {
		return false, err
	}
	equal, err := sameRows(ctx, python, s, oursDir, duckOut, counts.Valid+counts.Duplicate)
	if err != nil {
		return false, err
	}
	stored := counts.Valid + counts.Duplicate
	log.Printf("load average at end: %s", procstat.LoadAvg())
	log.Printf("raw lake: %d files, %.1f MiB for %d records", len(objs), float64(bytes)/(1<<20), stored)

	// CPU per record: the compactor process's, DuckDB's (its own count);
	// neither counts the broker's or LocalStack's share of the machine.
	cpuUS := cpu.Seconds() * 1e6 / float64(total)
	peerCPUUS := fig[1] * 1e6 / float64(fileSink.n)
	fmt.Printf("bench compact: raw_eps=%.0f eps=%.0f ratio=%.2f fetch_eps=%.0f fetch_ratio=%.2f peer_eps=%.0f peer_ratio=%.2f cpu_us=%.2f peer_cpu_us=%.2f cpu_ratio=%.2f equal=%v threads=%d bytes_per_event=%.1f rss_mb=%d\n",
		rawEPS, eps, eps/rawEPS, fetch.EPS(), eps/fetch.EPS(), peerEPS, eps/peerEPS, cpuUS, peerCPUUS, peerCPUUS/cpuUS, equal, threads, float64(bytes)/float64(stored), peak>>20)
	return equal, nil
}

// teeSink sends each batch to Kafka, then to the NDJSON file.
type teeSink struct {
	kafka gen.KafkaSink
	file  *ndjsonSink
}

func (t teeSink) Send(ctx context.Context, batch []gen.Event) error {
	if err := t.kafka.Send(ctx, batch); err != nil {
		return err
	}
	return t.file.Send(ctx, batch)
}

// ndjsonSink writes each record's value as one line (gen never puts a
// newline inside a value: strings are quoted with escapes).
type ndjsonSink struct {
	mu sync.Mutex
	w  *bufio.Writer
	n  int64
}

func (s *ndjsonSink) Send(_ context.Context, batch []gen.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range batch {
		s.w.Write(e.Value)
		if err := s.w.WriteByte('\n'); err != nil {
			return err
		}
		s.n++
	}
	return nil
}

// download copies the raw lake's objects into dir, keeping their keys.
func download(ctx context.Context, store lake.Store, objs []lake.Object, dir string) error {
	for _, o := range objs {
		b, err := lake.ReadAll(ctx, store, o.Key)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// benchConfig is the example config's compact section (budget, file
// rows and bytes) with max_file_age 2s, over the orders schema only (its
// fields as the example config has them: the generator and DuckDB read
// those).
const benchConfig = `kafka:
  brokers: [%s]
lake:
  url: s3://lambdalake/%s
  s3:
    endpoint: %s
    region: us-east-1
    path_style: true
    access_key_id: test
    secret_access_key: test
compact:
  group: %s
  budget: %dMiB
  max_file_rows: %d
  max_file_bytes: %dMiB
  max_file_age: %s
schemas:
  orders:
    topic: %s
    time: ts
    id: order_id
    fields:
      order_id: string
      ts: timestamp
      tenant: string
      country: string
      user_id: string
      amount: decimal(18,2)
      coupon: {type: string, optional: true}
views:
  revenue:
    schema: orders
    granularity: 1m
    dimensions: [tenant, country]
    metrics:
      orders: {agg: count}
    lateness: 5m
`

// logMetrics prints the compactor's own account of where time went.
func logMetrics(addr string) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		log.Printf("metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range []string{"lambdalake_compact_backpressure_seconds_total{", "lambdalake_compact_flush_seconds_sum", "lambdalake_compact_flush_seconds_count", "lambdalake_compact_files_total{"} {
			if strings.HasPrefix(line, m) {
				log.Printf("compactor metric %s", line)
			}
		}
	}
}
