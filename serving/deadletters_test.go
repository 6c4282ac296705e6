package serving

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/lambdalake/lambdalake/batch/raw"
)

// fakeDeadLetters answers as raw.DeadLetterSummary does: sorted by schema,
// hour, reason.
type fakeDeadLetters struct {
	counts []raw.DeadLetterCount
	err    error
	asked  []string
}

func (f *fakeDeadLetters) Count(_ context.Context, schemas []string) ([]raw.DeadLetterCount, error) {
	f.asked = schemas
	return f.counts, f.err
}

// GET /v1/deadletters is an admin route that sums the lake's dead letters
// per schema and reason and lists them per hour.
func TestDeadLettersEndpoint(t *testing.T) {
	h0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	h1 := h0.Add(time.Hour)
	counts := []raw.DeadLetterCount{
		{Schema: "orders", Reason: "future", Hour: h0, Count: 8, Example: "event time 9999-12-31T23:00:00Z is ahead"},
		{Schema: "orders", Reason: "malformed", Hour: h0, Count: 1, Example: "bad json"},
		{Schema: "orders", Reason: "future", Hour: h1, Count: 4, Example: "the latest"},
	}
	tests := []struct {
		name    string
		target  string
		token   string
		counter DeadLetterCounter
		code    int
		totals  map[string]int64 // reason → count (orders)
	}{
		{"no token", "/v1/deadletters", "", &fakeDeadLetters{counts: counts}, 401, nil},
		{"read scope is not enough", "/v1/deadletters", readTok, &fakeDeadLetters{counts: counts}, 403, nil},
		{"admin", "/v1/deadletters", adminTok, &fakeDeadLetters{counts: counts}, 200, map[string]int64{"future": 12, "malformed": 1}},
		{"none", "/v1/deadletters", adminTok, &fakeDeadLetters{}, 200, map[string]int64{}},
		{"a parameter", "/v1/deadletters?schema=orders", adminTok, &fakeDeadLetters{counts: counts}, 400, nil},
		{"the lake fails", "/v1/deadletters", adminTok, &fakeDeadLetters{err: errors.New("s3 down")}, 503, nil},
		{"no lake", "/v1/deadletters", adminTok, nil, 503, nil},
	}
	doc, err := openapi3.NewLoader().LoadFromData(openapiDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil // match any host
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *APIConfig) { c.DeadLetters = tc.counter })
			code, body, hdr := f.do(t, "GET", tc.target, tc.token, nil)
			if code != tc.code {
				t.Fatalf("%s: %d %s, want %d", tc.target, code, body, tc.code)
			}
			// Every answer is as serving/openapi.yaml documents it.
			req := httptest.NewRequest("GET", tc.target, nil)
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("not in the document: %v", err)
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 code, Header: hdr,
				Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			}
			in.SetBodyBytes(body)
			if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
				t.Errorf("%d answer not as documented: %v", code, err)
			}
			if code != 200 {
				var e struct{ Error string }
				if json.Unmarshal(body, &e) != nil || e.Error == "" {
					t.Errorf("error answer %s is not {\"error\": ...}", body)
				}
				return
			}
			var ans struct {
				Totals []struct {
					Schema, Reason, Example string
					Count                   int64
				}
				Hours []raw.DeadLetterCount
			}
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, x := range ans.Totals {
				if x.Schema != "orders" {
					t.Errorf("total for schema %q", x.Schema)
				}
				got[x.Reason] = x.Count
				if x.Reason == "future" && x.Example != "the latest" {
					t.Errorf("future example %q, want the latest hour's", x.Example)
				}
			}
			if len(got) != len(tc.totals) {
				t.Errorf("totals %v, want %v", got, tc.totals)
			}
			for r, n := range tc.totals {
				if got[r] != n {
					t.Errorf("totals %v, want %v", got, tc.totals)
				}
			}
			if ans.Hours == nil || len(ans.Hours) != len(tc.counter.(*fakeDeadLetters).counts) {
				t.Errorf("hours %+v, want every count", ans.Hours)
			}
			if asked := tc.counter.(*fakeDeadLetters).asked; len(asked) != 1 || asked[0] != "orders" {
				t.Errorf("asked for schemas %v, want the configured [orders]", asked)
			}
		})
	}
}
