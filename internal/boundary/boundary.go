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
// move B back under data the speed layer has already skipped. Nor does it
// pass the wall clock (DESIGN §2, "Event time is bounded"): Publish refuses
// a B later than this process's clock plus MaxClockSkew (ErrAhead), as one
// moved by far-future event times would be.
//
// The one exception is Override, the operator's repair of a B that is
// already wrong (`lambdalake batch repair-boundary`): it sets the mirror to
// the B recompute derived from the lake state, also backwards. Nothing else
// calls it.
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

// MaxClockSkew is how far past this process's wall clock a B may lie and
// still be published: B is an hour start derived from a watermark that
// never passes the wall clock, so only another machine's clock running
// ahead puts it (slightly) past this one's.
const MaxClockSkew = 5 * time.Minute

// ErrAhead is returned by Publish and Override for a B past the wall clock
// (beyond MaxClockSkew): no data may move B there.
var ErrAhead = errors.New("boundary: B is past the wall clock")

// checkNotAhead refuses a B past the wall clock now.
func checkNotAhead(view string, b, now time.Time) error {
	if b.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: view=%s B=%s, now %s", ErrAhead, view, b.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Publish moves the view's mirrored B forward to b and returns the B the
// mirror holds afterwards: b, or a later B already there (then the mirror
// is left as it is and the caller may log that it is behind). A b past the
// wall clock is refused (ErrAhead) and the mirror left as it is.
func Publish(ctx context.Context, rdb Client, view string, b time.Time) (time.Time, error) {
	return PublishAt(ctx, rdb, view, b, time.Now())
}

// PublishAt is Publish judging b against the wall clock reading now (a
// caller's injected clock).
func PublishAt(ctx context.Context, rdb Client, view string, b, now time.Time) (time.Time, error) {
	if err := checkNotAhead(view, b, now); err != nil {
		return time.Time{}, err
	}
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

// overrideScript sets KEYS[1] to ARGV[1] whatever it holds and returns
// what it held (nil: nothing).
var overrideScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
return cur
`)

// Override sets the view's mirrored B to b even if that moves it back, and
// returns the B it replaced (had=false: none, or not a number). It is the
// operator override of Publish's forward-only rule, for one use: repairing
// a B that events with far-future times moved past the wall clock before
// admission existed (`lambdalake batch repair-boundary`, which first sets B
// in _state.json from the lake state, under the recompute lock). Moving B
// back hands [b, old B) back to the speed layer, which skipped those
// buckets meanwhile: the repair tells the operator to rebuild the view's
// speed windows. A b past the wall clock reading now is refused (ErrAhead).
func Override(ctx context.Context, rdb Client, view string, b, now time.Time) (prev time.Time, had bool, err error) {
	if err := checkNotAhead(view, b, now); err != nil {
		return time.Time{}, false, err
	}
	s, err := overrideScript.Run(ctx, rdb, []string{Key(view)}, b.UnixMicro()).Text()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("boundary: override view=%s: %w", view, err)
	}
	prev, err = parse(s)
	return prev, err == nil, nil
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
