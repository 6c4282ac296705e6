// Package backoff is the one retry policy of lambdalake's long-running
// loops: the speed worker waiting out Redis or Kafka, the compactor carrying
// a flush through an S3 outage, the jobs runner waiting for a lock. A
// failure is retried after a delay that starts small and doubles up to a
// cap, so a short blip costs little and a long outage costs one attempt per
// cap, for as long as the caller's context lives.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policy is a doubling delay: Initial before the first retry, then twice
// the previous, at most Max.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
}

// Default is 100ms doubling to 5s: what the speed worker and the compactor
// wait between attempts at Redis, Kafka and S3.
var Default = Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Delay is the wait after the n-th consecutive failure (n from 0).
func (p Policy) Delay(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	d := p.Initial
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Sleep waits d or until ctx ends; false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// permanent marks an error Retry must not retry.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Retry returns it at once instead of retrying
// (e.g. a refused compare-and-set, which waiting does not change).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// Retry calls op until it returns nil, returns a Permanent error (Retry
// returns the error inside), or ctx ends (Retry returns ctx's error, joined
// with op's last one when there is one). After the n-th consecutive failure
// (n from 1) it calls onErr, if set, for logs and metrics, then waits
// p.Delay(n-1).
func Retry(ctx context.Context, p Policy, op func(context.Context) error, onErr func(attempt int, err error)) error {
	var last error
	for n := 1; ; n++ {
		// ctx may end between a wait and the next attempt, not only
		// during the wait: either way the last failure goes with it.
		if err := ctx.Err(); err != nil {
			if last != nil {
				return fmt.Errorf("%w (last attempt: %w)", err, last)
			}
			return err
		}
		last = op(ctx)
		if last == nil {
			return nil
		}
		if pe, ok := errors.AsType[*permanent](last); ok {
			return pe.err
		}
		if ctx.Err() == nil && onErr != nil {
			onErr(n, last)
		}
		if ctx.Err() == nil {
			Sleep(ctx, p.Delay(n-1))
		}
	}
}
