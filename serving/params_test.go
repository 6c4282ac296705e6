package serving

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

func TestParseQuery(t *testing.T) {
	v := testView("revenue", testSchema(t, "orders"))
	lim := limits{maxRange: 31 * 24 * time.Hour, maxRows: 100000}
	tests := []struct {
		name      string
		query     string
		wantCode  int    // 0: valid
		wantParam string // on error
		check     func(t *testing.T, q *query)
	}{
		{"minimal", "from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z", 0, "", func(t *testing.T, q *query) {
			if q.step != time.Minute || q.format != "json" || len(q.groupBy) != 0 || len(q.metrics) != len(v.Metrics) {
				t.Errorf("defaults: %+v", q)
			}
		}},
		{"epoch ms and alignment", "from=1795770030000&to=1795773630000&step=5m", 0, "", func(t *testing.T, q *query) {
			// 1795770030000 ms = 2026-11-27T09:00:30Z: floored to 09:00; to (10:00:30) ceiled to 10:05.
			if got := q.from.Format(time.RFC3339); got != "2026-11-27T09:00:00Z" {
				t.Errorf("from = %s", got)
			}
			if got := q.to.Format(time.RFC3339); got != "2026-11-27T10:05:00Z" {
				t.Errorf("to = %s", got)
			}
		}},
		{"offset time to UTC", "from=2026-11-27T10:00:00%2B01:00&to=2026-11-27T10:00:00Z", 0, "", func(t *testing.T, q *query) {
			if q.from.Format(time.RFC3339) != "2026-11-27T09:00:00Z" {
				t.Errorf("from = %s", q.from)
			}
		}},
		{"day step", "from=2026-11-01T00:00:00Z&to=2026-11-27T00:00:00Z&step=1d", 0, "", func(t *testing.T, q *query) {
			if q.step != 24*time.Hour || formatStep(q.step) != "1d" {
				t.Errorf("step = %s", q.step)
			}
		}},
		{"group_by list and repeat", "from=0&to=3600000&group_by=tenant&group_by=country", 0, "", func(t *testing.T, q *query) {
			if strings.Join(q.groupBy, ",") != "tenant,country" {
				t.Errorf("group_by = %v", q.groupBy)
			}
		}},
		{"where and metrics", "from=0&to=3600000&where=tenant:acme&where=country:de&metrics=orders,buyers&format=csv", 0, "", func(t *testing.T, q *query) {
			if q.where["tenant"] != (schemas.Value{Str: "acme"}) || q.where["country"] != (schemas.Value{Str: "de"}) || len(q.metrics) != 2 || q.metrics[1] != 4 || q.format != "csv" {
				t.Errorf("parsed %+v", q)
			}
		}},
		{"where value with colon", "from=0&to=3600000&where=tenant:a:b", 0, "", func(t *testing.T, q *query) {
			if q.where["tenant"] != (schemas.Value{Str: "a:b"}) {
				t.Errorf("where = %v", q.where)
			}
		}},
		{"missing from", "to=3600000", 400, "from", nil},
		{"missing to", "from=0", 400, "to", nil},
		{"bad from", "from=yesterday&to=3600000", 400, "from", nil},
		{"bad to", "from=0&to=2026-13-01T00:00:00Z", 400, "to", nil},
		{"from after to", "from=7200000&to=3600000", 400, "to", nil},
		{"from equals to", "from=3600000&to=3600000", 400, "to", nil},
		{"year 2500", "from=0&to=2500-01-01T00:00:00Z", 400, "to", nil},
		{"step not a multiple", "from=0&to=3600000&step=90s", 400, "step", nil},
		{"step garbage", "from=0&to=3600000&step=fast", 400, "step", nil},
		{"step negative", "from=0&to=3600000&step=-1m", 400, "step", nil},
		{"unknown group_by", "from=0&to=3600000&group_by=region", 400, "group_by", nil},
		{"group_by twice", "from=0&to=3600000&group_by=tenant,tenant", 400, "group_by", nil},
		{"where without colon", "from=0&to=3600000&where=tenant", 400, "where", nil},
		{"where unknown dim", "from=0&to=3600000&where=region:eu", 400, "where", nil},
		{"where two values", "from=0&to=3600000&where=tenant:a&where=tenant:b", 400, "where", nil},
		{"unknown metric", "from=0&to=3600000&metrics=profit", 400, "metrics", nil},
		{"bad format", "from=0&to=3600000&format=xml", 400, "format", nil},
		{"unknown parameter", "from=0&to=3600000&grup_by=tenant", 400, "grup_by", nil},
		{"from twice", "from=0&from=1&to=3600000", 400, "from", nil},
		{"range too large", "from=2026-01-01T00:00:00Z&to=2026-11-27T00:00:00Z&step=1d", 413, "to", nil},
		{"too many steps", "from=2026-11-01T00:00:00Z&to=2026-11-30T00:00:00Z&step=1m&group_by=tenant", 413, "step", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			l := lim
			if tt.name == "too many steps" {
				l.maxRows = 1000
			}
			q, perr := parseQuery(v, vals, l)
			if tt.wantCode == 0 {
				if perr != nil {
					t.Fatalf("error %d %s: %s", perr.Code, perr.Param, perr.Msg)
				}
				tt.check(t, q)
				return
			}
			if perr == nil {
				t.Fatalf("accepted, want %d on %s", tt.wantCode, tt.wantParam)
			}
			if perr.Code != tt.wantCode || perr.Param != tt.wantParam {
				t.Errorf("got %d param=%q (%s), want %d param=%q", perr.Code, perr.Param, perr.Msg, tt.wantCode, tt.wantParam)
			}
		})
	}
}

