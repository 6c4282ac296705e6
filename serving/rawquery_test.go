package serving

import (
	"fmt"
	"strings"
	"testing"
)

// Every way a query string can be malformed is a 400 naming the
// parameter; what r.URL.Query() used to drop silently is refused.
func TestParseRawQuery(t *testing.T) {
	tests := []struct {
		raw       string
		wantParam string // "" = accepted
		wantMsg   string
		want      string // accepted: the values, as fmt prints url.Values
	}{
		{"from=0&to=1", "", "", "map[from:[0] to:[1]]"},
		{"", "", "", "map[]"},
		{"from=0&to=1&", "", "", "map[from:[0] to:[1]]"},
		{"&&from=0&&to=1", "", "", "map[from:[0] to:[1]]"},
		{"where=tenant:a&where=country:de&group_by=tenant&group_by=country", "", "", "map[group_by:[tenant country] where:[tenant:a country:de]]"},
		{"where=tenant%3Aa%3Bb", "", "", "map[where:[tenant:a;b]]"},
		{"where=tenant:a+b", "", "", "map[where:[tenant:a b]]"},
		{"%66rom=0", "", "", "map[from:[0]]"},
		{"grup_by=%zz", "grup_by", "unknown parameter", ""},
		{"group_by=%zz", "group_by", "bad %-escape", ""},
		{"group_by=%2", "group_by", "bad %-escape", ""},
		{"gr%zzoup_by=tenant", "gr%zzoup_by", "bad %-escape", ""},
		{"where=tenant:a;b", "where", `";" is not a parameter separator`, ""},
		{"from=0;to=1", "from", `";"`, ""},
		{";", ";", `";" is not a parameter separator`, ""},
		{"step=1m&step=5m", "step", "more than once", ""},
		{"format=json&format=csv", "format", "more than once", ""},
		{"from=0&from=0", "from", "more than once", ""},
		{"limit=5", "limit", "unknown parameter", ""},
		{"format", "format", "has no value", ""},
		{"step=", "step", "is empty", ""},
		{"=x", "(empty)", "without a parameter name", ""},
		{"where=tenant:%ff", "where", "not UTF-8", ""},
		{"%ff=1", "%ff", "not UTF-8", ""},
		{strings.Repeat("where=tenant:a&", maxParams+1), "(query)", "more than 64 parameters", ""},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			vals, perr := parseRawQuery(tt.raw, queryRule)
			if tt.wantParam == "" {
				if perr != nil {
					t.Fatalf("refused: %d %s %s", perr.Code, perr.Param, perr.Msg)
				}
				if got := fmt.Sprint(vals); got != tt.want {
					t.Errorf("values %s, want %s", got, tt.want)
				}
				return
			}
			if perr == nil {
				t.Fatalf("accepted as %v, want a 400 on %s", vals, tt.wantParam)
			}
			if perr.Code != 400 || perr.Param != tt.wantParam || !strings.Contains(perr.Msg, tt.wantMsg) {
				t.Errorf("got %d param=%q %q, want 400 param=%q containing %q", perr.Code, perr.Param, perr.Msg, tt.wantParam, tt.wantMsg)
			}
		})
	}
	// Routes without parameters take none.
	if _, perr := parseRawQuery("x=1", noParams); perr == nil || perr.Param != "x" {
		t.Errorf("a parameter on a route without any: %+v", perr)
	}
}

// Through the handler: the requests of issue 17 that used to answer 200.
func TestStrictParamsThroughHandlers(t *testing.T) {
	f := newFixture(t, nil)
	f.speedOK()
	ok := "from=2026-11-27T08:00:00Z&to=2026-11-27T10:00:00Z"
	for _, c := range []struct {
		method, target, token string
		wantParam             string
	}{
		{"GET", "/v1/views/revenue/query?" + ok + "&grup_by=%zz", readTok, "grup_by"},
		{"GET", "/v1/views/revenue/query?" + ok + "&where=tenant:a;b", readTok, "where"},
		{"GET", "/v1/views/revenue/query?" + ok + "&step=1m&step=5m", readTok, "step"},
		{"GET", "/v1/views/revenue/query?" + ok + "&format=", readTok, "format"},
		{"GET", "/v1/views?x=1", readTok, "x"},
		{"GET", "/v1/openapi.yaml?v=2", "", "v"},
		{"GET", "/v1/jobs?limit=5&limit=6", adminTok, "limit"},
		{"GET", "/v1/jobs?limit=%zz", adminTok, "limit"},
		{"POST", "/v1/events?schema=orders;strict=true", writeTok, "schema"},
		{"POST", "/v1/events?schema=orders&schema=pageviews", writeTok, "schema"},
	} {
		code, body, _ := f.do(t, c.method, c.target, c.token, []byte("{}\n"))
		if code != 400 || !strings.Contains(string(body), `"param":"`+c.wantParam+`"`) {
			t.Errorf("%s %s: %d %s, want 400 naming %s", c.method, c.target, code, body, c.wantParam)
		}
	}
	if len(f.writer.msgs) != 0 {
		t.Errorf("%d events produced by refused requests", len(f.writer.msgs))
	}
}
