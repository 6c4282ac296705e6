package serving

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdalake/lambdalake/internal/config"
)

const limitedTok = "limited-token-0123456789"

// A token's rate: a burst, then one request per 1/rate; every answer to a
// limited token carries the X-RateLimit-* headers, a 429 Retry-After too.
func TestRateLimitPerToken(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) {
		c.Tokens = append(c.Tokens, config.Token{Name: "limited", Token: limitedTok, Scopes: []string{"read:views"}, Rate: 2, Burst: 3})
	})
	f.speedOK()
	q := "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z"
	steps := []struct {
		advance   time.Duration // clock moves this much before the request
		target    string
		token     string
		wantCode  int
		limit     string // X-RateLimit-Limit ("" = no headers)
		remaining string
		reset     string
		retry     string
	}{
		{0, q, limitedTok, 200, "3", "2", "1", ""},
		{0, q, limitedTok, 200, "3", "1", "1", ""},
		{0, "/v1/views/revenue/query?from=bad", limitedTok, 400, "3", "0", "2", ""}, // a refused request counts too
		{0, q, limitedTok, 429, "3", "0", "2", "1"},
		{0, q, readTok, 200, "", "", "", ""}, // another token, unlimited: no headers
		{500 * time.Millisecond, q, limitedTok, 200, "3", "0", "2", ""},
		{250 * time.Millisecond, q, limitedTok, 429, "3", "0", "2", "1"},
		{2 * time.Second, "/v1/views", limitedTok, 200, "3", "2", "1", ""}, // refilled (capped at burst)
		{0, q, writeTok, 403, "", "", "", ""},                              // refused before the limiter
	}
	for i, s := range steps {
		f.clock.Add(int64(s.advance))
		code, body, hdr := f.do(t, "GET", s.target, s.token, nil)
		got := []string{hdr.Get("X-RateLimit-Limit"), hdr.Get("X-RateLimit-Remaining"), hdr.Get("X-RateLimit-Reset"), hdr.Get("Retry-After")}
		want := []string{s.limit, s.remaining, s.reset, s.retry}
		if code != s.wantCode || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("step %d: %d limit,remaining,reset,retry-after = %v; want %d %v (%s)", i, code, got, s.wantCode, want, body)
		}
		if code == 429 && !strings.Contains(string(body), `"param":"Authorization"`) {
			t.Errorf("step %d: 429 body %s", i, body)
		}
	}
	if n := testutil.ToFloat64(f.api.m.refused.WithLabelValues(refusedRate)); n != 2 {
		t.Errorf("refused{reason=rate} = %v, want 2", n)
	}
}

func TestSecondsFor(t *testing.T) {
	for _, c := range []struct {
		n, rate float64
		want    int
	}{{0, 1, 0}, {-1, 1, 0}, {1, 2, 1}, {0.1, 10, 1}, {3, 2, 2}, {1, 0.5, 2}} {
		if got := secondsFor(c.n, c.rate); got != c.want {
			t.Errorf("secondsFor(%v, %v) = %d, want %d", c.n, c.rate, got, c.want)
		}
	}
}

// The bucket is shared by concurrent requests: a burst of 5 lets exactly 5
// of 40 simultaneous requests through at a frozen clock.
func TestRateLimitConcurrent(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) {
		c.Tokens = append(c.Tokens, config.Token{Name: "limited", Token: limitedTok, Scopes: []string{"read:views"}, Rate: 1, Burst: 5})
	})
	f.speedOK()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, _ := f.do(t, "GET", "/v1/views", limitedTok, nil)
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 5 || codes[429] != 35 {
		t.Errorf("codes %v, want 5×200 and 35×429", codes)
	}
}

func TestRateLimitsBounded(t *testing.T) {
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	l := newRateLimits(func() time.Time { return now })
	for i := range maxDynamicLimits + 10 {
		l.get("jwt:"+string(rune('a'+i%26))+strings.Repeat("x", i/26), 1, 1).lim.AllowN(now, 1)
	}
	if n := len(l.m); n > maxDynamicLimits {
		t.Errorf("%d buckets kept, bound %d", n, maxDynamicLimits)
	}
	// Same subject, same limits: one bucket; other limits: a new one.
	a := l.get("jwt:s", 5, 5)
	if l.get("jwt:s", 5, 5) != a || l.get("jwt:s", 6, 5) == a {
		t.Error("bucket reuse by subject and limits")
	}
}
