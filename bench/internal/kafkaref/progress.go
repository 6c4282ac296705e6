package kafkaref

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// Stored reads where a consumer stands: per partition, the next offset it
// has made durable (the speed layer's offsets in Redis, the compactor's
// lake checkpoints).
type Stored func(ctx context.Context) ([]int64, error)

// WaitCaughtUp polls stored every 10 ms until every partition reaches end,
// for up to timeout; each poll's error is kept for the timeout's message.
func WaitCaughtUp(ctx context.Context, end []int64, timeout time.Duration, stored Stored) error {
	deadline := time.Now().Add(timeout)
	var last []int64
	var lastErr error
	for {
		got, err := stored(ctx)
		if err == nil {
			last = got
			done := len(got) >= len(end)
			for p := 0; done && p < len(end); p++ {
				done = got[p] >= end[p]
			}
			if done {
				return nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kafkaref: not caught up with %v within %s: at %v (last error: %v)", end, timeout, last, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// SpeedApplied reads the speed layer's applied offsets of one view and
// topic from Redis (DESIGN §2: they are stored with the view's cells).
func SpeedApplied(rdb redis.UniversalClient, v *schemas.View, partitions int) Stored {
	return func(ctx context.Context) ([]int64, error) {
		m, err := speed.StoredOffsets(ctx, rdb, v)
		if err != nil {
			return nil, fmt.Errorf("kafkaref: speed offsets of %s: %w", v.Name, err)
		}
		out := make([]int64, partitions)
		for p := range out {
			out[p] = m[p]
		}
		return out, nil
	}
}
