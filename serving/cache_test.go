package serving

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/schemas"
)

// The cache holds at most max bytes by its accounting, dropping the least
// recently used entries first; a value larger than the whole cache is not
// kept.
func TestByteCache(t *testing.T) {
	const overhead = 64 + 2 // per entry: bookkeeping and a two-letter key
	c := newByteCache[string](3 * (100 + overhead))
	steps := []struct {
		op        string // put, get
		key       string
		size      int64
		wantFound bool
		wantKeys  []string // present after the step
	}{
		{"put", "k1", 100, false, []string{"k1"}},
		{"put", "k2", 100, false, []string{"k1", "k2"}},
		{"put", "k3", 100, false, []string{"k1", "k2", "k3"}},
		{"get", "k1", 0, true, []string{"k1", "k2", "k3"}},    // k1 is now the most recent
		{"put", "k4", 100, false, []string{"k1", "k3", "k4"}}, // so k2 goes
		{"put", "k5", 250, false, []string{"k4", "k5"}},       // room for two: the two least recent go
		{"put", "k6", 10_000, false, []string{"k4", "k5"}},    // larger than the cache: not kept
		{"put", "k5", 10, false, []string{"k4", "k5"}},        // replaced, its size with it
		{"put", "k7", 100, false, []string{"k4", "k5", "k7"}}, // fits beside the smaller k5
		{"get", "k2", 0, false, []string{"k4", "k5", "k7"}},
	}
	for i, s := range steps {
		switch s.op {
		case "put":
			c.put(s.key, s.key, s.size)
		case "get":
			if _, ok := c.get(s.key); ok != s.wantFound {
				t.Errorf("step %d: get %s found=%v", i, s.key, ok)
			}
		}
		for _, k := range []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7"} {
			_, ok := c.items[k]
			want := false
			for _, w := range s.wantKeys {
				want = want || w == k
			}
			if ok != want {
				t.Errorf("step %d (%s %s): %s present=%v, want %v", i, s.op, s.key, k, ok, want)
			}
		}
		if c.bytes() > c.max {
			t.Errorf("step %d: %d bytes held, max %d", i, c.bytes(), c.max)
		}
	}
}

// The API's caches stay within their byte budgets whatever the queries:
// many distinct answers, many batch hours rolled up and their cubes.
func TestCachesBoundedInBytes(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) {
		c.CacheTTL = time.Minute
		c.CacheBytes, c.RollupCacheBytes = 100_000, 100_000
		c.MaxRows = 100_000
	})
	f.speedOK()
	f.batch.boundary = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	var rows []views.Row
	for m := range 6 * 60 {
		t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
		for k := range 4 {
			rows = append(rows, vrow(t0.UnixMicro(), fmt.Sprintf("tenant-%d", k), "de", 1, 1, 1, 1, m, m+2))
		}
	}
	f.batch.rows = rows
	for i := range 30 {
		q := fmt.Sprintf("/v1/views/revenue/query?from=2026-11-27T03:%02d:00Z&to=2026-11-27T09:00:00Z&group_by=tenant&step=5m", i)
		if code, body, _ := f.do(t, "GET", q, readTok, nil); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		// The rollup budget is halved between shape rollups and cubes.
		if a, r, c := f.api.answers.bytes(), f.api.rollups.bytes(), f.api.cubes.bytes(); a > 100_000 || r > 50_000 || c > 50_000 {
			t.Fatalf("query %d: answers hold %d bytes (max 100000), rollups %d (max 50000), cubes %d (max 50000)", i, a, r, c)
		}
	}
	// Full enough that the bound was what limited them.
	if a, r, c := f.api.answers.bytes(), f.api.rollups.bytes(), f.api.cubes.bytes(); a < 50_000 || r < 25_000 || c < 25_000 {
		t.Errorf("answers hold %d bytes, rollups %d, cubes %d: the budgets were never reached", a, r, c)
	}
	// What filled them shows in the metrics, by cache.
	for _, c := range []struct {
		name string
		c    interface{ stats() cacheStats }
	}{{"answers", f.api.answers}, {"rollups", f.api.rollups}, {"cubes", f.api.cubes}} {
		st := c.c.stats()
		want := fmt.Sprintf(`lambdalake_serving_cache_evictions_total{cache="%s"} %d`, c.name, st.evictions)
		if code, body, _ := f.do(t, "GET", "/metrics", "", nil); code != 200 || st.evictions == 0 || st.misses == 0 ||
			!strings.Contains(string(body), want) ||
			!strings.Contains(string(body), fmt.Sprintf(`lambdalake_serving_cache_lookups_total{cache="%s",result="miss"} %d`, c.name, st.misses)) {
			t.Errorf("%s: %+v; /metrics (%d) lacks %q or its misses", c.name, st, code, want)
		}
	}
	var one []outRow
	one = append(one, outRow{t: 1, dims: []schemas.Value{{Str: "tenant-1"}}, vals: make([]schemas.Value, 6)})
	if n := rowsBytes(one); n < 7*valueBytes+8 {
		t.Errorf("rowsBytes of one row = %d, less than its values", n)
	}
}

