package boundary

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// The forward-only rule on both Redis set-ups of the local stack (the
// other tests here use the single Redis): the product runs on the Redis
// Cluster too (views' keys spread over its masters), where a script runs
// on the master owning the key's slot. Stale publishers racing with the
// current one — a runner that lost its lease, one that read an older
// state, one whose B data moved past the wall clock — never leave the
// mirror behind the latest B, nor past the wall clock.
func TestStalePublishersOnEveryRedisSetup(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := rs.Client(t)
			ctx := context.Background()
			v := strings.ReplaceAll(testenv.Name("bnd"), "-", "_")
			t.Cleanup(func() { rdb.Del(context.Background(), Key(v)) })
			hour := time.Now().UTC().Truncate(time.Hour)
			latest := hour.Add(-time.Hour)
			if _, err := Publish(ctx, rdb, v, latest.Add(-3*time.Hour)); err != nil {
				t.Fatal(err)
			}
			// 60 stale publishers (earlier Bs, Bs past the wall clock) race
			// with the current one.
			var wg sync.WaitGroup
			for i := range 61 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := latest.Add(-time.Duration(1+rand.IntN(48)) * time.Hour)
					switch {
					case i == 0:
						b = latest
					case i%3 == 0:
						b = time.Date(9999, 12, 31, 22, 0, 0, 0, time.UTC)
					}
					held, err := Publish(ctx, rdb, v, b)
					switch {
					case b.After(hour):
						if !errors.Is(err, ErrAhead) {
							t.Errorf("Publish(%s): %v, want ErrAhead", b, err)
						}
					case err != nil:
						t.Errorf("Publish(%s): %v", b, err)
					case held.Before(b):
						t.Errorf("Publish(%s) reports the mirror at %s, before it", b, held)
					}
				}()
			}
			wg.Wait()
			// And one stale publisher surely after the current one.
			if held, err := Publish(ctx, rdb, v, latest.Add(-time.Hour)); err != nil || !held.Equal(latest) {
				t.Errorf("a stale Publish after the race: mirror at %s (%v), want %s kept", held, err, latest)
			}
			if got, ok, err := Read(ctx, rdb, v); err != nil || !ok || !got.Equal(latest) {
				t.Errorf("mirror holds %s (ok=%v, %v) after the race, want the latest %s", got, ok, err, latest)
			}
		})
	}
}
