package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{
		{-1, 100 * time.Millisecond},
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{5, 3200 * time.Millisecond},
		{6, 5 * time.Second},
		{7, 5 * time.Second},
		{1000, 5 * time.Second}, // no overflow
	} {
		if got := p.Delay(tt.n); got != tt.want {
			t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	if Default != p {
		t.Errorf("Default = %+v, want 100ms doubling to 5s", Default)
	}
}

func TestRetry(t *testing.T) {
	fast := Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond}
	boom := errors.New("boom")

	t.Run("succeeds after failures", func(t *testing.T) {
		calls := 0
		var seen []int
		err := Retry(context.Background(), fast, func(context.Context) error {
			calls++
			if calls < 4 {
				return boom
			}
			return nil
		}, func(n int, err error) { seen = append(seen, n) })
		if err != nil || calls != 4 || len(seen) != 3 || seen[0] != 1 || seen[2] != 3 {
			t.Errorf("err=%v calls=%d onErr attempts=%v, want nil 4 [1 2 3]", err, calls, seen)
		}
	})
	t.Run("permanent stops at once", func(t *testing.T) {
		calls := 0
		err := Retry(context.Background(), fast, func(context.Context) error {
			calls++
			return Permanent(boom)
		}, nil)
		if err != boom || calls != 1 {
			t.Errorf("err=%v calls=%d, want boom after 1 call", err, calls)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		calls := 0
		err := Retry(ctx, fast, func(context.Context) error { calls++; return boom }, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, boom) || calls < 2 {
			t.Errorf("err=%v calls=%d, want the deadline and the last error, after several calls", err, calls)
		}
	})
	t.Run("context ends right after a wait", func(t *testing.T) {
		// The context ends as a wait ends, before the next attempt: the
		// last failure still comes with it (a fresh clone's make test once
		// got the deadline alone). endsAfter's Err turns non-nil on its
		// 4th call: the first attempt's checks take 3, the next loop's
		// check is the 4th.
		ctx := &endsAfter{Context: context.Background(), calls: 3}
		calls := 0
		err := Retry(ctx, fast, func(context.Context) error { calls++; return boom }, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, boom) || calls != 1 {
			t.Errorf("err=%v calls=%d, want the deadline and the last error after 1 call", err, calls)
		}
	})
	t.Run("context ended before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := Retry(ctx, fast, func(context.Context) error { t.Error("op called"); return nil }, nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err=%v", err)
		}
	})
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep without cancel: false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) || time.Since(start) > time.Second {
		t.Error("Sleep on an ended context waited or returned true")
	}
}

// endsAfter is a context whose Err is nil for its first calls, then
// DeadlineExceeded; its Done channel never closes, so a wait always runs
// to its end.
type endsAfter struct {
	context.Context
	calls int
}

func (c *endsAfter) Err() error {
	if c.calls > 0 {
		c.calls--
		return nil
	}
	return context.DeadlineExceeded
}
