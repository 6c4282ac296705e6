package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
)

// The fetcher against the real broker: every record once and in order from
// where it starts, whether or not it is woken (its context cancelled) in
// the middle of a fetch, during an idle wait, or between fetches.
func TestFetcherReadsEveryRecordOnce(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Topic(t, brokers, 1)
	const n = 5000
	produce := func(from, to int) {
		t.Helper()
		w := stream.NewWriter(brokers, topic)
		defer w.Close()
		msgs := make([]kafka.Message, 0, to-from)
		for i := from; i < to; i++ {
			msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, "v-%d", i)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, n)

	tests := []struct {
		name  string
		start int64
		// wakeEvery cancels the context after this many records (0:
		// never), as the age timer or a flush request does.
		wakeEvery int
	}{
		{"from the first offset", kafka.FirstOffset, 0},
		{"from an offset", 1234, 0},
		{"woken often", kafka.FirstOffset, 100},
		{"woken rarely, from an offset", 4000, 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs []error
			f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Offset: tt.start, OnError: func(err error) { errs = append(errs, err) }})
			defer f.Close()
			want := max(tt.start, 0)
			deadline := time.Now().Add(30 * time.Second)
			for want < n && time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				for got := 0; ; got++ {
					if tt.wakeEvery > 0 && got == tt.wakeEvery {
						cancel()
					}
					m, err := f.Next(ctx)
					if err != nil {
						if !errors.Is(err, context.Canceled) {
							t.Fatalf("next: %v", err)
						}
						break
					}
					if m.Offset != want || string(m.Value) != fmt.Sprintf("v-%d", want) {
						t.Fatalf("record at offset %d %q, want offset %d", m.Offset, m.Value, want)
					}
					want++
					if want == n {
						break
					}
				}
				cancel()
			}
			if want != n {
				t.Fatalf("read up to offset %d, want %d", want, n)
			}
			if len(errs) > 0 {
				t.Errorf("fetch errors on a healthy broker: %v", errs)
			}
		})
	}

	t.Run("an idle wait ends when woken, then goes on", func(t *testing.T) {
		var errs []error
		f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Offset: n - 1, OnError: func(err error) { errs = append(errs, err) }})
		defer f.Close()
		if m, err := f.Next(context.Background()); err != nil || m.Offset != n-1 {
			t.Fatalf("next = offset %d, %v; want %d", m.Offset, err, n-1)
		}
		// Several empty fetches (each waits up to 250 ms on the broker),
		// then a wake in the middle of one.
		ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := f.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("next on a caught-up partition = %v, want the context's error", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("woken after %v", took)
		}
		if len(errs) > 0 {
			t.Errorf("empty fetches reported errors: %v", errs)
		}
		// The broker holds each empty fetch: no busy loop.
		if fetches := f.Fetches(); fetches > 12 {
			t.Errorf("%d fetches in 1.1 s of waiting, want a few (250 ms each)", fetches)
		}
		produce(n, n+10)
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for want := int64(n); want < n+10; want++ {
			m, err := f.Next(ctx)
			if err != nil || m.Offset != want {
				t.Fatalf("after the wake: offset %d, %v; want %d", m.Offset, err, want)
			}
		}
	})

	t.Run("an offset past the end is waited for", func(t *testing.T) {
		var errs []error
		// The topic holds n+10 records now; start 5 past its end.
		f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Offset: n + 15, OnError: func(err error) { errs = append(errs, err) }})
		defer f.Close()
		done := make(chan kafka.Message, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			m, err := f.Next(ctx)
			if err != nil {
				t.Errorf("next: %v", err)
			}
			done <- m
		}()
		time.Sleep(500 * time.Millisecond)
		produce(n+10, n+20)
		m := <-done
		if m.Offset != n+15 || string(m.Value) != fmt.Sprintf("v-%d", n+15) {
			t.Fatalf("first record = offset %d %q, want %d", m.Offset, m.Value, n+15)
		}
		for _, err := range errs {
			if !errors.Is(err, kafka.OffsetOutOfRange) {
				t.Errorf("unexpected fetch error: %v", err)
			}
		}
	})
}

// NextValue reads what Next reads: every record once, in order, from where
// it starts (a fetch may begin before that offset), growing a buffer that
// is too small for a value.
func TestFetcherNextValue(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Topic(t, brokers, 1)
	const n = 3000
	w := stream.NewWriter(brokers, topic)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		// Values of growing size, so a small buffer is outgrown more than once.
		msgs[i] = kafka.Message{Value: fmt.Appendf(nil, "v-%d-%s", i, strings.Repeat("x", i/10))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, start := range []int64{kafka.FirstOffset, 1234, n - 1} {
		t.Run(fmt.Sprint("from ", start), func(t *testing.T) {
			var errs []error
			f := stream.NewFetcher(stream.FetcherConfig{Brokers: brokers, Topic: topic, Offset: start,
				OnError: func(err error) { errs = append(errs, err) }})
			defer f.Close()
			buf := make([]byte, 0, 2)
			for want := max(start, 0); want < n; want++ {
				v, err := f.NextValue(ctx, buf)
				if err != nil {
					t.Fatalf("NextValue: %v", err)
				}
				if v.Offset != want || string(v.Bytes) != string(msgs[want].Value) {
					t.Fatalf("record at offset %d %q, want offset %d %q", v.Offset, v.Bytes, want, msgs[want].Value)
				}
				if v.HighWaterMark != n {
					t.Fatalf("high-water mark %d, want %d", v.HighWaterMark, n)
				}
				buf = v.Bytes[:0]
			}
			if len(errs) > 0 {
				t.Errorf("fetch errors on a healthy broker: %v", errs)
			}
		})
	}
}
