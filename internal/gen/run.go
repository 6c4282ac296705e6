package gen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/internal/stream"
)

// Sink receives batches of events.
type Sink interface {
	Send(ctx context.Context, batch []Event) error
}

// RunConfig says how many events to make and how fast.
type RunConfig struct {
	Count    int64         // stop after this many; 0: until Duration or ctx ends
	Duration time.Duration // live: stop after this long; 0: no limit
	Rate     float64       // events/s; 0: as fast as the sink takes them
	Batch    int           // events per Send (default 5000)
	Senders  int           // concurrent Sends (default 2)
	Progress func(Counts, time.Duration)
	Clock    func() time.Time // event time in live mode (default time.Now)
}

// Run generates events into sink until the count, the duration or ctx ends,
// and returns what it sent. Events are sent in generation order per sender.
func Run(ctx context.Context, g *Generator, sink Sink, rc RunConfig) (Counts, error) {
	if rc.Batch <= 0 {
		rc.Batch = 5000
	}
	if rc.Senders <= 0 {
		rc.Senders = 2
	}
	if rc.Clock == nil {
		rc.Clock = time.Now
	}
	start := time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	batches := make(chan []Event, rc.Senders)
	var sent Counts
	sentCh := make(chan []Event, rc.Senders*2)
	for range rc.Senders {
		eg.Go(func() error {
			for b := range batches {
				if err := sink.Send(ectx, b); err != nil {
					return err
				}
				sentCh <- b
			}
			return nil
		})
	}
	// Tally what the sink acknowledged, not what was made.
	tallied := make(chan struct{})
	go func() {
		defer close(tallied)
		lastReport := time.Now()
		for b := range sentCh {
			for i := range b {
				sent.add(&b[i])
			}
			if rc.Progress != nil && time.Since(lastReport) >= time.Second {
				rc.Progress(sent, time.Since(start))
				lastReport = time.Now()
			}
		}
	}()
	eg.Go(func() error {
		defer close(batches)
		var made int64
		tick := 10 * time.Millisecond
		for {
			if rc.Count > 0 && made >= rc.Count {
				return nil
			}
			if rc.Duration > 0 && time.Since(start) >= rc.Duration {
				return nil
			}
			n := int64(rc.Batch)
			if rc.Rate > 0 {
				// Pace by the clock: make what is due by now.
				due := int64(rc.Rate*time.Since(start).Seconds()) - made
				if due <= 0 {
					select {
					case <-ectx.Done():
						return nil
					case <-time.After(tick):
					}
					continue
				}
				n = min(n, due)
			}
			if rc.Count > 0 {
				n = min(n, rc.Count-made)
			}
			b := make([]Event, n)
			now := rc.Clock()
			for i := range b {
				b[i] = g.Next(now)
			}
			made += n
			select {
			case batches <- b:
			case <-ectx.Done():
				return nil
			}
		}
	})
	err := eg.Wait()
	close(sentCh)
	<-tallied
	if rc.Progress != nil {
		rc.Progress(sent, time.Since(start))
	}
	if err == nil && ctx.Err() != nil && rc.Count > 0 && sent.Total < rc.Count {
		err = ctx.Err()
	}
	return sent, err
}

// KafkaSink writes events to a topic, keyed by Event.Key (stream.NewWriter
// places a key's records in one partition); Send returns once Kafka
// acknowledged.
type KafkaSink struct {
	W *kafka.Writer
}

func (s KafkaSink) Send(ctx context.Context, batch []Event) error {
	msgs := make([]kafka.Message, len(batch))
	for i := range batch {
		msgs[i].Value, msgs[i].Key = batch[i].Value, batch[i].Key
	}
	if err := s.W.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("gen: produce to %s: %w", s.W.Topic, stream.Summarize(err))
	}
	return nil
}

// WriterSink writes events as NDJSON lines. It is meant for one sender.
type WriterSink struct {
	W *bufio.Writer
}

// NewWriterSink returns a sink writing lines to w.
func NewWriterSink(w io.Writer) *WriterSink { return &WriterSink{W: bufio.NewWriterSize(w, 1<<20)} }

func (s *WriterSink) Send(ctx context.Context, batch []Event) error {
	for i := range batch {
		s.W.Write(batch[i].Value)
		if err := s.W.WriteByte('\n'); err != nil {
			return fmt.Errorf("gen: write: %w", err)
		}
	}
	return s.W.Flush()
}