func TestFormatStep(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", 5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		24 * time.Hour: "1d", 48 * time.Hour: "2d", 30 * time.Second: "30s", 25 * time.Hour: "25h",
	} {
		if got := formatStep(d); got != want {
			t.Errorf("formatStep(%s) = %q, want %q", d, got, want)
		}
		back, err := parseStep(want)
		if err != nil || back != d {
			t.Errorf("parseStep(%q) = %s, %v; want %s", want, back, err, d)
		}
	}
}

// FuzzParseQuery: any raw query string (bad escapes, ';', repeats and
// unknown names included) gets either a valid query whose range is
// aligned, ordered and within limits, or a 400/413 naming a parameter —
// never a panic. What the strict reader accepts, url.ParseQuery reads the
// same way: no pair is silently dropped.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z",
		"from=0&to=3600000&step=5m&group_by=tenant&where=country:de&metrics=orders&format=csv",
		"from=1795770030000&to=1795773630000&step=1d",
		"from=-1&to=9999999999999999999",
		"where=:&group_by=,,&step=0s",
		"from=0&to=3600000&grup_by=%zz",
		"from=0&to=3600000&where=tenant:a;b",
		"from=0&to=3600000&step=1m&step=5m",
		"from=0&to=3600000&where=tenant%3Aa%3Bb&",
		"from=0&to=3600000&format",
		"from=0&to=3600000&%66ormat=csv&&",
	} {
		f.Add(s)
	}
	v := testView("revenue", testSchema(f, "orders"))
	lim := limits{maxRange: 31 * 24 * time.Hour, maxRows: 100000}
	f.Fuzz(func(t *testing.T, raw string) {
		vals, perr := parseRawQuery(raw, queryRule)
		if perr != nil {
			if perr.Code != 400 || perr.Param == "" || perr.Msg == "" {
				t.Fatalf("bad refusal %+v for %q", perr, raw)
			}
			return
		}
		std, err := url.ParseQuery(raw)
		if err != nil || !maps.EqualFunc(vals, std, slices.Equal) {
			t.Fatalf("accepted %q as %v; url.ParseQuery reads %v, %v", raw, vals, std, err)
		}
		q, perr := parseQuery(v, vals, lim)
		if perr != nil {
			if perr.Code != 400 && perr.Code != 413 || perr.Param == "" || perr.Msg == "" {
				t.Fatalf("bad refusal %+v for %q", perr, raw)
			}
			return
		}
		st := q.step.Microseconds()
		if !q.from.Before(q.to) || q.from.UnixMicro()%st != 0 || q.to.UnixMicro()%st != 0 || q.step%v.Granularity != 0 {
			t.Fatalf("accepted a bad query %+v for %q", q, raw)
		}
		if q.to.Sub(q.from) > lim.maxRange || q.to.Sub(q.from)/q.step > time.Duration(lim.maxRows) {
			t.Fatalf("accepted a query over the limits for %q", raw)
		}
		_ = q.outputKey()
	})
}
