package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

func init() {
	commands["dev"] = command{"everything embedded: Kafka, Redis, lake folder, generator, all layers", runDev}
}

// devOverrides are the settings dev changes from the example config: the
// embedded endpoints, and schedules short enough that the first hours are
// recomputed within a minute.
func devOverrides(kafkaAddr, redisAddr, lakeURL, httpAddr string) map[string]string {
	return map[string]string{
		"LAMBDALAKE_KAFKA_BROKERS":        kafkaAddr,
		"LAMBDALAKE_REDIS_ADDRS":          redisAddr,
		"LAMBDALAKE_LAKE_URL":             lakeURL,
		"LAMBDALAKE_HTTP_ADDR":            httpAddr,
		"LAMBDALAKE_COMPACT_MAX_FILE_AGE": "5s",
		"LAMBDALAKE_JOBS_RECOMPUTE":       "*/10 * * * * *",
		"LAMBDALAKE_JOBS_MERGE":           "30 * * * * *",
		"LAMBDALAKE_JOBS_RETENTION":       "0 */10 * * * *",
		"LAMBDALAKE_JOBS_LEASE":           "20s",
	}
}

// runDev starts everything in one process on embedded servers: an
// in-process Kafka-protocol broker (kfake), an in-process Redis-protocol
// server (miniredis), a lake in a local folder, and every layer wired with
// its production code (runRoles, as `all`). It fills Kafka with six hours of
// history (late, duplicate and malformed events included), then keeps
// producing live events. Its ports differ from the local stack's so
// `make run` works beside `make up`.
func runDev(ctx context.Context, args []string) error {
	fs, _ := flagSet("dev")
	kafkaAddr := fs.String("kafka", "127.0.0.1:19092", "address of the embedded Kafka broker")
	redisAddr := fs.String("redis", "127.0.0.1:16379", "address of the embedded Redis server")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP address of the API and dashboard")
	lakeDir := fs.String("lake-dir", ".lake/dev", "lake folder (an earlier run's is moved to <dir>.prev)")
	history := fs.Int64("history", 360000, "events of history per schema, spread over the last --span")
	span := fs.Duration("span", 6*time.Hour, "how far back the history reaches")
	rate := fs.Float64("rate", 20, "live events per second per schema (0: none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := filepath.Abs(*lakeDir)
	if err != nil {
		return err
	}
	// The embedded broker keeps its log in memory, so the offsets an earlier
	// run left in the lake's checkpoints mean nothing to this one: start the
	// lake afresh, keeping the last run's for inspection.
	if _, err := os.Stat(dir); err == nil {
		os.RemoveAll(dir + ".prev")
		if err := os.Rename(dir, dir+".prev"); err != nil {
			return fmt.Errorf("dev: move the previous lake aside: %w", err)
		}
	}
	overrides := devOverrides(*kafkaAddr, *redisAddr, "file://"+dir, *httpAddr)
	cfg, err := config.Parse(lambdalake.ExampleConfig, func(k string) (string, bool) {
		if v, ok := overrides[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		return fmt.Errorf("dev config: %w", err)
	}

	_, port, _ := strings.Cut(*kafkaAddr, ":")
	kport, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("%w: --kafka %q: want host:port", errUsage, *kafkaAddr)
	}
	var topics []string
	for _, s := range cfg.SchemaList {
		topics = append(topics, s.Topic)
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(kport), kfake.SeedTopics(int32(cfg.Kafka.Partitions), topics...))
	if err != nil {
		return fmt.Errorf("dev: start embedded Kafka on %s: %w", *kafkaAddr, err)
	}
	defer broker.Close()
	redisKind, stopRedis, err := startDevRedis(ctx, *redisAddr)
	if err != nil {
		return err
	}
	defer stopRedis()
	store, err := lake.NewDirStore(dir)
	if err != nil {
		return err
	}
	rdb := cfg.Redis.Client()
	defer rdb.Close()

	// History first, so the layers start on six hours of data.
	now := time.Now()
	for i, s := range cfg.SchemaList {
		g, err := gen.New(gen.Config{Schema: s, From: now.Add(-*span), To: now, Count: *history,
			Cardinality: devKeys(s), OutOfOrder: 0.05, MaxDelay: 10 * time.Minute,
			Duplicates: 0.02, Malformed: 0.01, Seed: uint64(i + 1)})
		if err != nil {
			return err
		}
		w := stream.NewWriter(cfg.Kafka.Brokers, s.Topic)
		c, err := gen.Run(ctx, g, gen.KafkaSink{W: w}, gen.RunConfig{Count: *history})
		w.Close()
		if err != nil {
			return fmt.Errorf("dev: history of %s: %w", s.Name, err)
		}
		slog.Info("dev: history produced", "schema", s.Name, "counts", c.String())
	}

	g, gctx := errgroup.WithContext(ctx)
	if *rate > 0 {
		for i, s := range cfg.SchemaList {
			live, err := gen.New(gen.Config{Schema: s, Cardinality: devKeys(s), OutOfOrder: 0.05,
				MaxDelay: 2 * time.Minute, Duplicates: 0.02, Malformed: 0.01, Seed: uint64(100 + i)})
			if err != nil {
				return err
			}
			g.Go(func() error { return produceLive(gctx, cfg.Kafka.Brokers, s.Topic, live, *rate) })
		}
	}
	g.Go(func() error {
		return runRoles(gctx, cfg, store, rdb, rolesOptions{RunnerID: "dev", AuthDisabled: true, OnServing: func(addr string) {
			printDevBanner(cfg, addr, *kafkaAddr, *redisAddr+"   ("+redisKind+")", dir, now.Add(-*span), *rate)
		}})
	})
	err = g.Wait()
	slog.Info("dev: stopped")
	return err
}

// devKeys gives the example schemas' keys a realistic spread; keys a
// schema lacks are left out.
func devKeys(s *schemas.Schema) map[string]int {
	spread := map[string]int{"user_id": 5000, "visitor": 5000, "tenant": 4, "site": 4, "country": 6, "path": 6}
	out := map[string]int{}
	for k, n := range spread {
		if s.FieldIndex(k) >= 0 {
			out[k] = n
		}
	}
	return out
}

func printDevBanner(cfg *config.Config, httpAddr, kafkaAddr, redisAddr, dir string, from time.Time, rate float64) {
	view := cfg.ViewList[0]
	to := time.Now().Add(time.Hour).Truncate(time.Hour)
	fmt.Printf(`lambdalake dev is running (Ctrl-C to stop)
  Dashboard  http://%[1]s/
  Query      curl -s 'http://%[1]s/v1/views/%[2]s/query?from=%[3]s&to=%[4]s&step=1h'
  API        http://%[1]s/v1/views  /v1/jobs  /v1/openapi.yaml  /healthz  /readyz  /metrics
  Kafka      %[5]s   (embedded, topics: %[6]s)
  Redis      %[7]s
  Lake       %[8]s
             duckdb -c "SELECT count(*) FROM read_parquet('%[8]s/raw/%[9]s/*/*/*.parquet', hive_partitioning=1)"
  Generator  six hours of history, then %.0[10]f events/s per schema
`, httpAddr, view.Name, from.Truncate(time.Hour).UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339),
		kafkaAddr, strings.Join(topicsOf(cfg), ", "), redisAddr, dir, view.Schema.Name, rate)
}

// startDevRedis runs the machine's redis-server on addr when one is on the
// PATH, else the in-process miniredis. Real Redis is preferred: miniredis'
// multi-key PFCOUNT adds the keys' counts instead of counting their union,
// which overstates uniq metrics rolled up over speed buckets.
func startDevRedis(ctx context.Context, addr string) (kind string, stop func(), err error) {
	host, port, _ := strings.Cut(addr, ":")
	if bin, lookErr := exec.LookPath("redis-server"); lookErr == nil {
		cmd := exec.Command(bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no", "--protected-mode", "no")
		if err := cmd.Start(); err != nil {
			return "", nil, fmt.Errorf("dev: start redis-server on %s: %w", addr, err)
		}
		stop = func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		for i := 0; ; i++ {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				return "redis-server " + bin, stop, nil
			}
			if i == 50 || ctx.Err() != nil {
				stop()
				return "", nil, fmt.Errorf("dev: redis-server on %s did not answer: %w", addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(addr); err != nil {
		return "", nil, fmt.Errorf("dev: start embedded Redis on %s: %w", addr, err)
	}
	slog.Warn("dev: no redis-server on the PATH; using the in-process miniredis, whose multi-key PFCOUNT overstates rolled-up uniq metrics (apt-get install redis-server, or make up, fixes it)")
	return "embedded miniredis", mr.Close, nil
}

func topicsOf(cfg *config.Config) []string {
	var ts []string
	for _, s := range cfg.SchemaList {
		ts = append(ts, s.Topic)
	}
	return ts
}

func produceLive(ctx context.Context, brokers []string, topic string, g *gen.Generator, rate float64) error {
	w := stream.NewWriter(brokers, topic)
	defer w.Close()
	_, err := gen.Run(ctx, g, gen.KafkaSink{W: w}, gen.RunConfig{Rate: rate, Batch: 500, Senders: 1})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
