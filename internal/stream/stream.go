// Package stream is the Kafka plumbing shared by the producers and consumers
// of DESIGN §2: topic creation with a configured partition count, a
// producer tuned for throughput that places keyed records by key, and a
// partition Fetcher the speed worker and the compactor read through. It wraps segmentio/kafka-go; the consumer
// loops themselves live with their layer (speed, batch).
package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopic creates topic with the given partition count if it does not
// exist. An existing topic is left as it is, whatever its partition count.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	if len(brokers) == 0 {
		return errors.New("stream: no brokers")
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return fmt.Errorf("stream: create topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("stream: create topic %s: %w", topic, err)
	}
	// Metadata can lag creation by a moment; wait until the partitions are
	// visible so an immediate produce does not fail with an unknown topic.
	for {
		n, err := PartitionCount(ctx, brokers, topic)
		if err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream: wait for topic %s: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DeleteTopic deletes topic and its data. Tests and benchmarks delete what
// they create, so repeated runs do not fill the broker's disk.
func DeleteTopic(ctx context.Context, brokers []string, topic string) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("stream: delete topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil {
		return fmt.Errorf("stream: delete topic %s: %w", topic, err)
	}
	return nil
}

// PartitionCount returns how many partitions a topic has.
func PartitionCount(ctx context.Context, brokers []string, topic string) (int, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("stream: metadata %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name == topic {
			if t.Error != nil {
				return 0, fmt.Errorf("stream: metadata %s: %w", topic, t.Error)
			}
			return len(t.Partitions), nil
		}
	}
	return 0, fmt.Errorf("stream: topic %s not found", topic)
}

// BatchBytes bounds a Writer's batches, under the broker default
// message.max.bytes (1 MiB).
const BatchBytes = 1_000_000

// MaxValueBytes is the largest message value a Writer takes: a message
// over BatchBytes (value plus kafka-go's few bytes of framing) is refused
// whole, so producers check values against this first.
const MaxValueBytes = BatchBytes - 1<<10

// NewWriter returns a producer for topic that batches for throughput and
// acknowledges a write only once every in-sync replica has it, so a message
// WriteMessages returned for is durable. Keyed messages go to the partition
// of their key (KeyBalancer), unkeyed ones round robin.
func NewWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:            kafka.TCP(brokers...),
		Topic:           topic,
		Balancer:        &KeyBalancer{},
		BatchSize:       10000,
		BatchBytes:      BatchBytes,
		BatchTimeout:    5 * time.Millisecond,
		RequiredAcks:    kafka.RequireAll,
		MaxAttempts:     10,
		WriteBackoffMin: 100 * time.Millisecond,
		WriteBackoffMax: 2 * time.Second,
	}
}

// KeyBalancer places a keyed message by the murmur2 hash of its key, as
// the Java client's default partitioner (and librdkafka's
// murmur2_random) does, so a producer of ours and one written in another
// language put a key in the same partition; every copy of an event keyed
// by its id then meets in one partition. An unkeyed message (nil key) is
// spread round robin. Safe for concurrent use.
type KeyBalancer struct {
	keyed   kafka.Murmur2Balancer
	unkeyed kafka.RoundRobin
}

// Balance returns the partition for msg, one of partitions.
func (b *KeyBalancer) Balance(msg kafka.Message, partitions ...int) int {
	if msg.Key == nil {
		return b.unkeyed.Balance(msg, partitions...)
	}
	return b.keyed.Balance(msg, partitions...)
}

// Ping checks that a broker answers.
func Ping(ctx context.Context, brokers []string) error {
	var d net.Dialer
	var last error
	for _, b := range brokers {
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
	}
	return fmt.Errorf("stream: no broker reachable: %w", last)
}

// Summarize shortens kafka-go's WriteErrors, which carries one error per
// message of a batch, to the count and the first distinct error, so one
// failed batch does not print thousands of lines.
func Summarize(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	var first error
	for _, e := range we {
		if e != nil {
			first = e
			break
		}
	}
	return fmt.Errorf("%d of %d messages failed, first: %w", we.Count(), len(we), first)
}
