package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
)

// Produce writes the events to topic in batches, each record keyed as gen
// keys it (by event id; malformed records unkeyed), so that every copy of
// an event lands in one partition as the Events API sends it.
func Produce(t testing.TB, brokers []string, topic string, events []gen.Event) {
	t.Helper()
	w := stream.NewWriter(brokers, topic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const batch = 5000
	for i := 0; i < len(events); i += batch {
		msgs := make([]kafka.Message, 0, batch)
		for _, e := range events[i:min(i+batch, len(events))] {
			msgs = append(msgs, kafka.Message{Key: e.Key, Value: e.Value})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
}

// EndOffsets returns each partition's next offset to be written. A fresh
// topic's leaders may not be known to every broker yet, so it retries for
// up to 30 seconds.
func EndOffsets(t testing.TB, brokers []string, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := stream.PartitionCount(ctx, brokers, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	out := map[int]int64{}
	for p := range n {
		for {
			if out[p], err = lastOffset(ctx, brokers[0], topic, p); err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("end offset of %s/%d: %v", topic, p, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return out
}

func lastOffset(ctx context.Context, broker, topic string, partition int) (int64, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn.ReadLastOffset()
}
