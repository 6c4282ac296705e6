package serving

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/schemas"
)

// querySlots bounds the queries served at once: max in all and perToken
// for one principal, so one token can never hold every slot. A query
// over either waits for a slot in order (semaphore.Weighted is FIFO), up
// to wait (half of http.timeout): waiting costs no CPU, and a busy dashboard's
// burst is served late rather than refused. The queues are bounded: past
// queueFactor times the slots waiting, or past the wait, a query is
// refused at once — 429 over its token's share (that client asks too
// much), 503 over the server's (the server is full).
type querySlots struct {
	global   *semaphore.Weighted
	max      int64
	perToken int64
	wait     time.Duration
	waiting  atomic.Int64 // queries waiting for a server slot

	mu     sync.Mutex
	tokens map[string]*tokenSlots

	refused func(reason string) // counts refusals (metrics); nil: none
}

// queueFactor bounds the waiting queries: queueFactor × the slots.
const queueFactor = 4

type tokenSlots struct {
	sem   *semaphore.Weighted
	users int64 // holders and waiters; the entry goes when none is left
}

func newQuerySlots(max, perToken int, wait time.Duration) *querySlots {
	if max <= 0 {
		max = 32
	}
	if perToken <= 0 || perToken > max {
		perToken = max
	}
	if wait <= 0 {
		wait = 10 * time.Second
	}
	return &querySlots{global: semaphore.NewWeighted(int64(max)), max: int64(max), perToken: int64(perToken), wait: wait,
		tokens: map[string]*tokenSlots{}}
}

// acquire takes a slot for who; release gives it back.
func (s *querySlots) acquire(ctx context.Context, who string) (release func(), _ *apiError) {
	overToken := func() *apiError {
		count(s.refused, refusedTokenSlots)
		return &apiError{Code: http.StatusTooManyRequests, Param: "Authorization",
			Msg: fmt.Sprintf("token %s has %d queries running and more waiting (http.max_token_queries)", who, s.perToken)}
	}
	overServer := func() *apiError {
		count(s.refused, refusedServerSlots)
		return &apiError{Code: http.StatusServiceUnavailable,
			Msg: fmt.Sprintf("the server is running %d queries, its limit (http.max_queries), and more are waiting; retry shortly", s.max)}
	}
	s.mu.Lock()
	ts := s.tokens[who]
	if ts == nil {
		ts = &tokenSlots{sem: semaphore.NewWeighted(s.perToken)}
		s.tokens[who] = ts
	}
	ts.users++
	full := ts.users > s.perToken*(1+queueFactor)
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if ts.users--; ts.users == 0 {
			delete(s.tokens, who)
		}
		s.mu.Unlock()
	}
	if full {
		leave()
		return nil, overToken()
	}
	wctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	if ts.sem.Acquire(wctx, 1) != nil {
		leave()
		return nil, overToken()
	}
	if n := s.waiting.Add(1); n > s.max*queueFactor {
		s.waiting.Add(-1)
		ts.sem.Release(1)
		leave()
		return nil, overServer()
	}
	err := s.global.Acquire(wctx, 1)
	s.waiting.Add(-1)
	if err != nil {
		ts.sem.Release(1)
		leave()
		return nil, overServer()
	}
	return func() {
		s.global.Release(1)
		ts.sem.Release(1)
		leave()
	}, nil
}

// limit wraps a query handler with the slots. Requests without a
// principal (auth off) share one name.
func (s *querySlots) limit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "(anonymous)"
		if p := principalFrom(r.Context()); p != nil {
			who = p.name
		}
		release, aerr := s.acquire(r.Context(), who)
		if aerr != nil {
			if r.Context().Err() != nil {
				return // the client went away while waiting
			}
			writeError(w, aerr)
			return
		}
		defer release()
		h.ServeHTTP(w, r)
	})
}

// coldSlots bounds the hours computed from the raw lake at once, server
// wide: a speed layer outage makes every query want them, and each reads
// a raw hour from the lake. A computation waits for a slot within its
// query's deadline; past maxWaiting waiters it is refused at once (503).
type coldSlots struct {
	sem        *semaphore.Weighted
	max        int
	waiting    atomic.Int64
	maxWaiting int64
	refused    func(reason string) // counts refusals (metrics); nil: none
}

func newColdSlots(max int) *coldSlots {
	if max <= 0 {
		max = 2
	}
	return &coldSlots{sem: semaphore.NewWeighted(int64(max)), max: max, maxWaiting: int64(4 * max)}
}

// wrap bounds a ColdFunc.
func (c *coldSlots) wrap(f ColdFunc) ColdFunc {
	if f == nil {
		return nil
	}
	return func(ctx context.Context, v *schemas.View, hour time.Time) ([]views.Row, error) {
		// A free slot is taken without queueing: counting a request that
		// is about to run as waiting would refuse one of a burst that the
		// queue has room for.
		if c.sem.TryAcquire(1) {
			defer c.sem.Release(1)
			return f(ctx, v, hour)
		}
		if n := c.waiting.Add(1); n > c.maxWaiting {
			c.waiting.Add(-1)
			return nil, c.busy()
		}
		err := c.sem.Acquire(ctx, 1)
		c.waiting.Add(-1)
		if err != nil {
			return nil, c.busy()
		}
		defer c.sem.Release(1)
		return f(ctx, v, hour)
	}
}

func (c *coldSlots) busy() *apiError {
	count(c.refused, refusedCold)
	return &apiError{Code: http.StatusServiceUnavailable,
		Msg: fmt.Sprintf("too many hours are being computed from the raw lake (http.max_cold=%d); retry shortly", c.max)}
}

func count(f func(string), reason string) {
	if f != nil {
		f(reason)
	}
}
