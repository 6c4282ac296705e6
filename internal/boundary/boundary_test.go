package boundary

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

func redisClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	testenv.Integration(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{testenv.RedisAddr(t)}})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func freshView(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	v := strings.ReplaceAll(testenv.Name("bnd"), "-", "_")
	t.Cleanup(func() { rdb.Del(context.Background(), Key(v)) })
	return v
}

// The mirror only moves forward, against the real Redis (the script runs
// there): an earlier B is refused and the later one reported.
func TestPublishOnlyMovesForward(t *testing.T) {
	rdb := redisClient(t)
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
	rdb := redisClient(t)
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
