package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
)

func init() {
	commands["gen"] = command{"generate synthetic events to Kafka or stdout", runGen}
	commands["topics"] = command{"create the config's Kafka topics", runTopics}
}

func runGen(ctx context.Context, args []string) error {
	fs, path := flagSet("gen")
	schemaName := fs.String("schema", "orders", "schema to generate")
	count := fs.Int64("count", 0, "events to send (0: until --duration or Ctrl-C)")
	rate := fs.Float64("rate", 0, "events per second (0: as fast as possible)")
	duration := fs.Duration("duration", 0, "stop after this long (live)")
	span := fs.Duration("span", 0, "history: spread --count events over [end-span, end); 0: live, event time = now")
	endFlag := fs.String("end", "now", "history end, RFC 3339 or 'now'")
	keys := fs.String("keys", "", "cardinalities, e.g. tenant=10,user_id=100000")
	defKeys := fs.Int("default-keys", 10, "cardinality of fields not named in --keys")
	ooo := fs.Float64("out-of-order", 0.05, "share of events delayed up to --max-delay")
	maxDelay := fs.Duration("max-delay", 10*time.Minute, "largest out-of-order delay")
	dups := fs.Float64("duplicates", 0.02, "share of exact duplicates (same id)")
	bad := fs.Float64("malformed", 0.01, "share of malformed records")
	seed := fs.Uint64("seed", 1, "random seed: same seed, same events")
	out := fs.String("out", "kafka", "kafka or stdout")
	batch := fs.Int("batch", 5000, "events per produce call")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	s := cfg.Schema(*schemaName)
	if s == nil {
		return fmt.Errorf("%w: --schema: no schema %q in %s", errUsage, *schemaName, *path)
	}
	card, err := parseKeys(*keys)
	if err != nil {
		return fmt.Errorf("%w: --keys: %v", errUsage, err)
	}
	gc := gen.Config{Schema: s, Cardinality: card, DefaultCardinality: *defKeys, OutOfOrder: *ooo,
		MaxDelay: *maxDelay, Duplicates: *dups, Malformed: *bad, Seed: *seed}
	if *span > 0 {
		if *count <= 0 {
			return fmt.Errorf("%w: --span needs --count", errUsage)
		}
		end := time.Now()
		if *endFlag != "now" {
			if end, err = time.Parse(time.RFC3339, *endFlag); err != nil {
				return fmt.Errorf("%w: --end: %v", errUsage, err)
			}
		}
		gc.From, gc.To, gc.Count = end.Add(-*span), end, *count
	} else if *count == 0 && *duration == 0 && *rate == 0 {
		return fmt.Errorf("%w: say how much: --count, --duration or --rate", errUsage)
	}
	g, err := gen.New(gc)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	var sink gen.Sink
	senders := 2
	switch *out {
	case "stdout":
		sink, senders = gen.NewWriterSink(os.Stdout), 1
	case "kafka":
		if err := stream.EnsureTopic(ctx, cfg.Kafka.Brokers, s.Topic, cfg.Kafka.Partitions); err != nil {
			return err
		}
		w := stream.NewWriter(cfg.Kafka.Brokers, s.Topic)
		defer w.Close()
		sink = gen.KafkaSink{W: w}
	default:
		return fmt.Errorf("%w: --out must be kafka or stdout", errUsage)
	}
	progress := func(c gen.Counts, el time.Duration) {
		fmt.Fprintf(os.Stderr, "gen: %d sent in %s (%.0f/s)\n", c.Total, el.Round(time.Millisecond), float64(c.Total)/el.Seconds())
	}
	start := time.Now()
	counts, err := gen.Run(ctx, g, sink, gen.RunConfig{Count: *count, Rate: *rate, Duration: *duration, Batch: *batch, Senders: senders, Progress: progress})
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "gen: %s to %s in %s: %s eps=%.0f\n", s.Name, *out, el.Round(time.Millisecond), counts, float64(counts.Total)/el.Seconds())
	if err != nil && ctx.Err() != nil {
		return nil // Ctrl-C: what was sent is reported above
	}
	return err
}

func parseKeys(s string) (map[string]int, error) {
	m := map[string]int{}
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("want field=N, got %q", kv)
		}
		m[strings.TrimSpace(k)] = n
	}
	return m, nil
}

func runTopics(ctx context.Context, args []string) error {
	fs, path := flagSet("topics")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	for _, s := range cfg.SchemaList {
		if err := stream.EnsureTopic(ctx, cfg.Kafka.Brokers, s.Topic, cfg.Kafka.Partitions); err != nil {
			return err
		}
		n, err := stream.PartitionCount(ctx, cfg.Kafka.Brokers, s.Topic)
		if err != nil {
			return err
		}
		fmt.Printf("topic %s: %d partitions\n", s.Topic, n)
	}
	return nil
}
