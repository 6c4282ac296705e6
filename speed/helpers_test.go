package speed

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// viewName is a unique view name, so tests sharing one Redis never share keys.
func viewName(prefix string) string {
	return strings.NewReplacer("-", "_").Replace(fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()))
}

// testSchema is the shared orders schema on topic.
func testSchema(t testing.TB, topic string) *schemas.Schema { return testenv.OrdersSchema(t, topic) }

// testMetrics covers every aggregation over both numeric types.
var testMetrics = testenv.OrdersMetrics()

func testView(name string, s *schemas.Schema, g time.Duration, dims []string) *schemas.View {
	return &schemas.View{Name: name, Schema: s, Granularity: g, Dimensions: dims, Metrics: testMetrics,
		HotRetention: 2 * time.Hour, Lateness: 5 * time.Minute}
}

// withoutUniq drops the uniq metrics: miniredis' HyperLogLog is not Redis'
// format, so the tests that run without services leave uniq to the
// integration tests (and TestSketchMatchesRedis).
func withoutUniq(v *schemas.View) *schemas.View {
	c := *v
	c.Metrics = nil
	for _, m := range v.Metrics {
		if m.Agg != schemas.Uniq {
			c.Metrics = append(c.Metrics, m)
		}
	}
	return &c
}

// refCell is the reference figure of one (bucket, dims), computed plainly.
type refCell struct {
	count, qtySum, qtyMin, qtyMax int64
	sum, min, max                 float64
	users                         map[string]struct{}
}

// reference holds, per "bucket|dim|dim…", what a view must show.
type reference map[string]*refCell

// buildReference decodes the non-malformed events (duplicates included: the
// speed layer counts what arrives) and aggregates those keep accepts.
func buildReference(t testing.TB, v *schemas.View, events []gen.Event, keep func(bucket int64) bool) reference {
	t.Helper()
	ref := reference{}
	d := schemas.NewDecoder(v.Schema)
	var r schemas.Row
	idx := func(name string) int { return v.Schema.FieldIndex(name) }
	for _, e := range events {
		if e.Kind == gen.Malformed {
			continue
		}
		if err := d.Decode(e.Value, &r); err != nil {
			t.Fatalf("reference: a %s event does not decode: %v", e.Kind, err)
		}
		b := v.Bucket(r.Values[idx("ts")].Int)
		if !keep(b) {
			continue
		}
		k := fmt.Sprint(b)
		for _, dim := range v.Dimensions {
			k += "|" + r.Values[idx(dim)].Str
		}
		c := ref[k]
		amount, qty := r.Values[idx("amount")].Float, r.Values[idx("qty")].Int
		if c == nil {
			c = &refCell{min: amount, max: amount, qtyMin: qty, qtyMax: qty, users: map[string]struct{}{}}
			ref[k] = c
		}
		c.count++
		c.sum += amount
		c.min, c.max = math.Min(c.min, amount), math.Max(c.max, amount)
		c.qtySum += qty
		c.qtyMin, c.qtyMax = min(c.qtyMin, qty), max(c.qtyMax, qty)
		c.users[r.Values[idx("user_id")].Str] = struct{}{}
	}
	return ref
}

func (ref reference) events() int64 {
	var n int64
	for _, c := range ref {
		n += c.count
	}
	return n
}

// checkAgainst compares a query at the view's grain, grouped by every
// dimension, with the reference: counts, int64 figures and min/max exactly,
// float sums to a relative 1e-9, uniq to uniqTol (relative, +1 for tiny sets).
func (ref reference) checkAgainst(t testing.TB, v *schemas.View, res *Result, uniqTol float64) {
	t.Helper()
	if len(res.Rows) != len(ref) {
		t.Errorf("view %s: %d rows, reference has %d cells", v.Name, len(res.Rows), len(ref))
	}
	bad := 0
	for _, row := range res.Rows {
		k := fmt.Sprint(row.T.UnixMicro())
		for _, d := range row.Dims {
			k += "|" + d.Str
		}
		c := ref[k]
		if c == nil {
			t.Errorf("row %s not in the reference", k)
			bad++
			continue
		}
		_, hasUniq := v.Metric("buyers")
		val := func(name string) schemas.Value {
			for i, m := range v.Metrics {
				if m.Name == name {
					return row.Values[i]
				}
			}
			t.Fatalf("no metric %s", name)
			return schemas.Value{}
		}
		var errs []string
		if got := val("orders").Int; got != c.count {
			errs = append(errs, fmt.Sprintf("orders %d want %d", got, c.count))
		}
		if got := val("revenue").Float; math.Abs(got-c.sum) > 1e-9*math.Max(1, math.Abs(c.sum)) {
			errs = append(errs, fmt.Sprintf("revenue %v want %v", got, c.sum))
		}
		if got := val("biggest").Float; got != c.max {
			errs = append(errs, fmt.Sprintf("biggest %v want %v", got, c.max))
		}
		if got := val("smallest").Float; got != c.min {
			errs = append(errs, fmt.Sprintf("smallest %v want %v", got, c.min))
		}
		if got := val("qty").Int; got != c.qtySum {
			errs = append(errs, fmt.Sprintf("qty %d want %d", got, c.qtySum))
		}
		if got := val("qty_min").Int; got != c.qtyMin {
			errs = append(errs, fmt.Sprintf("qty_min %d want %d", got, c.qtyMin))
		}
		if got := val("qty_max").Int; got != c.qtyMax {
			errs = append(errs, fmt.Sprintf("qty_max %d want %d", got, c.qtyMax))
		}
		if hasUniq {
			if got, want := val("buyers").Int, int64(len(c.users)); math.Abs(float64(got-want)) > uniqTol*float64(want)+1 {
				errs = append(errs, fmt.Sprintf("buyers %d want %d±%.0f%%", got, want, 100*uniqTol))
			}
		}
		if len(errs) > 0 {
			bad++
			if bad <= 10 {
				t.Errorf("cell %s: %s", k, strings.Join(errs, ", "))
			}
		}
	}
	if bad > 0 {
		t.Errorf("view %s: %d of %d cells differ from the reference", v.Name, bad, len(res.Rows))
	}
}

// genEvents makes n events of s with event times in [from, to).
func genEvents(t testing.TB, s *schemas.Schema, n int, from, to time.Time, seed uint64, cfg gen.Config) []gen.Event {
	t.Helper()
	cfg.Schema, cfg.From, cfg.To, cfg.Count, cfg.Seed = s, from, to, int64(n), seed
	if cfg.Cardinality == nil {
		cfg.Cardinality = map[string]int{"tenant": 5, "country": 4, "user_id": 5000}
	}
	g, err := gen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]gen.Event, n)
	for i := range out {
		out[i] = g.Next(to)
	}
	return out
}
