package serving

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const (
	read2Tok = "read2-token-0123456789"
	read3Tok = "read3-token-0123456789"
)

// The server runs at most http.max_queries queries, a token at most
// http.max_token_queries: past the token's share a 429, past the server's
// a 503, both with Retry-After, after waiting half of http.timeout for a
// slot.
func TestQuerySlots(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) {
		c.MaxQueries, c.MaxTokenQueries = 2, 1
		c.Timeout = 2 * time.Second
		c.Tokens = append(c.Tokens, config.Token{Name: "r2", Token: read2Tok, Scopes: []string{"read:views"}},
			config.Token{Name: "r3", Token: read3Tok, Scopes: []string{"read:views"}})
	})
	f.speedOK()
	f.speed.gate = make(chan struct{})
	type result struct {
		code  int
		retry string
	}
	run := func(tok, from string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			code, _, hdr := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T"+from+"Z&to=2026-11-27T10:00:00Z", tok, nil)
			ch <- result{code, hdr.Get("Retry-After")}
		}()
		return ch
	}
	waitCalls := func(n int64) {
		for deadline := time.Now().Add(5 * time.Second); f.speed.calls.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d computations started, want %d", f.speed.calls.Load(), n)
			}
		}
	}
	a := run(readTok, "09:00:00") // holds r's slot and one of the server's
	waitCalls(1)
	c := run(read2Tok, "09:01:00") // holds the server's second slot
	waitCalls(2)
	start := time.Now()
	b := run(readTok, "09:02:00")  // r is at its share
	d := run(read3Tok, "09:03:00") // the server is full
	var rb, rd result
	select {
	case rb = <-b:
		rd = <-d
	case <-time.After(5 * time.Second):
		close(f.speed.gate)
		t.Fatal("queries over the limits were not refused")
	}
	if rb.code != 429 || rb.retry == "" || rd.code != 503 || rd.retry == "" {
		t.Errorf("over the token's share: %+v, want 429; over the server's: %+v, want 503; both with Retry-After", rb, rd)
	}
	if waited, wait := time.Since(start), f.api.slots.wait; waited < wait/2 || waited > 3*wait {
		t.Errorf("refused after %v, want about the slot wait (%v)", waited, wait)
	}
	// A query that frees its slot in time lets a waiter in.
	e := run(read3Tok, "09:04:00")
	time.Sleep(50 * time.Millisecond)
	close(f.speed.gate)
	for name, ch := range map[string]<-chan result{"a": a, "c": c, "e": e} {
		if r := <-ch; r.code != 200 {
			t.Errorf("query %s: %+v", name, r)
		}
	}
	if tok, srv := testutil.ToFloat64(f.api.m.refused.WithLabelValues(refusedTokenSlots)), testutil.ToFloat64(f.api.m.refused.WithLabelValues(refusedServerSlots)); tok != 1 || srv != 1 {
		t.Errorf("refused metric: token_slots %v, server_slots %v; want 1 and 1", tok, srv)
	}
	if n := len(f.api.slots.tokens); n != 0 {
		t.Errorf("%d per-token entries left after every query ended", n)
	}
}

// The queue behind a token's slots is bounded: past queueFactor × its
// share waiting, a query is refused at once.
func TestQuerySlotQueueBounded(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.MaxQueries, c.MaxTokenQueries = 4, 1 })
	f.speedOK()
	f.speed.gate = make(chan struct{})
	var wg sync.WaitGroup
	codes := make([]int, 1+queueFactor)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = f.do(t, "GET", fmt.Sprintf("/v1/views/revenue/query?from=2026-11-27T09:%02d:00Z&to=2026-11-27T10:00:00Z", i), readTok, nil)
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		f.api.slots.mu.Lock()
		var users int64
		if ts := f.api.slots.tokens["r"]; ts != nil {
			users = ts.users
		}
		f.api.slots.mu.Unlock()
		if users == int64(len(codes)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queries in the token's queue, want %d", users, len(codes))
		}
	}
	start := time.Now()
	code, _, hdr := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T09:30:00Z&to=2026-11-27T10:00:00Z", readTok, nil)
	if code != 429 || hdr.Get("Retry-After") == "" || time.Since(start) > time.Second {
		t.Errorf("past the queue: %d after %v, want an immediate 429 with Retry-After", code, time.Since(start))
	}
	close(f.speed.gate)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("queued query %d: %d", i, c)
		}
	}
}

