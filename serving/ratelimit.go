package serving

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// tokenLimit is one token's rate: a token bucket of burst requests
// refilled at rate per second (golang.org/x/time/rate), shared by every
// request made with the token on this replica.
type tokenLimit struct {
	lim   *rate.Limiter
	rate  float64
	burst int
}

func newTokenLimit(r float64, burst int) *tokenLimit {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(r)))
	}
	return &tokenLimit{lim: rate.NewLimiter(rate.Limit(r), burst), rate: r, burst: burst}
}

// allow takes one request from the bucket at now and sets the rate-limit
// headers: X-RateLimit-Limit (the burst: requests allowed at once),
// X-RateLimit-Remaining (requests left now), X-RateLimit-Reset (seconds
// until the bucket is full again), and Retry-After (seconds until the
// next request is allowed) when it refuses.
func (t *tokenLimit) allow(h http.Header, now time.Time) bool {
	ok := t.lim.AllowN(now, 1)
	tokens := t.lim.TokensAt(now)
	h.Set("X-RateLimit-Limit", strconv.Itoa(t.burst))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(0, int(math.Floor(tokens)))))
	h.Set("X-RateLimit-Reset", strconv.Itoa(secondsFor(float64(t.burst)-tokens, t.rate)))
	if !ok {
		h.Set("Retry-After", strconv.Itoa(max(1, secondsFor(1-tokens, t.rate))))
	}
	return ok
}

// secondsFor is how many whole seconds refilling n tokens takes.
func secondsFor(n, perSecond float64) int {
	if n <= 0 {
		return 0
	}
	return int(math.Ceil(n / perSecond))
}

// rateLimits holds the limits of tokens met at run time (JWT subjects),
// bounded in number: a bucket that is full again is the same as a new
// one, so those are dropped first.
type rateLimits struct {
	mu  sync.Mutex
	m   map[string]*tokenLimit
	now func() time.Time
}

// maxDynamicLimits bounds the JWT subjects whose buckets are remembered.
const maxDynamicLimits = 10_000

func newRateLimits(now func() time.Time) *rateLimits {
	return &rateLimits{m: map[string]*tokenLimit{}, now: now}
}

// get returns the bucket of key, created with r and burst; a changed rate
// (a new JWT for the subject with other limits) starts a new bucket.
func (l *rateLimits) get(key string, r float64, burst int) *tokenLimit {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.m[key]; ok && t.rate == r && (burst <= 0 || t.burst == burst) {
		return t
	}
	if len(l.m) >= maxDynamicLimits {
		now := l.now()
		for k, t := range l.m {
			if t.lim.TokensAt(now) >= float64(t.burst) {
				delete(l.m, k)
			}
		}
		if len(l.m) >= maxDynamicLimits {
			// Every bucket is in use: forget an arbitrary one (map order)
			// rather than grow without bound.
			for k := range l.m {
				delete(l.m, k)
				break
			}
		}
	}
	t := newTokenLimit(r, burst)
	l.m[key] = t
	return t
}
