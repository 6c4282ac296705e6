package freshness

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestMeasure feeds a counter that counts each batch a fixed delay after it
// was made: the latencies must come out near that delay.
func TestMeasure(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
	}{
		{"fast", 20 * time.Millisecond},
		{"slow", 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type batch struct {
				n  int64
				at time.Time
			}
			var made atomic.Pointer[[]batch]
			made.Store(&[]batch{})
			count := func(context.Context) (int64, error) {
				var n int64
				for _, b := range *made.Load() {
					if time.Since(b.at) >= tt.delay {
						n += b.n
					}
				}
				return n, nil
			}
			produce := func(ctx context.Context, rec *Recorder) (int64, error) {
				var sent int64
				for range 20 {
					now := time.Now()
					rec.Created(10, now)
					bs := append(append([]batch(nil), *made.Load()...), batch{10, now})
					made.Store(&bs)
					sent += 10
					time.Sleep(10 * time.Millisecond)
				}
				return sent, nil
			}
			r, err := Measure(context.Background(), Config{Count: count, Produce: produce, Poll: 2 * time.Millisecond, Drain: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r.N != 200 || r.Missing != 0 {
				t.Fatalf("matched %d, missing %d; want 200, 0", r.N, r.Missing)
			}
			if r.P50 < tt.delay || r.P50 > tt.delay+40*time.Millisecond {
				t.Errorf("p50 %v, want about %v", r.P50, tt.delay)
			}
			if r.Max < r.P99 || r.P99 < r.P50 {
				t.Errorf("p50 %v p99 %v max %v out of order", r.P50, r.P99, r.Max)
			}
		})
	}
}
