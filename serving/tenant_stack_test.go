package serving

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// TestTenantTokenOnStack: data of five tenants in batch view files, in
// Redis and (for a view the speed layer does not keep) only in the raw
// lake. A token bound to tenant-1 tries every combination of group_by,
// where, metrics, step and format on both views: every row it gets is
// tenant-1's, its totals are tenant-1's, and each answer is exactly what
// an admin gets asking for tenant-1 explicitly.
func TestTenantTokenOnStack(t *testing.T) {
	st := newStack(t)
	topic := testenv.Topic(t, st.brokers, 2)
	s := testSchema(t, topic)
	v := testView(uniqueView("tenant"), s)     // batch + speed
	cold := testView(uniqueView("tenantc"), s) // no speed worker: the raw lake
	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	from, to := H.Add(-3*time.Hour), H.Add(time.Hour)
	events := genEvents(t, s, 6000, from, now.Add(-time.Second), 11, 0.01, 0)
	testenv.Produce(t, st.brokers, topic, events)
	runSpeed(t, st, v)
	waitSpeed(t, st, v, events, from, now)
	writeRaw(t, st.store, s, events)
	group := testenv.Name("compact")
	rc, err := recompute.New(recompute.Config{Store: st.store, Group: group, Registerer: prometheus.NewRegistry(),
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			_, err := boundary.Publish(ctx, st.rdb, view, b)
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	recomputeTo(t, st, rc, group, v, H.Add(-2*time.Hour))

	const bound = "tenant-1"
	hs := newStackAPI(t, st, []*schemas.View{v, cold}, func(c *APIConfig) {
		c.CacheTTL = time.Second // an answer cached for one token must not reach the other
		c.Tokens = append(c.Tokens, config.Token{Name: "acme", Token: tenantTok, Scopes: []string{"read:views"}, Filters: map[string]string{"tenant": bound}})
	})
	call := func(tok, view string, p url.Values) (int, []byte, http.Header) {
		req, _ := http.NewRequest("GET", hs.URL+"/v1/views/"+view+"/query?"+p.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}

	groupBys := []string{"", "tenant", "country", "tenant,country", "country,tenant"}
	wheres := [][]string{nil, {"tenant:" + bound}, {"country:country-0"}, {"tenant:" + bound, "country:country-2"}}
	metrics := []string{"", "orders", "buyers,orders", "revenue,orders,qty"}
	steps := []string{"1m", "1h", "7m", "1d"}
	formats := []string{"json", "csv", "ndjson"}
	tried, rowsSeen := 0, 0
	for vi, view := range []*schemas.View{v, cold} {
		for gi, gb := range groupBys {
			for wi, wh := range wheres {
				for fi, format := range formats {
					n := vi + gi + wi + fi // rotate step and metrics through the combinations
					step, ms := steps[n%len(steps)], metrics[(n/2)%len(metrics)]
					if view == cold && step == "1d" {
						step = "5m" // a day-aligned range is longer than cold_max_hours: gaps, no rows
					}
					p := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {step}, "format": {format}}
					if gb != "" {
						p.Set("group_by", gb)
					}
					if ms != "" {
						p.Set("metrics", ms)
					}
					p["where"] = wh
					name := fmt.Sprintf("%s?%s", view.Name, p.Encode())
					code, body, _ := call(tenantTok, view.Name, p)
					if code != 200 {
						t.Errorf("%s: %d %s", name, code, body)
						continue
					}
					tried++
					rows := answerRows(t, format, body)
					rowsSeen += len(rows)
					var orders int64
					for _, r := range rows {
						if tn, ok := r["tenant"]; ok && tn != bound {
							t.Errorf("%s: a row of %v", name, tn)
						}
						if o, ok := r["orders"]; ok {
							x, _ := strconv.ParseFloat(o, 64)
							orders += int64(x)
						}
					}
					// Totals are the bound tenant's.
					if strings.Contains(ms, "orders") || ms == "" {
						where := map[string]string{"tenant": bound}
						for _, w := range wh {
							d, val, _ := strings.Cut(w, ":")
							where[d] = val
						}
						want := int64(0)
						for _, r := range reference(t, view, events, time.Hour, nil, where, from, to, time.Time{}) {
							want += r.orders
						}
						if orders != want || want == 0 {
							t.Errorf("%s: %d orders, want tenant-1's %d", name, orders, want)
						}
					}
					// The same bytes as an admin asking for tenant-1.
					ap := url.Values{}
					for k, vs := range p {
						ap[k] = slices.Clone(vs)
					}
					if !slices.Contains(ap["where"], "tenant:"+bound) {
						ap.Add("where", "tenant:"+bound)
					}
					if acode, abody, _ := call(adminTok, view.Name, ap); acode != 200 || !bytes.Equal(abody, body) {
						t.Errorf("%s: the bound answer differs from the admin's for tenant-1 (%d)", name, acode)
					}
				}
			}
		}
	}
	if tried != 2*len(groupBys)*len(wheres)*len(formats) || rowsSeen == 0 {
		t.Fatalf("%d combinations answered, %d rows", tried, rowsSeen)
	}
	// And nobody's total leaks: the unbound total is larger.
	all := int64(0)
	for _, r := range reference(t, v, events, time.Hour, nil, nil, from, to, time.Time{}) {
		all += r.orders
	}
	one := int64(0)
	for _, r := range reference(t, v, events, time.Hour, nil, map[string]string{"tenant": bound}, from, to, time.Time{}) {
		one += r.orders
	}
	if one == 0 || one >= all {
		t.Fatalf("reference: tenant-1 has %d of %d orders", one, all)
	}
	// Asking for another tenant is refused, however it is spelt.
	for _, wh := range [][]string{{"tenant:tenant-2"}, {"tenant:" + bound, "tenant:tenant-2"}, {"tenant:TENANT-1"}, {"tenant:tenant-1 "}} {
		p := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "where": wh}
		if code, body, _ := call(tenantTok, v.Name, p); code != 403 {
			t.Errorf("where %v: %d %s, want 403", wh, code, body)
		}
	}
}

// answerRows reads the rows of an answer in any format as text cells.
func answerRows(t *testing.T, format string, body []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	cells := func(m map[string]any) map[string]string {
		r := map[string]string{}
		for k, v := range m {
			r[k] = fmt.Sprint(v)
		}
		return r
	}
	switch format {
	case "json":
		var a struct{ Rows []map[string]any }
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("json: %v", err)
		}
		for _, m := range a.Rows {
			out = append(out, cells(m))
		}
	case "ndjson":
		dec := json.NewDecoder(bytes.NewReader(body))
		for {
			var m map[string]any
			if err := dec.Decode(&m); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("ndjson: %v", err)
			}
			out = append(out, cells(m))
		}
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("csv: %v", err)
		}
		for _, rec := range recs[1:] {
			r := map[string]string{}
			for i, h := range recs[0] {
				r[h] = rec[i]
			}
			out = append(out, r)
		}
	}
	return out
}
