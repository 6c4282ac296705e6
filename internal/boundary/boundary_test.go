package boundary

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

func freshView(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	v := strings.ReplaceAll(testenv.Name("bnd"), "-", "_")
	t.Cleanup(func() { rdb.Del(context.Background(), Key(v)) })
	return v
}

// The mirror only moves forward, against the real Redis (the script runs
// there): an earlier B is refused and the later one reported.
func TestPublishOnlyMovesForward(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	v := freshView(t, rdb)
	h := func(n int) time.Time { return time.Date(2026, 11, 27, n, 0, 0, 0, time.UTC) }

	if _, ok, err := Read(ctx, rdb, v); err != nil || ok {
		t.Fatalf("Read of a view never published: ok=%v err=%v", ok, err)
	}
	steps := []struct {
		name    string
		publish time.Time
		held    time.Time
	}{
		{"first", h(5), h(5)},
		{"forward", h(7), h(7)},
		{"same again", h(7), h(7)},
		{"back: refused", h(6), h(7)},
		{"far back: refused", h(0), h(7)},
		{"forward by a microsecond", h(7).Add(time.Microsecond), h(7).Add(time.Microsecond)},
		{"back by a microsecond: refused", h(7), h(7).Add(time.Microsecond)},
	}
	for _, s := range steps {
		held, err := Publish(ctx, rdb, v, s.publish)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, ok, err := Read(ctx, rdb, v)
		if err != nil || !ok || !held.Equal(s.held) || !got.Equal(s.held) {
			t.Errorf("%s: Publish(%s) held %s, Read %s (ok=%v err=%v); want %s", s.name, s.publish, held, got, ok, err, s.held)
		}
	}
	// The value format is the one every reader has always read.
	if s, want := rdb.Get(ctx, Key(v)).Val(), strconv.FormatInt(h(7).UnixMicro()+1, 10); s != want {
		t.Errorf("stored %q, want Unix microseconds %s", s, want)
	}
	if ttl := rdb.TTL(ctx, Key(v)).Val(); ttl != -1 {
		t.Errorf("TTL = %v, want none: B is batch state, not a window", ttl)
	}

	// A value set by hand that is not a number is replaced; Read reports it
	// as an error until then.
	rdb.Set(ctx, Key(v), "garbage", 0)
	if _, _, err := Read(ctx, rdb, v); err == nil {
		t.Error("Read of a bad value: no error")
	}
	if held, err := Publish(ctx, rdb, v, h(3)); err != nil || !held.Equal(h(3)) {
		t.Errorf("Publish over a bad value: %v %v", held, err)
	}
}

// Runners racing with different Bs (a stale one among them) leave the
// latest: no interleaving moves the mirror back.
func TestPublishConcurrent(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	v := freshView(t, rdb)
	base := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	const n = 200
	order := rand.Perm(n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, i := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := base.Add(time.Duration(i) * time.Minute)
			held, err := Publish(ctx, rdb, v, b)
			if err == nil && held.Before(b) {
				t.Errorf("Publish(%s) reports %s, before it", b, held)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := Read(ctx, rdb, v)
	if want := base.Add((n - 1) * time.Minute); err != nil || !got.Equal(want) {
		t.Errorf("after %d racing publishes B = %s (%v), want the latest %s", n, got, err, want)
	}
}

func TestKey(t *testing.T) {
	// The layout of DESIGN §3: one hash tag per view.
	if got := Key("revenue"); got != "ll:{revenue}:boundary" {
		t.Errorf("Key = %q", got)
	}
}

// No B past the wall clock is ever published, whatever recompute hands
// over: a 9999-12-31 B is refused and the mirror keeps what it held; a B
// a little ahead (another machine's clock) is taken.
func TestPublishRefusesABPastTheWallClock(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond) // the mirror's resolution
	hour := now.Truncate(time.Hour)
	tests := []struct {
		name    string
		publish time.Time
		refused bool
	}{
		{"the wall clock's hour", hour, false},
		{"the next hour, minutes before it (a clock ahead)", now.Add(MaxClockSkew - time.Minute), false},
		{"an hour past the wall clock", now.Add(time.Hour + MaxClockSkew), true},
		{"9999-12-31T22:00", time.Date(9999, 12, 31, 22, 0, 0, 0, time.UTC), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := freshView(t, rdb)
			before := hour.Add(-2 * time.Hour)
			if _, err := Publish(ctx, rdb, v, before); err != nil {
				t.Fatal(err)
			}
			_, err := Publish(ctx, rdb, v, tc.publish)
			if got := errors.Is(err, ErrAhead); got != tc.refused {
				t.Fatalf("Publish(%s): err %v, refused=%v want %v", tc.publish, err, got, tc.refused)
			}
			want := tc.publish
			if tc.refused {
				want = before
			}
			if got, _, err := Read(ctx, rdb, v); err != nil || !got.Equal(want) {
				t.Errorf("mirror holds %s (%v), want %s", got, err, want)
			}
			if _, _, err := Override(ctx, rdb, v, tc.publish, time.Now()); errors.Is(err, ErrAhead) != tc.refused {
				t.Errorf("Override(%s): err %v, want refused=%v", tc.publish, err, tc.refused)
			}
		})
	}
}

// Override, the operator's repair, moves a wrong B back, which Publish
// never does, and reports what it replaced.
func TestOverrideMovesBack(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	v := freshView(t, rdb)
	hour := time.Now().UTC().Truncate(time.Hour)
	wrong := time.Date(9999, 12, 31, 22, 0, 0, 0, time.UTC)
	if _, had, err := Override(ctx, rdb, v, hour.Add(-time.Hour), time.Now()); err != nil || had {
		t.Fatalf("Override of a view never published: had=%v err=%v", had, err)
	}
	// A B from before admission existed, set as the old plain SET did.
	rdb.Set(ctx, Key(v), strconv.FormatInt(wrong.UnixMicro(), 10), 0)
	if held, err := Publish(ctx, rdb, v, hour); err != nil || !held.Equal(wrong) {
		t.Fatalf("Publish over a wrong B: held %s (%v); the forward-only rule should keep %s", held, err, wrong)
	}
	prev, had, err := Override(ctx, rdb, v, hour, time.Now())
	if err != nil || !had || !prev.Equal(wrong) {
		t.Fatalf("Override: prev %s had=%v err=%v, want %s", prev, had, err, wrong)
	}
	if got, ok, err := Read(ctx, rdb, v); err != nil || !ok || !got.Equal(hour) {
		t.Errorf("after Override B = %s (ok=%v err=%v), want %s", got, ok, err, hour)
	}
	// Forward again from there.
	if held, err := Publish(ctx, rdb, v, hour.Add(-time.Hour)); err != nil || !held.Equal(hour) {
		t.Errorf("Publish after Override: held %s (%v)", held, err)
	}
}
