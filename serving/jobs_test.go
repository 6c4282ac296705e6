package serving

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// fakeJobRuns is a history of runs "r0", "r1", ... newest first.
type fakeJobRuns struct {
	runs     []json.RawMessage
	capacity int // 0: 1000, as jobs keeps
	asked    int // the n of the last Latest
}

func (f *fakeJobRuns) Latest(_ context.Context, n int) ([]json.RawMessage, error) {
	f.asked = n
	return f.runs[:min(n, len(f.runs))], nil
}

func (f *fakeJobRuns) Capacity() int {
	if f.capacity == 0 {
		return 1000
	}
	return f.capacity
}

// GET /v1/jobs hands the history's runs through as they are, up to
// ?limit= (default 100, at most the history's capacity).
func TestJobRuns(t *testing.T) {
	runs := &fakeJobRuns{runs: []json.RawMessage{[]byte(`{"job":"recompute","n":2}`), []byte(`{"job":"compact","n":1}`)}, capacity: 3}
	f := newFixture(t, func(c *APIConfig) { c.Jobs = runs })
	tests := []struct {
		target string
		code   int
		body   string
		asked  int
	}{
		{"/v1/jobs", 200, `{"runs":[{"job":"recompute","n":2},{"job":"compact","n":1}]}`, 3},
		{"/v1/jobs?limit=1", 200, `{"runs":[{"job":"recompute","n":2}]}`, 1},
		{"/v1/jobs?limit=3", 200, `{"runs":[{"job":"recompute","n":2},{"job":"compact","n":1}]}`, 3},
		{"/v1/jobs?limit=4", 400, `1..3`, 0},
	}
	for _, tt := range tests {
		runs.asked = 0
		code, body, _ := f.do(t, "GET", tt.target, adminTok, nil)
		if code != tt.code || !strings.Contains(string(body), tt.body) || runs.asked != tt.asked {
			t.Errorf("GET %s: %d %s (asked for %d runs), want %d with %s (asked %d)", tt.target, code, body, runs.asked, tt.code, tt.body, tt.asked)
		}
	}
	none := newFixture(t, func(c *APIConfig) { c.Jobs = nil })
	if code, body, _ := none.do(t, "GET", "/v1/jobs", adminTok, nil); code != 503 {
		t.Errorf("without a history: %d %s, want 503", code, body)
	}
}
