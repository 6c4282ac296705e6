package gen_test

// An external test package: testenv's Kafka helpers import gen.

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
)

// gen to the real broker: every copy of an event (duplicates) in the
// partition of its first copy.
func TestKafkaSinkKeysRecords(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	const partitions = 4
	topic := testenv.Topic(t, brokers, partitions)
	ex, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	cfg := gen.Config{Schema: ex.Schema("orders"), From: from, To: from.Add(6 * time.Hour), Count: 4000,
		Cardinality: map[string]int{"tenant": 5}, OutOfOrder: 0.05, MaxDelay: 10 * time.Minute,
		Duplicates: 0.2, Malformed: 0.01, Seed: 9}
	g, err := gen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := stream.NewWriter(brokers, topic)
	defer w.Close()
	counts, err := gen.Run(context.Background(), g, gen.KafkaSink{W: w}, gen.RunConfig{Count: cfg.Count, Batch: 500})
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]int{}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	total, unkeyed := 0, 0
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatal(po.Error)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: po.Partition, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for off := int64(0); off < po.LastOffset; off++ {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d: %v", po.Partition, err)
			}
			total++
			if m.Key == nil {
				unkeyed++ // malformed records
				continue
			}
			byKey[string(m.Key)] = append(byKey[string(m.Key)], m.Partition)
		}
		cancel()
		r.Close()
	}
	if int64(total) != counts.Total || int64(unkeyed) != counts.Malformed {
		t.Fatalf("read %d records (%d unkeyed), gen sent %v", total, unkeyed, counts)
	}
	copies, used := 0, map[int]bool{}
	for k, ps := range byKey {
		if slices.Min(ps) != slices.Max(ps) {
			t.Errorf("copies of %s in partitions %v", k, ps)
		}
		copies += len(ps) - 1
		used[ps[0]] = true
	}
	if int64(copies) != counts.Duplicate || len(used) != partitions {
		t.Errorf("%d repeated keys (gen made %d duplicates), partitions used %v", copies, counts.Duplicate, used)
	}
}
