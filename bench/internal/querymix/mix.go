// Package querymix is the query load of the serving benchmarks (issues 16.11,
// 18 and 19.4): a dashboard-like mix of distinct queries over the serving
// layer's HTTP API (DESIGN §4), the clients that send it, and the server's
// own account of how many answers came from its cache.
//
// The mix, per query: a view (each equally likely); a range of 5m, 15m,
// 30m, 1h, 3h, 6h, 12h or 24h (each equally likely) ending now (half the
// queries) or up to 24h earlier; a step of 1m, 5m, 15m or 1h (a multiple of
// the view's granularity, at most 720 points, at most ~20,000 rows); group_by
// none (40%), one dimension (40%) or two (20%); 40% filtered on the view's
// first dimension (tenant, site). from and to are aligned to the step, as
// dashboards do, so a query ending now stays the same for a step's time.
// A stated share of requests (Repeat) repeats one of the last 64 queries
// (a dashboard refresh); the others are new: never sent before in the run
// (a query drawn again is shortened by whole steps until it is new, so
// that half still end now).
package querymix

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// View is what the mix needs to know of a view.
type View struct {
	Name        string
	Granularity time.Duration
	Dimensions  []string
	// Values of the first dimension, for the filter (e.g. tenant-0..9).
	FilterValues []string
	// Groups estimates the distinct values per dimension, to bound answer sizes.
	Groups []int
}

// Config configures a Mix.
type Config struct {
	Views  []View
	Repeat float64 // share of requests repeating a recent query
	Seed   uint64
	Now    func() time.Time // default time.Now
}

// Mix makes queries; safe for concurrent use.
type Mix struct {
	cfg    Config
	mu     sync.Mutex
	rng    *rand.Rand
	seen   map[string]bool
	recent []string
}

// New returns a mix.
func New(cfg Config) *Mix {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Mix{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), seen: map[string]bool{}}
}

var (
	ranges = []time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	steps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour}
)

// Query is one query of the mix.
type Query struct {
	View     string
	From, To time.Time
	Step     time.Duration
	GroupBy  []string
	Where    string // "dim:value" or ""
}

// Path is the query's request path and parameters.
func (q Query) Path() string {
	v := url.Values{"from": {strconv.FormatInt(q.From.UnixMilli(), 10)}, "to": {strconv.FormatInt(q.To.UnixMilli(), 10)},
		"step": {q.Step.String()}}
	for _, g := range q.GroupBy {
		v.Add("group_by", g)
	}
	if q.Where != "" {
		v.Set("where", q.Where)
	}
	return "/v1/views/" + q.View + "/query?" + v.Encode()
}

// TouchesHour reports whether a query path's range ends after the start of
// the hour holding now: the queries whose answer has a live part (issue
// 18's check measures those).
func TouchesHour(path string, now time.Time) bool {
	u, err := url.Parse(path)
	if err != nil {
		return false
	}
	to, err := strconv.ParseInt(u.Query().Get("to"), 10, 64)
	return err == nil && time.UnixMilli(to).After(now.Truncate(time.Hour))
}

// Next returns the next request path and whether it repeats a recent one.
func (m *Mix) Next() (path string, repeat bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.recent) > 0 && m.rng.Float64() < m.cfg.Repeat {
		return m.recent[m.rng.IntN(len(m.recent))], true
	}
	for range 100 {
		q, ok := m.unseen(m.newQuery())
		if !ok {
			continue
		}
		p := q.Path()
		m.seen[p] = true
		if len(m.recent) < 64 {
			m.recent = append(m.recent, p)
		} else {
			m.recent[m.rng.IntN(64)] = p
		}
		return p, false
	}
	// 100 collisions in a row: the space of distinct queries is spent.
	return m.recent[m.rng.IntN(len(m.recent))], true
}

// AnyQuery returns a query drawn as new ones are, sent before or not: with
// the server's answer cache off (http.cache_ttl 0) every answer is
// computed anyway, and half of them end now, as the mix's do (never-sent
// queries are mostly older ranges: those ending now repeat within a step).
func (m *Mix) AnyQuery() Query {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.newQuery()
}

// NewQuery returns a query that was never returned before (for a
// comparison with another engine); it is not recorded as recent.
func (m *Mix) NewQuery() Query {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if q, ok := m.unseen(m.newQuery()); ok {
			m.seen[q.Path()] = true
			return q
		}
	}
}

// unseen returns q, or if it was sent before the nearest query never sent
// that ends where q ends: q shortened by whole steps. Drawing again
// instead would favour older ranges, which never repeat, over ranges
// ending now, which repeat for a step's time: the queries touching the
// current hour, half of the mix, would become a few percent of the new
// ones. ok is false when q and every shorter range were sent.
func (m *Mix) unseen(q Query) (Query, bool) {
	for range 64 {
		if !m.seen[q.Path()] {
			return q, true
		}
		if q.To.Sub(q.From) <= q.Step {
			break
		}
		q.From = q.From.Add(q.Step)
	}
	return q, false
}

func (m *Mix) newQuery() Query {
	v := m.cfg.Views[m.rng.IntN(len(m.cfg.Views))]
	q := Query{View: v.Name}
	rangeLen := ranges[m.rng.IntN(len(ranges))]
	groups := 1
	switch r := m.rng.Float64(); {
	case r < 0.4:
	case r < 0.8 || len(v.Dimensions) < 2:
		i := m.rng.IntN(len(v.Dimensions))
		q.GroupBy = []string{v.Dimensions[i]}
		groups = v.Groups[i]
	default:
		q.GroupBy = append([]string(nil), v.Dimensions[:2]...)
		groups = v.Groups[0] * v.Groups[1]
	}
	if m.rng.Float64() < 0.4 && len(v.FilterValues) > 0 {
		q.Where = v.Dimensions[0] + ":" + v.FilterValues[m.rng.IntN(len(v.FilterValues))]
		if len(q.GroupBy) > 0 && q.GroupBy[0] == v.Dimensions[0] {
			groups /= max(1, v.Groups[0])
		}
	}
	var ok []time.Duration
	for _, s := range steps {
		points := int(rangeLen / s)
		if s%v.Granularity == 0 && s <= rangeLen && points <= 720 && points*max(groups, 1) <= 20000 {
			ok = append(ok, s)
		}
	}
	if len(ok) == 0 {
		ok = []time.Duration{max(time.Hour, v.Granularity)}
	}
	q.Step = ok[m.rng.IntN(len(ok))]
	now := m.cfg.Now()
	end := now
	if m.rng.IntN(2) == 1 {
		end = now.Add(-time.Duration(m.rng.Int64N(int64(24*time.Hour - rangeLen + time.Minute))))
	}
	// Align to the step: the bucket holding end is included.
	q.To = end.Truncate(q.Step).Add(q.Step)
	q.From = q.To.Add(-rangeLen).Truncate(q.Step)
	return q
}

// String describes the mix for the logs.
func (m *Mix) String() string {
	return fmt.Sprintf("ranges 5m-24h ending now or earlier, steps 1m-1h, group_by none/one/two, 40%% filtered, %d views, repeat share %.2f",
		len(m.cfg.Views), m.cfg.Repeat)
}