// Cold computations: at most max at once, a bounded queue behind them,
// and a refusal (503) past the queue or the caller's deadline.
func TestColdSlots(t *testing.T) {
	c := newColdSlots(1)
	gate := make(chan struct{})
	var running, peak atomic.Int64
	f := c.wrap(func(ctx context.Context, v *schemas.View, hour time.Time) ([]views.Row, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-gate
		running.Add(-1)
		return nil, nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 1 + 4 { // one running, four queued
		wg.Add(1)
		go func() { defer wg.Done(); _, err := f(context.Background(), nil, time.Time{}); errs <- err }()
	}
	for deadline := time.Now().Add(5 * time.Second); c.waiting.Load() < 4 || running.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting %d running %d", c.waiting.Load(), running.Load())
		}
	}
	_, err := f(context.Background(), nil, time.Time{})
	var ae *apiError
	if !errors.As(err, &ae) || ae.Code != 503 {
		t.Errorf("past the queue: %v, want a 503", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c.maxWaiting++ // room for one more, whose deadline passes in the queue
	if _, err := f(ctx, nil, time.Time{}); !errors.As(err, &ae) || ae.Code != 503 {
		t.Errorf("deadline in the queue: %v, want a 503", err)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued computation: %v", err)
		}
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d cold computations at once, limit 1", p)
	}
	if c.wrap(nil) != nil {
		t.Error("no cold function must stay none (gaps)")
	}
}

// Requests that differ only in format or in which metrics they show (and
// their order) share one computation; each gets its own printing.
func TestOneComputationAcrossFormatsAndMetrics(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.CacheTTL = time.Minute })
	f.speedOK()
	b := f.batch.boundary
	f.speed.rows = []speed.Row{{T: b, Values: []schemas.Value{{Int: 5}, {Float: 9}, {Float: 6}, {Float: 0.25}, {Int: 4}, {Int: 1}}}}
	f.speed.gate = make(chan struct{})
	base := "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T09:01:00Z"
	variants := map[string]string{
		"":                                      `"rows":[{"t":"2026-11-27T09:00:00Z","orders":5,"revenue":9,"biggest":6,"smallest":0.25,"buyers":4,"qty":1}]`,
		"&metrics=orders,revenue":               `"rows":[{"t":"2026-11-27T09:00:00Z","orders":5,"revenue":9}]`,
		"&metrics=revenue,orders":               `"rows":[{"t":"2026-11-27T09:00:00Z","revenue":9,"orders":5}]`,
		"&metrics=revenue,orders&format=csv":    "t,revenue,orders\n2026-11-27T09:00:00Z,9,5\n",
		"&metrics=orders&format=ndjson":         `{"t":"2026-11-27T09:00:00Z","orders":5}` + "\n",
		"&format=csv&metrics=qty,buyers,orders": "t,qty,buyers,orders\n2026-11-27T09:00:00Z,1,4,5\n",
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]string{}
	for suffix := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, _ := f.do(t, "GET", base+suffix, readTok, nil)
			mu.Lock()
			got[suffix] = fmt.Sprint(code, " ", string(body))
			mu.Unlock()
		}()
	}
	// Every request has joined the one computation before it may finish.
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(f.api.m.waiting) < float64(len(variants)); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v requests waiting on a computation, want %d", testutil.ToFloat64(f.api.m.waiting), len(variants))
		}
	}
	close(f.speed.gate)
	wg.Wait()
	for suffix, want := range variants {
		if g := got[suffix]; !strings.HasPrefix(g, "200 ") || !strings.Contains(g, want) {
			t.Errorf("%q: %s\nwant %s", suffix, g, want)
		}
	}
	if n := f.speed.calls.Load(); n != 1 {
		t.Errorf("%d computations for %d requests differing only in format and metrics, want 1", n, len(variants))
	}
	// Each printing is cached under its own request: asked again, no
	// computation and the same bytes.
	code, body, _ := f.do(t, "GET", base+"&metrics=revenue,orders&format=csv", readTok, nil)
	if code != 200 || string(body) != variants["&metrics=revenue,orders&format=csv"] || f.speed.calls.Load() != 1 {
		t.Errorf("cached csv: %d %q after %d computations", code, body, f.speed.calls.Load())
	}
}
