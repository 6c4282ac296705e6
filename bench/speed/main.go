// Command speed benchmarks the speed layer against the local stack (DESIGN
// §7). On one fresh 4-partition topic of ≥2M generated orders it measures,
// in the same run:
//
//	(a) raw_eps: kafka-go's kafka.Reader reading every message of every
//	             partition, decoding nothing (run before and after (b), the
//	             mean is reported);
//	(b) eps:     the speed layer end to end (consume, decode, aggregate, apply
//	             to Redis with offsets) until the stored offsets reach the end;
//	(a')         logged only: the raw rate through stream.Fetcher, the
//	             worker's own read path, and the ratio against it;
//
// then, with the worker caught up, the freshness of live traffic produced
// at 50k events/s: time from an event's creation to its being counted in
// Redis, p50 and p99, and the worker's peak RSS. The worker runs as a child
// process (this binary re-executed) so its RSS is its own.
//
// Freshness is read from two curves: events created by time t (the producer
// records each batch) and events counted in Redis by time t (polled every
// 10ms from the view's cells). The n-th counted event is matched to the n-th
// created one, which assumes roughly FIFO delivery across partitions.
//
// LAMBDALAKE_BENCH_CPUPROFILE=file writes the worker's CPU profile.
//
// The last line is the DESIGN §7 summary:
//
//	bench speed: raw_eps=… eps=… ratio=… fresh_p50_ms=… fresh_p99_ms=… rss_mb=…
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const childEnv = "LAMBDALAKE_BENCH_SPEED_WORKER" // "topic,view,group": run as the worker

const partitions = 4

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var (
	brokers   = strings.Split(env("LAMBDALAKE_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	redisAddr = env("LAMBDALAKE_REDIS_ADDR", "127.0.0.1:6379")
)

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
	flag.Parse()
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Others' load on the machine skews every figure; say how much there was.
	logLoad := func(when string) {
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			log.Printf("load average %s: %s", when, strings.Join(strings.Fields(string(b))[:3], " "))
		}
	}
	logLoad("at start")
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := "bench-speed-" + suffix
	view := benchView(topic, "bench_speed_"+suffix)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}})
	defer rdb.Close()
	defer cleanup(rdb, view)

	// The backlog.
	if err := stream.EnsureTopic(ctx, brokers, topic, partitions); err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	g, err := gen.New(gen.Config{Schema: view.Schema, From: now.Add(-time.Hour), To: now, Count: *count,
		Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100000},
		OutOfOrder:  0.05, MaxDelay: 5 * time.Minute, Duplicates: 0.02, Malformed: 0.01, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	w := stream.NewWriter(brokers, topic)
	start := time.Now()
	counts, err := gen.Run(ctx, g, gen.KafkaSink{W: w}, gen.RunConfig{Count: *count, Batch: 10000, Senders: 4})
	w.Close()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("produced %s in %s", counts, time.Since(start).Round(time.Millisecond))
	end := endOffsets(ctx, topic)
	var total int64
	for _, e := range end {
		total += e
	}

	// (a) raw consume, measured before and after (b) and averaged, so that
	// load from elsewhere on the machine weighs on both sides alike.
	cpu0 := selfCPU()
	rawBefore := rawConsume(ctx, topic, end, total)
	rawCPU := (selfCPU() - cpu0).Seconds() * 1e6 / float64(total)
	log.Printf("(a) raw kafka-go consume: %d records, %.0f/s, %.2f µs CPU each", total, rawBefore, rawCPU)

	// (b) the speed layer, in a child process.
	child, assigned := startChild(topic, view.Name, "bench-speed-"+suffix)
	defer child.Process.Kill()
	var t0 time.Time
	select {
	case t0 = <-assigned:
	case <-time.After(60 * time.Second):
		log.Fatal("worker got no partitions within 60s")
	}
	cpu0 = procCPU(child.Process.Pid)
	waitOffsets(ctx, rdb, view, end, 5*time.Minute)
	el := time.Since(t0)
	eps := float64(total) / el.Seconds()
	// CPU per record is steadier than rates on a shared machine; Redis'
	// and the broker's share is not in it.
	workerCPU := (procCPU(child.Process.Pid) - cpu0).Seconds() * 1e6 / float64(total)
	log.Printf("(b) speed layer end to end: %d records in %s, %.0f/s, %.2f µs worker CPU each", total, el.Round(time.Millisecond), eps, workerCPU)
	rawAfter := rawConsume(ctx, topic, end, total)
	rawEPS := (rawBefore + rawAfter) / 2
	log.Printf("(a) raw kafka-go consume again: %.0f/s; mean %.0f/s", rawAfter, rawEPS)
	// The worker reads through stream.Fetcher (kafka-go's Conn, batches
	// read in place), which costs less per record than kafka.Reader; the
	// summary's reference is kafka.Reader, so this second one is reported
	// too, for the ratio it gives.
	cpu0 = selfCPU()
	rawFetch := rawFetchConsume(ctx, topic, end, total)
	log.Printf("(a') raw consume through stream.Fetcher: %.0f/s, %.2f µs CPU each; ratio against it %.2f",
		rawFetch, (selfCPU()-cpu0).Seconds()*1e6/float64(total), eps/rawFetch)

	// Freshness under live traffic.
	p50, p99, n := freshness(ctx, rdb, view, *rate, *liveFor)
	log.Printf("freshness over %d live events at %.0f/s: p50=%s p99=%s", n, *rate, p50, p99)

	logLoad("at end")
	rss := vmHWM(child.Process.Pid)
	child.Process.Signal(syscall.SIGTERM)
	child.Wait()
	fmt.Printf("bench speed: raw_eps=%.0f eps=%.0f ratio=%.2f fresh_p50_ms=%d fresh_p99_ms=%d rss_mb=%.0f\n",
		rawEPS, eps, eps/rawEPS, p50.Milliseconds(), p99.Milliseconds(), float64(rss)/(1<<20))
}

