// Command compact benchmarks batch compaction against the local stack
// (DESIGN §7). On one fresh 4-partition topic holding ≥2M generated orders
// it measures, in the same run:
//
//	(a) raw_eps: kafka-go's kafka.Reader reading every message of every
//	    partition (one reader per partition), decoding nothing; run before
//	    and after (b), the mean reported, since the machine's load drifts;
//	    logged besides: the raw rate through stream.Fetcher, the
//	    compactor's own read path, and the ratio against it;
//	(b) eps:     `lambdalake compact` (a child process, so its RSS is its
//	    own) from the moment it holds its partitions until every lake
//	    checkpoint on LocalStack S3 reaches the end offsets: decode, buffer,
//	    sort, Parquet+zstd, upload, checkpoint;
//
// then the raw lake's Parquet bytes per event and the compactor's peak RSS
// (VmHWM). The compactor runs with the example config's compact settings
// (budget 256 MiB, 1M rows or 64 MiB per file) except max_file_age 2s, and
// on the orders schema only.
//
// The last line is the DESIGN §7 summary:
//
//	bench compact: raw_eps=… eps=… ratio=… bytes_per_event=… rss_mb=…
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

const partitions = 4

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	events := flag.Int64("events", 2_000_000, "events to produce")
	flag.Parse()
	log.SetFlags(log.Ltime)
	logLoad("start")
	if err := run(context.Background(), *events); err != nil {
		log.Fatalf("bench compact: %v", err)
	}
}