// An answer estimated over http.max_rows is refused with the estimate
// before anything is read: the 31 days at 1m grouped by two
// dimensions is never computed.
func TestEstimateBeforeCompute(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.MaxRows = 100_000; c.MaxRange = 32 * 24 * time.Hour })
	f.speedOK()
	// A batch hour of 1200 rows at the 1m grain: 20 combinations per bucket.
	var rows []views.Row
	for m := range 60 {
		for k := range 20 {
			rows = append(rows, vrow(time.Date(2026, 11, 27, 7, m, 0, 0, time.UTC).UnixMicro(), fmt.Sprintf("t%d", k%5), fmt.Sprintf("c%d", k/5), 1, 1, 1, 1, 0, 1))
		}
	}
	f.batch.rows = rows
	counting := &countingBatch{fakeBatch: f.batch}
	f.api.cfg.Batch = counting
	tests := []struct {
		name     string
		query    string
		wantCode int
		wantMsg  string
	}{
		{"31 days, 1m, two dimensions", "from=2026-10-27T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=tenant,country", 413, "about 892800 rows (44640 steps of 1m × about 20 groups per step)"},
		{"31 days, 1h, two dimensions", "from=2026-10-27T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=tenant,country&step=1h", 200, ""},
		{"31 days, 1m, totals", "from=2026-10-27T00:00:00Z&to=2026-11-27T00:00:00Z", 200, ""},
		{"31 days, 1m, group_by fixed by where", "from=2026-10-27T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=tenant&where=tenant:t1", 200, ""},
		{"3 days, 1m, two dimensions", "from=2026-11-24T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=tenant,country", 200, ""},
		{"4 days, 1m, two dimensions", "from=2026-11-23T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=tenant,country", 413, "about 115200 rows"},
		// Loose estimates: fewer groups than the view's combinations.
		{"4 days, 1m, two dimensions, one fixed by where", "from=2026-11-23T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=tenant,country&where=tenant:t1", 200, ""},
		{"4 days, 1m, one dimension", "from=2026-11-23T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=country", 200, ""},
		{"31 days, 1m, one dimension", "from=2026-10-27T00:00:00Z&to=2026-11-27T00:00:00Z&group_by=country", 413, "about 892800 rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counting.calls.Load() + f.speed.calls.Load()
			code, body, _ := f.do(t, "GET", "/v1/views/revenue/query?"+tt.query, readTok, nil)
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantMsg) {
				t.Fatalf("%d %.300s; want %d with %q", code, body, tt.wantCode, tt.wantMsg)
			}
			if code == 413 {
				if read := counting.calls.Load() + f.speed.calls.Load() - before; read != 0 {
					t.Errorf("%d reads for a query refused by its estimate", read)
				}
				if !strings.Contains(string(body), `"param":"group_by"`) {
					t.Errorf("413 without param group_by: %s", body)
				}
			}
		})
	}
}