func endOffsets(ctx context.Context, topic string) []int64 {
	end := make([]int64, partitions)
	for p := range end {
		off, err := speed.OffsetAt(ctx, brokers, topic, p, time.Now().Add(time.Hour))
		if err != nil {
			log.Fatal(err)
		}
		end[p] = off
	}
	return end
}

// rawConsume reads every partition to its end with kafka.Reader (the
// worker's former settings), one goroutine per partition, and returns
// records per second.
func rawConsume(ctx context.Context, topic string, end []int64, total int64) float64 {
	return consumeAll(ctx, end, total, func(p int) (next func(context.Context) (kafka.Message, error), close func()) {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 2000})
		return r.FetchMessage, func() { r.Close() }
	})
}

// rawFetchConsume is rawConsume through stream.Fetcher, the worker's path.
func rawFetchConsume(ctx context.Context, topic string, end []int64, total int64) float64 {
	return consumeAll(ctx, end, total, func(p int) (next func(context.Context) (kafka.Message, error), close func()) {
		f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Partition: p, Offset: kafka.FirstOffset})
		return f.Next, f.Close
	})
}

// consumeAll reads every partition from its first record to its end, one
// goroutine each, through what open returns, and returns records per second.
func consumeAll(ctx context.Context, end []int64, total int64, open func(p int) (next func(context.Context) (kafka.Message, error), close func())) float64 {
	start := time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	for p := range end {
		eg.Go(func() error {
			next, close := open(p)
			defer close()
			var bytes int
			for {
				m, err := next(ectx)
				if err != nil {
					return fmt.Errorf("raw consume partition %d: %w", p, err)
				}
				bytes += len(m.Value) // touch the value, decode nothing
				if m.Offset+1 >= end[p] {
					return nil
				}
			}
		})
	}
	if err := eg.Wait(); err != nil {
		log.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

// startChild re-executes this binary as the worker and returns when its
// process runs; assigned receives the time the first partition was assigned.
func startChild(topic, view, group string) (*exec.Cmd, <-chan time.Time) {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+topic+","+view+","+group)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	assigned := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if !once && strings.Contains(line, "partition assigned") {
				assigned <- time.Now()
				once = true
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				log.Printf("worker: %s", line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	return cmd, assigned
}

// runChild is the worker process: a plain speed.Worker on the bench view.
func runChild(spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		log.Fatalf("bad %s=%q", childEnv, spec)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}})
	defer rdb.Close()
	w, err := speed.New(speed.Config{Brokers: brokers, Group: parts[2], Views: []*schemas.View{benchView(parts[0], parts[1])},
		Redis: rdb, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		log.Fatal(err)
	}
	if path := os.Getenv("LAMBDALAKE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

func waitOffsets(ctx context.Context, rdb redis.UniversalClient, v *schemas.View, end []int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for p, e := range end {
			s, _ := rdb.HGet(ctx, speed.OffsetsKey(v.Name), v.Schema.Topic+":"+strconv.Itoa(p)).Result()
			if n, _ := strconv.ParseInt(s, 10, 64); n < e {
				done = false
				break
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.Fatalf("worker did not reach the end offsets within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// point is one sample of a cumulative curve.
type point struct {
	n int64
	t time.Time
}

// recordingSink forwards to Kafka and records when each batch was created.
type recordingSink struct {
	gen.KafkaSink
	mu      sync.Mutex
	created []point // cumulative events created, in send order
	n       int64
}

func (s *recordingSink) Send(ctx context.Context, batch []gen.Event) error {
	s.mu.Lock()
	s.n += int64(len(batch))
	s.created = append(s.created, point{s.n, batch[0].Time})
	s.mu.Unlock()
	return s.KafkaSink.Send(ctx, batch)
}

// counted sums the view's count metric over cells from bucket lo on.
func counted(ctx context.Context, rdb redis.UniversalClient, v *schemas.View, lo int64) int64 {
	members, err := rdb.ZRangeByScore(ctx, speed.IndexKey(v.Name), &redis.ZRangeBy{Min: strconv.FormatInt(lo, 10), Max: "+inf"}).Result()
	if err != nil {
		log.Fatal(err)
	}
	cmds := make([]*redis.StringCmd, len(members))
	rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			cmds[i] = p.HGet(ctx, speed.BucketKey(v.Name, m), "orders")
		}
		return nil
	})
	var n int64
	for _, c := range cmds {
		x, _ := strconv.ParseInt(c.Val(), 10, 64)
		n += x
	}
	return n
}

// freshness produces live events at rate for d and measures creation →
// counted latency.
func freshness(ctx context.Context, rdb redis.UniversalClient, v *schemas.View, rate float64, d time.Duration) (p50, p99 time.Duration, n int64) {
	g, err := gen.New(gen.Config{Schema: v.Schema, Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100000}, Seed: 2})
	if err != nil {
		log.Fatal(err)
	}
	w := stream.NewWriter(brokers, v.Schema.Topic)
	defer w.Close()
	sink := &recordingSink{KafkaSink: gen.KafkaSink{W: w}}
	lo := v.Bucket(time.Now().UnixMicro())
	base := counted(ctx, rdb, v, lo)

	var samples []point
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pctx.Err() == nil {
			c := counted(ctx, rdb, v, lo) - base
			samples = append(samples, point{c, time.Now()})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	sent, err := gen.Run(ctx, g, sink, gen.RunConfig{Rate: rate, Duration: d, Batch: 500, Senders: 2})
	if err != nil {
		log.Fatal(err)
	}
	// Drain: wait until everything sent is counted.
	deadline := time.Now().Add(30 * time.Second)
	for counted(ctx, rdb, v, lo)-base < sent.Total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-polled
	// The poller may have stopped just before the last count landed.
	samples = append(samples, point{counted(ctx, rdb, v, lo) - base, time.Now()})

	var lat []time.Duration
	si := 0
	var prev int64
	for _, c := range sink.created {
		// Events (prev, c.n] were created at c.t; each is counted at the
		// first sample reaching its index.
		for k := prev + 1; k <= c.n; k++ {
			for si < len(samples) && samples[si].n < k {
				si++
			}
			if si == len(samples) {
				log.Printf("freshness: %d of %d events never counted", sent.Total-k+1, sent.Total)
				goto done
			}
			lat = append(lat, samples[si].t.Sub(c.t))
		}
		prev = c.n
	}
done:
	if len(lat) == 0 {
		log.Fatal("freshness: no samples")
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], int64(len(lat))
}

// selfCPU is the user+system CPU this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user+system CPU another process has used (from
// /proc/PID/stat, in clock ticks of 10ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Printf("rss: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cleanup deletes the benchmark view's keys and its topic.
func cleanup(rdb redis.UniversalClient, v *schemas.View) {
	ctx := context.Background()
	if err := stream.DeleteTopic(ctx, brokers, v.Schema.Topic); err != nil {
		log.Printf("cleanup: %v", err)
	}
	speed.Reset(ctx, speed.ResetConfig{Brokers: brokers, Redis: rdb, View: v, Now: time.Now().Add(time.Hour)})
	rdb.Del(ctx, speed.OffsetsKey(v.Name))
}
