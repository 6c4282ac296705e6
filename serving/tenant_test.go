package serving

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const (
	tenantTok = "tenant-t07-token-0123456789"
	regionTok = "region-eu-token-0123456789"
)

// recordingReaders remembers the where every read was given.
type recordingReaders struct {
	*fakeBatch
	*fakeSpeed
	mu     sync.Mutex
	wheres []map[string]string
	// whole hours of the batch view read without where: cube builds
	// (cube.go), whose cells are shared by every token and filtered
	// afterwards
	cubeReads int
}

func (r *recordingReaders) note(w map[string]schemas.Value) {
	m := map[string]string{}
	for d, v := range w {
		m[d] = v.Str
	}
	r.mu.Lock()
	r.wheres = append(r.wheres, m)
	r.mu.Unlock()
}

func (r *recordingReaders) Rows(ctx context.Context, v *schemas.View, from, to time.Time, where map[string]schemas.Value) ([]views.Row, error) {
	if len(where) == 0 && from.Equal(from.Truncate(time.Hour)) && to.Sub(from) == time.Hour {
		r.mu.Lock()
		r.cubeReads++
		r.mu.Unlock()
	} else {
		r.note(where)
	}
	return r.fakeBatch.Rows(ctx, v, from, to, where)
}

func (r *recordingReaders) Query(ctx context.Context, q speed.Query) (*speed.Result, error) {
	r.note(q.Where)
	return r.fakeSpeed.Query(ctx, q)
}

// ordersIn sums the orders column of a JSON or CSV answer.
func ordersIn(t *testing.T, body []byte, csvFormat bool) int64 {
	t.Helper()
	var sum int64
	if csvFormat {
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("csv answer: %v: %s", err, body)
		}
		col := slices.Index(recs[0], "orders")
		for _, r := range recs[1:] {
			n, err := strconv.ParseInt(r[col], 10, 64)
			if err != nil {
				t.Fatalf("orders %q: %v", r[col], err)
			}
			sum += n
		}
		return sum
	}
	var ans struct{ Rows []struct{ Orders int64 } }
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("answer: %v: %s", err, body)
	}
	for _, r := range ans.Rows {
		sum += r.Orders
	}
	return sum
}

// A tenant-bound token's queries are bound to its tenant whatever they
// ask; a where for another value is refused, not answered empty.
func TestTenantTokenBinding(t *testing.T) {
	rec := &recordingReaders{}
	f := newFixture(t, func(c *APIConfig) {
		c.Tokens = append(c.Tokens,
			config.Token{Name: "acme", Token: tenantTok, Scopes: []string{"read:views"}, Filters: map[string]string{"tenant": "t07"}},
			config.Token{Name: "eu", Token: regionTok, Scopes: []string{"read:views"}, Filters: map[string]string{"region": "eu"}})
	})
	rec.fakeBatch, rec.fakeSpeed = f.batch, f.speed
	f.api.cfg.Batch, f.api.cfg.Speed = rec, rec
	f.speedOK()
	b := f.batch.boundary
	// Another tenant's orders lie in the same hour, country and minute: an
	// answer that counts them leaked them.
	f.batch.rows = []views.Row{vrow(b.Add(-2*time.Hour).UnixMicro(), "t07", "de", 3, 30, 20, 1, 0, 100),
		vrow(b.Add(-2*time.Hour).UnixMicro(), "t08", "de", 50, 500, 20, 1, 100, 200)}
	base := "/v1/views/revenue/query?from=2026-11-27T06:00:00Z&to=2026-11-27T10:00:00Z&step="
	tests := []struct {
		name, target, token string
		wantCode            int
		wantParam           string
	}{
		{"no where", base + "1h", tenantTok, 200, ""},
		{"its own tenant", base + "1h&where=tenant:t07", tenantTok, 200, ""},
		{"group by tenant", base + "1h&group_by=tenant", tenantTok, 200, ""},
		{"group by another dimension", base + "5m&group_by=country&where=country:de", tenantTok, 200, ""},
		{"hour step, metrics, csv", base + "1m&metrics=orders,buyers&format=csv", tenantTok, 200, ""},
		{"another tenant", base + "1h&where=tenant:t08", tenantTok, 403, "where"},
		{"two tenants", base + "1h&where=tenant:t07&where=tenant:t08", tenantTok, 403, "where"},
		{"tenant with padding", base + "1h&where=tenant:t07%20", tenantTok, 403, "where"},
		{"tenant through an escape", base + "1h&where=tenant%3At08", tenantTok, 403, "where"},
		{"view without the bound dimension", base + "1h", regionTok, 403, "view"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.wheres = nil
			rec.mu.Unlock()
			code, body, _ := f.do(t, "GET", tt.target, tt.token, nil)
			if code != tt.wantCode {
				t.Fatalf("%d %s, want %d", code, body, tt.wantCode)
			}
			if tt.wantCode != 200 {
				var e struct{ Param string }
				json.Unmarshal(body, &e)
				if e.Param != tt.wantParam {
					t.Errorf("param %q, want %q: %s", e.Param, tt.wantParam, body)
				}
				return
			}
			if got := ordersIn(t, body, strings.Contains(tt.target, "csv")); got != 3 {
				t.Errorf("the answer counts %d orders, want t07's 3: %s", got, body)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.wheres) == 0 {
				t.Fatal("no read")
			}
			for _, w := range rec.wheres {
				if w["tenant"] != "t07" {
					t.Errorf("a read with where %v", w)
				}
			}
		})
	}
	// The tenant token lists the views it can query; the one bound to a
	// dimension no view has lists none.
	for tok, want := range map[string]int{tenantTok: 1, regionTok: 0} {
		_, body, _ := f.do(t, "GET", "/v1/views", tok, nil)
		var vs struct{ Views []map[string]any }
		if err := json.Unmarshal(body, &vs); err != nil || len(vs.Views) != want {
			t.Errorf("views for %s: %s, want %d", tok, body, want)
		}
	}
}

func TestSameValue(t *testing.T) {
	s, err := schemas.NewSchema("o", "o", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String}, {Name: "shard", Type: schemas.Int64}, {Name: "vip", Type: schemas.Bool}})
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.View{Name: "v", Schema: s, Dimensions: []string{"tenant", "shard", "vip"}}
	for _, c := range []struct {
		d, a, b string
		want    bool
	}{
		{"tenant", "t07", "t07", true}, {"tenant", "t07", "T07", false}, {"tenant", "t07", "t07 ", false},
		{"shard", "7", "007", true}, {"shard", "7", "8", false}, {"shard", "x", "x", false},
		{"vip", "true", "1", true}, {"vip", "true", "false", false},
	} {
		if got := sameValue(v, c.d, c.a, c.b); got != c.want {
			t.Errorf("sameValue(%s, %q, %q) = %v", c.d, c.a, c.b, got)
		}
	}
}
