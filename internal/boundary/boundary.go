// Package boundary owns the Redis mirror of a view's boundary B (DESIGN §2,
// Boundary): batch serves [from, B), speed serves [B, to).
//
// B itself is computed by batch recompute and stored in the lake, in the
// view's _state.json, which is the source of truth (written conditionally,
// never moved back). After each run the recompute job's wiring (jobs, and
// `lambdalake batch recompute`) calls Publish, which mirrors B into Redis so
// that every speed worker and serving replica reads one value cheaply:
//
//	ll:{view}:boundary   string, B in Unix microseconds, no TTL
//
// The key has no TTL (it is batch state, not a hot window) and shares the
// view's hash tag, so it sits in the view's Redis Cluster slot. It only moves
// forward: Publish is a compare-and-set script that refuses an earlier B, so
// a runner that lost its lease, or one that read an older state, can never
// move B back under data the speed layer has already skipped.
//
// Read is the one read path. The speed layer reads B every flush and skips
// buckets before it; the serving layer reads it once per request and, when
// the mirror is empty (before the first recompute, or after Redis lost its
// data), falls back to the lake's _state.json.
package boundary

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key is the Redis key of a view's mirrored B.
func Key(view string) string { return "ll:{" + view + "}:boundary" }

// Client is the part of a Redis client the mirror uses (a
// redis.UniversalClient is one).
type Client interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
}

// publishScript sets KEYS[1] to ARGV[1] unless it already holds a B at or
// after it, and returns what the key holds afterwards. A value that is not
// a number (set by hand) is replaced. Microsecond times stay below 2^53
// until the year 2255, so Lua's doubles compare them exactly.
var publishScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local n = cur and tonumber(cur)
if n and n >= tonumber(ARGV[1]) then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

// Publish moves the view's mirrored B forward to b and returns the B the
// mirror holds afterwards: b, or a later B already there (then the mirror
// is left as it is and the caller may log that it is behind).
func Publish(ctx context.Context, rdb Client, view string, b time.Time) (time.Time, error) {
	s, err := publishScript.Run(ctx, rdb, []string{Key(view)}, b.UnixMicro()).Text()
	if err != nil {
		return time.Time{}, fmt.Errorf("boundary: publish view=%s: %w", view, err)
	}
	held, err := parse(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("boundary: publish view=%s: %w", view, err)
	}
	return held, nil
}

// Read returns the view's mirrored B; ok is false when none is set.
func Read(ctx context.Context, rdb Client, view string) (b time.Time, ok bool, err error) {
	s, err := rdb.Get(ctx, Key(view)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("boundary: read view=%s: %w", view, err)
	}
	b, err = parse(s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("boundary: read view=%s: %w", view, err)
	}
	return b, true, nil
}

func parse(s string) (time.Time, error) {
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad value %q", s)
	}
	return time.UnixMicro(us).UTC(), nil
}