func run(ctx context.Context, events int64) error {
	brokers := strings.Split(env("LAMBDALAKE_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	endpoint := env("LAMBDALAKE_S3_ENDPOINT", "http://127.0.0.1:4566")
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, group, prefix := "bench-compact-"+suffix, "bench-compact-"+suffix, "bench-compact-"+suffix

	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		return err
	}
	o := cfg.Schema("orders")
	s, err := schemas.NewSchema(o.Name, topic, o.Time, o.ID, o.Fields)
	if err != nil {
		return err
	}
	if err := stream.EnsureTopic(ctx, brokers, topic, partitions); err != nil {
		return err
	}
	defer deleteTopic(brokers, topic)
	store, err := lake.NewS3Store(ctx, "lambdalake", prefix, lake.S3Config{Endpoint: endpoint, Region: "us-east-1",
		PathStyle: true, AccessKeyID: "test", SecretAccessKey: "test", MaxAttempts: 5})
	if err != nil {
		return err
	}
	if err := store.EnsureBucket(ctx); err != nil {
		return err
	}
	defer cleanLake(store)

	// Data: two hours of history, with the usual out-of-order, duplicate
	// and malformed shares.
	to := time.Now().UTC().Truncate(time.Hour)
	g, err := gen.New(gen.Config{Schema: s, From: to.Add(-2 * time.Hour), To: to, Count: events,
		OutOfOrder: 0.05, MaxDelay: 10 * time.Minute, Duplicates: 0.02, Malformed: 0.01, Seed: 42,
		Cardinality: map[string]int{"tenant": 20, "country": 50, "user_id": 100_000}})
	if err != nil {
		return err
	}
	w := stream.NewWriter(brokers, topic)
	start := time.Now()
	counts, err := gen.Run(ctx, g, gen.KafkaSink{W: w}, gen.RunConfig{Count: events, Senders: 4})
	w.Close()
	if err != nil {
		return err
	}
	log.Printf("produced %v in %v", counts, time.Since(start).Round(time.Millisecond))
	end, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range end {
		total += e
	}

	// (a) raw consume.
	start = time.Now()
	n, err := rawConsume(ctx, brokers, topic, end)
	if err != nil {
		return err
	}
	rawSec := time.Since(start).Seconds()
	rawEPS := float64(n) / rawSec
	log.Printf("raw kafka-go: %d messages in %.2fs = %.0f/s", n, rawSec, rawEPS)

	// (b) the compactor, as `lambdalake compact`.
	bin, err := buildBinary()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	cfgPath := filepath.Join(filepath.Dir(bin), "lambdalake.yaml")
	if other := os.Getenv("BENCH_BINARY"); other != "" {
		// A prebuilt lambdalake, to compare two builds on the same data
		// and the same machine load.
		bin = other
	}
	// BENCH_MAX_FILE_AGE (default 2s) is for experiments only: the last
	// partial files wait that long, which is part of what eps measures.
	yaml := fmt.Sprintf(benchConfig, strings.Join(brokers, ", "), prefix, endpoint, group,
		cfg.Compact.Budget>>20, cfg.Compact.MaxFileRows, cfg.Compact.MaxFileBytes>>20, env("BENCH_MAX_FILE_AGE", "2s"), topic)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		return err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "compact", "--config", cfgPath, "--metrics", metricsAddr)
	cmd.Env = append(os.Environ(), "LAMBDALAKE_LAKE=s3://lambdalake/"+prefix, "LAMBDALAKE_LAKE_URL=s3://lambdalake/"+prefix,
		"LAMBDALAKE_S3_ENDPOINT="+endpoint, "LAMBDALAKE_LAKE_S3_ENDPOINT="+endpoint)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	launched := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	// The clock starts when the compactor holds its partitions: group
	// join time is not throughput.
	var assignedAt atomic.Int64
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "partition start") {
				assignedAt.CompareAndSwap(0, time.Now().UnixNano())
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || os.Getenv("BENCH_VERBOSE") != "" {
				log.Printf("compactor: %s", line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	if out := os.Getenv("BENCH_CPUPROFILE"); out != "" {
		// A CPU profile of the compactor's run, for finding its costs.
		go func() {
			time.Sleep(time.Second)
			resp, err := http.Get("http://" + metricsAddr + "/debug/pprof/profile?seconds=3")
			if err != nil {
				log.Printf("profile: %v", err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(out)
			if err != nil {
				log.Printf("profile: %v", err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		}()
	}
	var peakKB int64
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if kb := vmHWM(cmd.Process.Pid); kb > peakKB {
			peakKB = kb
		}
		cps, err := raw.ReadCheckpoints(ctx, store, group, topic)
		if err == nil && len(cps) == partitions {
			done := true
			for p, e := range end {
				if cps[p].NextOffset < e {
					done = false
				}
			}
			if done {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("compactor did not reach the end offsets in 4 minutes: %+v", cps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	finished := time.Now()
	if kb := vmHWM(cmd.Process.Pid); kb > peakKB {
		peakKB = kb
	}
	logMetrics(metricsAddr)
	cpu := cpuSeconds(cmd.Process.Pid)
	log.Printf("compactor CPU time: %.1fs = %.2f µs/record", cpu, cpu*1e6/float64(total))
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	t0 := time.Unix(0, assignedAt.Load())
	if assignedAt.Load() == 0 {
		t0 = launched
	}
	sec := finished.Sub(t0).Seconds()
	eps := float64(total) / sec
	log.Printf("compactor: %d records in %.2fs = %.0f/s (group join took %.2fs, not counted)", total, sec, eps, t0.Sub(launched).Seconds())

	// (a) again: the machine is shared, so its load drifts during a run;
	// the mean of the raw rate before and after brackets the compactor's.
	start = time.Now()
	if n, err = rawConsume(ctx, brokers, topic, end); err != nil {
		return err
	}
	rawAfter := float64(n) / time.Since(start).Seconds()
	log.Printf("raw kafka-go again: %.0f/s (before: %.0f/s)", rawAfter, rawEPS)
	rawEPS = (rawEPS + rawAfter) / 2
	// The compactor reads through stream.Fetcher (kafka-go's Conn, batches
	// read in place), which costs less per record than kafka.Reader; the
	// summary's reference stays kafka.Reader, and this one is reported too.
	start = time.Now()
	if n, err = rawFetchConsume(ctx, brokers, topic, end); err != nil {
		return err
	}
	rawFetch := float64(n) / time.Since(start).Seconds()
	log.Printf("raw through stream.Fetcher: %.0f/s; ratio against it %.2f", rawFetch, eps/rawFetch)

	objs, err := store.List(ctx, lake.RawPrefix(s.Name))
	if err != nil {
		return err
	}
	var bytes int64
	for _, o := range objs {
		bytes += o.Size
	}
	stored := counts.Valid + counts.Duplicate
	logLoad("end")
	log.Printf("raw lake: %d files, %.1f MiB for %d records", len(objs), float64(bytes)/(1<<20), stored)

	fmt.Printf("bench compact: raw_eps=%.0f eps=%.0f ratio=%.2f bytes_per_event=%.1f rss_mb=%.0f\n",
		rawEPS, eps, eps/rawEPS, float64(bytes)/float64(stored), float64(peakKB)/1024)
	return nil
}

// benchConfig is the example config's compact section (budget, file
// rows and bytes) with max_file_age 2s, over the orders schema only.
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
      amount: float64
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

// logLoad prints the load average: the machine is shared, and a busy
// neighbour slows both rates.
func logLoad(when string) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	log.Printf("load average at %s: %s", when, strings.TrimSpace(string(b)))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

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

func endOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	end := map[int32]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		end[int32(po.Partition)] = po.LastOffset
	}
	return end, nil
}

// rawConsume reads every partition to its end with kafka.Reader.
func rawConsume(ctx context.Context, brokers []string, topic string, end map[int32]int64) (int64, error) {
	return consumeAll(ctx, end, func(p int) (next func(context.Context) (kafka.Message, error), close func()) {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond})
		return r.FetchMessage, func() { r.Close() }
	})
}

// rawFetchConsume is rawConsume through stream.Fetcher, the compactor's path.
func rawFetchConsume(ctx context.Context, brokers []string, topic string, end map[int32]int64) (int64, error) {
	return consumeAll(ctx, end, func(p int) (next func(context.Context) (kafka.Message, error), close func()) {
		f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Partition: p, Offset: kafka.FirstOffset})
		return f.Next, f.Close
	})
}

// consumeAll reads every partition from its first record to its end, one
// goroutine each, through what open returns, and counts the records.
func consumeAll(ctx context.Context, end map[int32]int64, open func(p int) (next func(context.Context) (kafka.Message, error), close func())) (int64, error) {
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for p, last := range end {
		g.Go(func() error {
			next, close := open(int(p))
			defer close()
			for {
				m, err := next(gctx)
				if err != nil {
					return err
				}
				n.Add(1)
				if m.Offset >= last-1 {
					return nil
				}
			}
		})
	}
	err := g.Wait()
	return n.Load(), err
}

func buildBinary() (string, error) {
	dir, err := os.MkdirTemp("", "bench-compact-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lambdalake")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/lambdalake").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build lambdalake: %v: %s", err, out)
	}
	return bin, nil
}

// vmHWM is a process's peak resident set, in KiB.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// cpuSeconds is a process's user+system CPU time so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces, in parens).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // clock ticks; 100 per second on Linux
}

func deleteTopic(brokers []string, topic string) {
	if err := stream.DeleteTopic(context.Background(), brokers, topic); err != nil {
		log.Printf("cleanup: %v", err)
	}
}

// cleanLake deletes the bench's prefix: LocalStack keeps objects in memory.
func cleanLake(store *lake.S3Store) {
	ctx := context.Background()
	objs, err := store.List(ctx, "")
	if err != nil {
		return
	}
	for _, o := range objs {
		store.Delete(ctx, o.Key)
	}
}
