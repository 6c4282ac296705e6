package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/serving"
)

func init() {
	commands["dev"] = command{"everything embedded: Kafka, Redis, lake folder, generator, all layers", runDev}
}

// runDev starts everything in one process on embedded servers: an
// in-process Kafka-protocol broker (kfake), an in-process Redis-protocol
// server (miniredis), a lake in a local folder, and the layers wired with
// their production code paths. Its own ports differ from the local stack's
// so `make run` works beside `make up`.
func runDev(ctx context.Context, args []string) error {
	fs, _ := flagSet("dev")
	kafkaAddr := fs.String("kafka", "127.0.0.1:19092", "address of the embedded Kafka broker")
	redisAddr := fs.String("redis", "127.0.0.1:16379", "address of the embedded Redis server")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP address")
	lakeDir := fs.String("lake-dir", ".lake/dev", "lake folder")
	rate := fs.Float64("rate", 200, "live events per second per schema (0: none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := filepath.Abs(*lakeDir)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(lambdalake.ExampleConfig, func(k string) (string, bool) {
		switch k {
		case "LAMBDALAKE_KAFKA_BROKERS":
			return *kafkaAddr, true
		case "LAMBDALAKE_REDIS_ADDRS":
			return *redisAddr, true
		case "LAMBDALAKE_LAKE_URL":
			return "file://" + dir, true
		case "LAMBDALAKE_HTTP_ADDR":
			return *httpAddr, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		return fmt.Errorf("dev config: %w", err)
	}

	_, port, _ := strings.Cut(*kafkaAddr, ":")
	var kport int
	fmt.Sscan(port, &kport)
	var topics []string
	for _, s := range cfg.SchemaList {
		topics = append(topics, s.Topic)
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(kport), kfake.SeedTopics(int32(cfg.Kafka.Partitions), topics...))
	if err != nil {
		return fmt.Errorf("dev: start embedded Kafka on %s: %w", *kafkaAddr, err)
	}
	defer broker.Close()
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(*redisAddr); err != nil {
		return fmt.Errorf("dev: start embedded Redis on %s: %w", *redisAddr, err)
	}
	defer mr.Close()
	store, err := lake.NewDirStore(dir)
	if err != nil {
		return err
	}
	rdb := cfg.Redis.Client()
	defer rdb.Close()

	srv := serving.New(serving.Config{Addr: cfg.HTTP.Addr, Checks: map[string]serving.Check{
		"kafka": func(ctx context.Context) error { return stream.Ping(ctx, cfg.Kafka.Brokers) },
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"lake":  func(ctx context.Context) error { _, err := store.List(ctx, "_checkpoints/"); return err },
	}})

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	if *rate > 0 {
		for i, s := range cfg.SchemaList {
			gen, err := gen.New(gen.Config{Schema: s, OutOfOrder: 0.05, MaxDelay: 0, Duplicates: 0.02, Malformed: 0.01, Seed: uint64(i + 1)})
			if err != nil {
				return err
			}
			g.Go(func() error { return produceLive(gctx, cfg.Kafka.Brokers, s.Topic, gen, *rate) })
		}
	}

	fmt.Printf(`lambdalake dev is running (Ctrl-C to stop)
  HTTP       http://%s   (/healthz /readyz /metrics)
  Kafka      %s   (embedded, topics: %s)
  Redis      %s   (embedded)
  Lake       %s
  Generator  %.0f events/s per schema
`, cfg.HTTP.Addr, *kafkaAddr, strings.Join(topics, ", "), *redisAddr, dir, *rate)
	err = g.Wait()
	slog.Info("dev: stopped")
	return err
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
