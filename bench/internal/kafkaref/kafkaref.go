// Package kafkaref is the reference side of the consumer benchmarks (DESIGN
// §7): reading a topic to its end with no layer behind the read, so the
// speed worker's and the compactor's rates can be set against what the read
// alone costs on the same machine in the same run. Three references:
//
//   - Reader: kafka-go's kafka.Reader, the usual kafka-go consumer (the
//     raw_eps of the summaries);
//   - Fetcher: internal/stream.Fetcher, the read path both our consumers
//     use (fetch_eps: the like-for-like reference);
//   - Floor: Fetcher plus the schema's field decoder on the fields a view
//     reads, the least any speed layer must do (floor_eps).
//
// It also tells where a consumer under test stands against a topic's end
// (WaitCaughtUp), which is when a bench stops its clock.
package kafkaref

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/schemas"
)

// EndOffsets returns each partition's end offset (the next offset to be
// written), indexed by partition.
func EndOffsets(ctx context.Context, brokers []string, topic string) ([]int64, error) {
	n, err := stream.PartitionCount(ctx, brokers, topic)
	if err != nil {
		return nil, fmt.Errorf("kafkaref: end offsets: %w", err)
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	reqs := make([]kafka.OffsetRequest, n)
	for p := range reqs {
		reqs[p] = kafka.LastOffsetOf(p)
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafkaref: end offsets of %s: %w", topic, err)
	}
	end := make([]int64, n)
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafkaref: end offset of %s/%d: %w", topic, po.Partition, po.Error)
		}
		end[po.Partition] = po.LastOffset
	}
	return end, nil
}

// Total is the sum of end offsets: the records of a topic written from
// offset 0 and never deleted.
func Total(end []int64) int64 {
	var n int64
	for _, e := range end {
		n += e
	}
	return n
}

// Result is one reference read: the records read and how long it took.
type Result struct {
	Records int64
	Elapsed time.Duration
}

// EPS is records per second.
func (r Result) EPS() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// partitionRead reads partition p from its first record to offset end-1.
type partitionRead func(ctx context.Context, p int, end int64) (records int64, err error)

// readAll runs read for every non-empty partition at once, one goroutine
// each, and times the whole.
func readAll(ctx context.Context, end []int64, read partitionRead) (Result, error) {
	var n atomic.Int64
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for p, e := range end {
		if e == 0 {
			continue
		}
		g.Go(func() error {
			k, err := read(gctx, p, e)
			n.Add(k)
			if err != nil {
				return fmt.Errorf("kafkaref: read partition %d: %w", p, err)
			}
			return nil
		})
	}
	err := g.Wait()
	return Result{Records: n.Load(), Elapsed: time.Since(start)}, err
}

// Reader reads every partition to end with kafka.Reader (the speed
// worker's former settings), touching each value and decoding nothing.
func Reader(ctx context.Context, brokers []string, topic string, end []int64) (Result, error) {
	return readAll(ctx, end, func(ctx context.Context, p int, last int64) (int64, error) {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 2000})
		defer r.Close()
		var n int64
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return n, err
			}
			n++
			if m.Offset+1 >= last {
				return n, nil
			}
		}
	})
}

// Fetcher reads every partition to end through stream.Fetcher, as the speed
// worker does (values into one reused buffer), decoding nothing.
func Fetcher(ctx context.Context, brokers []string, topic string, end []int64) (Result, error) {
	return readAll(ctx, end, func(ctx context.Context, p int, last int64) (int64, error) {
		f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Partition: p, Offset: kafka.FirstOffset})
		defer f.Close()
		buf := make([]byte, 0, 64<<10)
		var n int64
		for {
			v, err := f.NextValue(ctx, buf)
			if err != nil {
				return n, err
			}
			n++
			buf = v.Bytes[:0]
			if v.Offset+1 >= last {
				return n, nil
			}
		}
	})
}

// Floor reads every partition to end through stream.Fetcher and decodes each
// value with the schema's field decoder on fields (ViewFields), doing
// nothing else: the floor of any speed layer over these views. It returns
// the read and how many records decoded.
func Floor(ctx context.Context, brokers []string, topic string, end []int64, s *schemas.Schema, fields []int) (Result, int64, error) {
	var ok atomic.Int64
	r, err := readAll(ctx, end, func(ctx context.Context, p int, last int64) (int64, error) {
		f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Partition: p, Offset: kafka.FirstOffset})
		defer f.Close()
		dec := schemas.NewFieldDecoder(s, fields)
		var row schemas.Row
		buf := make([]byte, 0, 64<<10)
		var n, good int64
		defer func() { ok.Add(good) }()
		for {
			v, err := f.NextValue(ctx, buf)
			if err != nil {
				return n, err
			}
			n++
			if dec.Decode(v.Bytes, &row) == nil {
				good++
			}
			buf = v.Bytes[:0]
			if v.Offset+1 >= last {
				return n, nil
			}
		}
	})
	return r, ok.Load(), err
}

// ViewFields are the positions of the fields views read (dimensions and
// metric fields), as the speed worker gives its field decoder.
func ViewFields(views ...*schemas.View) []int {
	var out []int
	for _, v := range views {
		for _, d := range v.Dimensions {
			out = append(out, v.Schema.FieldIndex(d))
		}
		for _, m := range v.Metrics {
			if m.Field != "" {
				out = append(out, v.Schema.FieldIndex(m.Field))
			}
		}
	}
	return out
}
