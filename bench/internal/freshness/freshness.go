// Package freshness measures how long an event takes from its creation to
// being counted by the speed layer (DESIGN §7's fresh_p50_ms/fresh_p99_ms),
// from two cumulative curves: events created by time t (the producer records
// each batch as it makes it) and events counted by time t (polled from where
// the layer keeps its counts). The n-th counted event is matched to the n-th
// created one, which assumes roughly FIFO delivery across partitions.
package freshness

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"
)

type point struct {
	n int64
	t time.Time
}

// Recorder is the created curve: a producer calls Created for each batch
// with the time its events were made.
type Recorder struct {
	mu      sync.Mutex
	created []point
	n       int64
}

// Created records n more events made at t.
func (r *Recorder) Created(n int, t time.Time) {
	r.mu.Lock()
	r.n += int64(n)
	r.created = append(r.created, point{r.n, t})
	r.mu.Unlock()
}

// Counter returns how many of the recorded events are counted so far.
type Counter func(ctx context.Context) (int64, error)

// Config says how to measure.
type Config struct {
	Count Counter
	// Produce makes the events, recording them, and returns when done
	// with how many it sent.
	Produce func(ctx context.Context, rec *Recorder) (int64, error)
	Poll    time.Duration // default 10ms
	Drain   time.Duration // how long to wait for the last events to be counted; default 30s
}

// Result is the latency distribution of the events matched.
type Result struct {
	P50, P99, Max time.Duration
	N             int64 // events matched
	Missing       int64 // sent but never counted within Drain
}

// Measure runs Produce while polling Count, then matches the curves.
func Measure(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	base, err := cfg.Count(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("freshness: count: %w", err)
	}
	var samples []point
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pctx.Err() == nil {
			if c, err := cfg.Count(pctx); err == nil {
				samples = append(samples, point{c - base, time.Now()})
			}
			select {
			case <-pctx.Done():
			case <-time.After(cfg.Poll):
			}
		}
	}()
	rec := &Recorder{}
	sent, err := cfg.Produce(ctx, rec)
	if err != nil {
		cancel()
		<-polled
		return Result{}, fmt.Errorf("freshness: produce: %w", err)
	}
	deadline := time.Now().Add(cfg.Drain)
	for time.Now().Before(deadline) {
		c, err := cfg.Count(ctx)
		if err == nil && c-base >= sent {
			break
		}
		time.Sleep(cfg.Poll)
	}
	cancel()
	<-polled
	// The poller may have stopped just before the last count landed.
	if c, err := cfg.Count(ctx); err == nil {
		samples = append(samples, point{c - base, time.Now()})
	}

	var lat []time.Duration
	var res Result
	si := 0
	var prev int64
	rec.mu.Lock()
	created := rec.created
	rec.mu.Unlock()
match:
	for _, c := range created {
		// Events (prev, c.n] were created at c.t; each is counted at the
		// first sample reaching its index.
		for k := prev + 1; k <= c.n; k++ {
			for si < len(samples) && samples[si].n < k {
				si++
			}
			if si == len(samples) {
				res.Missing = sent - k + 1
				log.Printf("freshness: %d of %d events never counted", res.Missing, sent)
				break match
			}
			lat = append(lat, samples[si].t.Sub(c.t))
		}
		prev = c.n
	}
	if len(lat) == 0 {
		return res, errors.New("freshness: no event was counted")
	}
	slices.Sort(lat)
	res.P50, res.P99, res.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	res.N = int64(len(lat))
	return res, nil
}
