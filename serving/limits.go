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

// slotWait is how long a query waits for a free slot before it is
// refused: long enough to ride out a burst of cheap queries (cache hits
// take well under a millisecond), short enough that a client learns at
// once that the server is full.
const slotWait = time.Second

// querySlots bounds the queries served at once: max in all (503 past it:
// the server is full) and perToken for one principal (429 past it: that
// client is asking too much), so one token can never hold every slot.
// Waiters are served in order (semaphore.Weighted is FIFO).
type querySlots struct {
	global   *semaphore.Weighted
	max      int64
	perToken int64

	mu     sync.Mutex
	tokens map[string]*tokenSlots

	refused func(reason string) // counts refusals (metrics); nil: none
}

type tokenSlots struct {
	sem   *semaphore.Weighted
	users int // holders and waiters; the entry goes when none is left
}

func newQuerySlots(max, perToken int) *querySlots {
	if max <= 0 {
		max = 32
	}
	if perToken <= 0 || perToken > max {
		perToken = max
	}
	return &querySlots{global: semaphore.NewWeighted(int64(max)), max: int64(max), perToken: int64(perToken), tokens: map[string]*tokenSlots{}}
}

// acquire takes a slot for who, waiting at most slotWait; release gives
// it back.
func (s *querySlots) acquire(ctx context.Context, who string) (release func(), _ *apiError) {
	s.mu.Lock()
	ts := s.tokens[who]
	if ts == nil {
		ts = &tokenSlots{sem: semaphore.NewWeighted(s.perToken)}
		s.tokens[who] = ts
	}
	ts.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if ts.users--; ts.users == 0 {
			delete(s.tokens, who)
		}
		s.mu.Unlock()
	}
	wctx, cancel := context.WithTimeout(ctx, slotWait)
	defer cancel()
	if ts.sem.Acquire(wctx, 1) != nil {
		leave()
		count(s.refused, refusedTokenSlots)
		return nil, &apiError{Code: http.StatusTooManyRequests, Param: "Authorization",
			Msg: fmt.Sprintf("token %s already has %d queries running (http.max_token_queries)", who, s.perToken)}
	}
	if s.global.Acquire(wctx, 1) != nil {
		ts.sem.Release(1)
		leave()
		count(s.refused, refusedServerSlots)
		return nil, &apiError{Code: http.StatusServiceUnavailable,
			Msg: fmt.Sprintf("the server is running %d queries, its limit (http.max_queries); retry shortly", s.max)}
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
