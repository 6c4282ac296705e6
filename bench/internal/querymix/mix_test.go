package querymix

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testViews = []View{
	{Name: "revenue", Granularity: time.Minute, Dimensions: []string{"tenant", "country"}, FilterValues: []string{"tenant-0", "tenant-1"}, Groups: []int{10, 20}},
	{Name: "traffic", Granularity: 5 * time.Minute, Dimensions: []string{"site", "bot"}, FilterValues: []string{"site-0"}, Groups: []int{10, 2}},
}

// TestQueriesAreValid checks every query the mix makes against what the
// API accepts and what the mix promises: a known view, from < to, the range
// one of the stated ones (to within a step of alignment), a step that is a
// multiple of the view's granularity, at most 720 points and ~20,000 rows,
// group_by and where on the view's dimensions, and no range ending after
// the next step boundary.
func TestQueriesAreValid(t *testing.T) {
	now := time.Date(2026, 11, 30, 16, 37, 12, 0, time.UTC)
	m := New(Config{Views: testViews, Seed: 7, Now: func() time.Time { return now }})
	byName := map[string]View{}
	for _, v := range testViews {
		byName[v.Name] = v
	}
	for range 5000 {
		q := m.NewQuery()
		v, ok := byName[q.View]
		if !ok {
			t.Fatalf("unknown view %q", q.View)
		}
		if !q.From.Before(q.To) {
			t.Fatalf("%s: from %s not before to %s", q.Path(), q.From, q.To)
		}
		if q.Step%v.Granularity != 0 {
			t.Fatalf("%s: step %s not a multiple of %s", q.Path(), q.Step, v.Granularity)
		}
		points := int(q.To.Sub(q.From) / q.Step)
		groups := 1
		for _, g := range q.GroupBy {
			found := false
			for i, d := range v.Dimensions {
				if d == g {
					groups *= v.Groups[i]
					found = true
				}
			}
			if !found {
				t.Fatalf("%s: group_by %q not a dimension", q.Path(), g)
			}
		}
		if q.Where != "" && len(q.GroupBy) > 0 && q.GroupBy[0] == v.Dimensions[0] {
			groups /= v.Groups[0] // one value of it left
		}
		// Aligning from down to the step adds at most one point.
		if points > 721 {
			t.Fatalf("%s: %d points", q.Path(), points)
		}
		if points*groups > 20000+groups && q.Step != time.Hour {
			t.Fatalf("%s: %d points x %d groups", q.Path(), points, groups)
		}
		if q.Where != "" && !strings.HasPrefix(q.Where, v.Dimensions[0]+":") {
			t.Fatalf("%s: where %q not on the first dimension", q.Path(), q.Where)
		}
		if q.To.After(now.Truncate(q.Step).Add(q.Step)) {
			t.Fatalf("%s: ends after the current step", q.Path())
		}
		u, err := url.Parse(q.Path())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"from", "to"} {
			if _, err := strconv.ParseInt(u.Query().Get(k), 10, 64); err != nil {
				t.Fatalf("%s: %s is not epoch ms", q.Path(), k)
			}
		}
	}
}

// TestRepeatShare checks the stated share of repeats, and that the other
// requests are never repeated.
func TestRepeatShare(t *testing.T) {
	tests := []struct {
		repeat float64
		lo, hi float64
	}{
		{0, 0, 0},
		{0.2, 0.17, 0.23},
		{0.5, 0.46, 0.54},
	}
	for _, tt := range tests {
		m := New(Config{Views: testViews, Repeat: tt.repeat, Seed: 1})
		seen := map[string]bool{}
		reps := 0
		const n = 5000
		for range n {
			p, repeat := m.Next()
			if repeat {
				reps++
				if !seen[p] {
					t.Fatalf("repeat %v: a repeat of a query never sent: %s", tt.repeat, p)
				}
				continue
			}
			if seen[p] {
				t.Fatalf("repeat %v: a new query sent twice: %s", tt.repeat, p)
			}
			seen[p] = true
		}
		if share := float64(reps) / n; share < tt.lo || share > tt.hi {
			t.Errorf("repeat %v: share %.3f, want in [%v, %v]", tt.repeat, share, tt.lo, tt.hi)
		}
	}
}

func TestCacheHitRate(t *testing.T) {
	tests := []struct {
		s    CacheStats
		want float64
	}{
		{CacheStats{}, 0},
		{CacheStats{Computed: 10}, 0},
		{CacheStats{Hits: 1, Stale: 1, Shared: 2, Computed: 4}, 0.5},
	}
	for _, tt := range tests {
		if got := tt.s.HitRate(); got != tt.want {
			t.Errorf("%+v: hit rate %v, want %v", tt.s, got, tt.want)
		}
	}
}

// A query touches the current hour when its range ends after the hour's
// start; the mix's queries ending now do, those ending hours ago do not.
func TestTouchesHour(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 20, 0, 0, time.UTC)
	tests := []struct {
		to   time.Time
		want bool
	}{
		{now.Add(time.Minute), true},
		{time.Date(2026, 12, 1, 10, 1, 0, 0, time.UTC), true},
		{time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), false}, // ends where the hour starts
		{now.Add(-3 * time.Hour), false},
	}
	for _, tt := range tests {
		q := Query{View: "v", From: tt.to.Add(-time.Hour), To: tt.to, Step: time.Minute}
		if got := TouchesHour(q.Path(), now); got != tt.want {
			t.Errorf("to %s: %v, want %v", tt.to.Format(time.TimeOnly), got, tt.want)
		}
	}
}

// New queries end now about half the time, as the mix draws them: a query
// drawn again is shortened, not drawn afresh (which would leave only older
// ranges, which never repeat). Before that rule, 4% of a benchmark's new
// queries touched the current hour.
func TestNewQueriesEndNowHalfTheTime(t *testing.T) {
	now := time.Date(2026, 11, 30, 16, 37, 12, 0, time.UTC)
	m := New(Config{Views: testViews, Seed: 11, Now: func() time.Time { return now }})
	live := 0
	const n = 3000
	for range n {
		if TouchesHour(m.NewQuery().Path(), now) {
			live++
		}
	}
	if share := float64(live) / n; share < 0.4 {
		t.Errorf("%d of %d new queries touch the current hour (%.2f), want about half", live, n, share)
	}
}
