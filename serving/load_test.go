package serving

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// synthSpeed is a speed layer holding a cell for every minute and every
// (tenant, country) pair, so a query's cost grows with its range and
// group_by as on a real view: a day grouped by both dimensions is 288,000
// cells to roll up, an hour of totals 60.
type synthSpeed struct {
	*fakeSpeed         // health and hot range
	tenants, countries int
}

func (s *synthSpeed) Query(ctx context.Context, q speed.Query) (*speed.Result, error) {
	var rows []speed.Row
	tenants, countries := 1, 1
	if slices.Contains(q.GroupBy, "tenant") {
		tenants = s.tenants
	}
	if slices.Contains(q.GroupBy, "country") {
		countries = s.countries
	}
	for t := q.From; t.Before(q.To); t = t.Add(time.Minute) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for i := range tenants {
			for j := range countries {
				var dims []schemas.Value
				for _, d := range q.GroupBy {
					if d == "tenant" {
						dims = append(dims, schemas.Value{Str: fmt.Sprintf("t%02d", i)})
					} else {
						dims = append(dims, schemas.Value{Str: fmt.Sprintf("c%02d", j)})
					}
				}
				rows = append(rows, speed.Row{T: t, Dims: dims, Values: []schemas.Value{{Int: 1}, {Float: 2}, {Float: 2}, {Float: 2}, {Int: 1}, {Int: 1}}})
			}
		}
	}
	return &speed.Result{Rows: rows}, nil
}

func (s *synthSpeed) Sketches(ctx context.Context, q speed.Query) ([]speed.SketchRow, error) {
	return nil, nil
}

const (
	heavyTok = "heavy-token-0123456789"
	lightTok = "light-token-0123456789"
)

// cheapP99Bound is the pass/fail bound of TestLoadCheapQueryUnderHammering:
// generous for a loaded 2-core machine (alone, the cheap query takes a
// few milliseconds), and far below what the hammering does without the
// limits (seconds: see the README).
const cheapP99Bound = 2 * time.Second

// TestLoadCheapQueryUnderHammering: 64 clients hammer expensive queries
// (a day grouped by both dimensions, 288,000 cells each, all different so
// nothing is shared) on one token, ignoring 429s and Retry-After, while
// four clients on another token ask cheap questions, pausing 20 ms between. With the token's rate
// and the query slots, the cheap query's p99 stays under cheapP99Bound.
// Loopback only, bounded in time; LAMBDALAKE_LOAD_NOLIMITS=1 runs it with
// the limits off to show what they prevent (it then fails).
func TestLoadCheapQueryUnderHammering(t *testing.T) {
	if testing.Short() {
		t.Skip("load test (skipped under -short)")
	}
	limits := os.Getenv("LAMBDALAKE_LOAD_NOLIMITS") == ""
	f := newFixture(t, func(c *APIConfig) {
		c.Speed = &synthSpeed{fakeSpeed: c.Speed.(*fakeSpeed), tenants: 20, countries: 10}
		c.MaxRows = 1_000_000
		c.Timeout = 30 * time.Second
		heavy := config.Token{Name: "heavy", Token: heavyTok, Scopes: []string{"read:views"}}
		c.MaxQueries, c.MaxTokenQueries = 1000, 1000
		if limits {
			heavy.Rate, heavy.Burst = 4, 4
			c.MaxQueries, c.MaxTokenQueries = 8, 2
		}
		c.Tokens = append(c.Tokens, heavy, config.Token{Name: "light", Token: lightTok, Scopes: []string{"read:views"}})
	})
	f.speedOK()
	f.batch.boundary = time.Time{} // the speed layer answers everything
	// The API's clock drives the rate limiter: let it run.
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		for {
			select {
			case <-stopClock:
				return
			case <-tick.C:
				f.clock.Store(f.now.Add(time.Since(start)).UnixNano())
			}
		}
	}()
	defer func() { tick.Stop(); close(stopClock); <-clockDone }()
	base := runServer(t, f, Config{WriteTimeout: time.Minute})

	tr := &http.Transport{MaxIdleConnsPerHost: 80, MaxConnsPerHost: 80}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	do := func(ctx context.Context, tok, q string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/views/revenue/query?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) // inside hot_retention of the fixture's now
	cheap := func(i int) string {
		from := day.Add(time.Duration(i%30) * time.Hour)
		return url.Values{"from": {from.Format(time.RFC3339)}, "to": {from.Add(time.Hour).Format(time.RFC3339)}}.Encode()
	}
	// Alone first: what the cheap query costs on this machine now.
	var alone []time.Duration
	for i := range 20 {
		t0 := time.Now()
		if code, err := do(context.Background(), lightTok, cheap(i)); code != 200 {
			t.Fatalf("cheap query alone: %d %v", code, err)
		}
		alone = append(alone, time.Since(t0))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var heavyCodes sync.Map
	var heavyN atomic.Int64
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				from := day.Add(time.Duration((c*7+i)%24) * time.Hour)
				gb := "tenant,country"
				if c%2 == 1 {
					gb = "country,tenant"
				}
				q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {from.Add(24 * time.Hour).Format(time.RFC3339)},
					"step": {"1h"}, "group_by": {gb}}.Encode()
				code, err := do(ctx, heavyTok, q)
				if err != nil {
					continue
				}
				heavyN.Add(1)
				n, _ := heavyCodes.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the hammering start
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int
		lwg    sync.WaitGroup
	)
	for c := range 4 { // four dashboards on the light token
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for i := c; ctx.Err() == nil; i += 4 {
				t0 := time.Now()
				code, err := do(ctx, lightTok, cheap(100+i))
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				if err != nil || code != 200 {
					failed++
				}
				lat = append(lat, time.Since(t0))
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	lwg.Wait()
	wg.Wait()
	codes := map[int]int64{}
	heavyCodes.Range(func(k, v any) bool { codes[k.(int)] = v.(*atomic.Int64).Load(); return true })
	p := func(d []time.Duration, q float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[min(len(d)-1, int(float64(len(d))*q))]
	}
	p99 := p(lat, 0.99)
	t.Logf("limits=%v: cheap query alone p50 %v p99 %v; under load %d queries p50 %v p99 %v, %d failed; heavy answers %v",
		limits, p(alone, 0.5), p(alone, 0.99), len(lat), p(lat, 0.5), p99, failed, codes)
	if len(lat) < 20 {
		t.Fatalf("only %d cheap queries completed under load", len(lat))
	}
	if failed > 0 || p99 > cheapP99Bound {
		t.Errorf("cheap query under hammering: p99 %v (bound %v), %d failed", p99, cheapP99Bound, failed)
	}
	if limits && codes[429] == 0 {
		t.Errorf("the heavy token was never limited: %v", codes)
	}
}
