package recompute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Sums follow the overflow rule both layers share (schemas.IntSum,
// FloatSum): MaxInt64 twice in one cell, MinInt64 and -1, 1e308 twice,
// ten decimal(18,2) amounts of 9999999999999999.99 (an int64 of cents) —
// recompute does not fail, the view file marks those sums overflowed (null
// with {metric}_overflow true, as DuckDB reads it), views.Row.Overflow says
// so, the cold path answers the same, and every other cell (MaxInt64 and
// -5, 1e308 and -1e308, ±9999999999999999.99 among them) keeps its exact
// sum. On LocalStack S3; DuckDB reads the same files from a folder.
func TestOverflowInViewFiles(t *testing.T) {
	python := testenv.DuckDBPython(t)
	cfg := rcConfig(t)
	// The example's amount is a decimal(18,2); the float64 rule is tested
	// on the same view over a float64 amount.
	floatCfg, err := config.Parse([]byte(strings.Replace(string(lambdalake.ExampleConfig), "amount: decimal(18,2)", "amount: float64", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := floatCfg.Schema("orders").Field("amount"); f.Type != schemas.Float64 {
		t.Fatalf("amount is %s in the float64 variant", f.Type)
	}
	h := rcHour(0)
	at := func(min int) string { return h.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }

	// traffic: sum load_ms (int64) per 5 minutes × site × bot.
	pv := func(id, site string, min int, load int64) []byte {
		return fmt.Appendf(nil, `{"view_id":%q,"ts":%q,"site":%q,"path":"/","visitor":"u","load_ms":%d,"bot":false}`, id, at(min), site, load)
	}
	traffic := []rcRecord{
		{value: pv("a1", "max-twice", 1, math.MaxInt64)}, {value: pv("a2", "max-twice", 2, math.MaxInt64)},
		{value: pv("b1", "max-minus", 1, math.MaxInt64)}, {value: pv("b2", "max-minus", 2, -5)},
		{value: pv("c1", "min-minus", 1, math.MinInt64)}, {value: pv("c2", "min-minus", 2, -1)},
		{value: pv("d1", "plain", 1, 10)}, {value: pv("d2", "plain", 2, 20)},
		{value: pv("e1", "max-twice", 7, math.MaxInt64)}, // the next bucket: alone, fine
	}
	// revenue: sum amount (float64) per minute × tenant × country.
	order := func(id, tenant string, min int, amount float64) []byte {
		return fmt.Appendf(nil, `{"order_id":%q,"ts":%q,"tenant":%q,"country":"de","user_id":"u","amount":%s}`,
			id, at(min), tenant, strconv.FormatFloat(amount, 'g', -1, 64))
	}
	revenue := []rcRecord{
		{value: order("o1", "inf", 1, 1e308)}, {value: order("o2", "inf", 1, 1e308)},
		{value: order("o3", "cancel", 1, 1e308)}, {value: order("o4", "cancel", 1, -1e308)},
		{value: order("o5", "plain", 1, 1.5)}, {value: order("o6", "plain", 1, 2.5)},
	}
	// revenue over decimal(18,2) amounts, as numbers and strings.
	decOrder := func(id, tenant string, min int, amount string) []byte {
		return fmt.Appendf(nil, `{"order_id":%q,"ts":%q,"tenant":%q,"country":"de","user_id":"u","amount":%s}`,
			id, at(min), tenant, amount)
	}
	const top = "9999999999999999.99"
	var decimals []rcRecord
	for i := range 10 {
		decimals = append(decimals, rcRecord{value: decOrder(fmt.Sprint("t", i), "ten", 1, top)})
	}
	decimals = append(decimals,
		rcRecord{value: decOrder("c1", "cancel", 1, top)}, rcRecord{value: decOrder("c2", "cancel", 1, `"-`+top+`"`)},
		rcRecord{value: decOrder("n1", "nine", 1, top)},
		rcRecord{value: decOrder("p1", "plain", 1, "1.5")}, rcRecord{value: decOrder("p2", "plain", 1, `"2.50"`)})
	for i := range 8 {
		decimals = append(decimals, rcRecord{value: decOrder(fmt.Sprint("n", i+2), "nine", 1, top)})
	}
	tests := []struct {
		view   *schemas.View
		recs   []rcRecord
		metric string
		dim    int // the dimension naming the cell
	}{
		{cfg.View("traffic"), traffic, "load_ms", 0},
		{floatCfg.View("revenue"), revenue, "revenue", 0},
		{cfg.View("revenue"), decimals, "revenue", 0},
	}
	for _, tc := range tests {
		t.Run(tc.view.Name+"_"+metricTypeOf(tc.view, tc.metric), func(t *testing.T) {
			s3, _ := testenv.S3Lake(t)
			v := tc.view
			for i := range tc.recs {
				tc.recs[i].off = int64(i)
			}
			// The shared rule, applied here cell by cell: what both
			// layers must answer.
			want := map[string]string{}
			mi := metricIndex(t, v, tc.metric)
			dec := schemas.NewDecoder(v.Schema)
			isums, fsums := map[string]*schemas.IntSum{}, map[string]*schemas.FloatSum{}
			for _, r := range tc.recs {
				var row schemas.Row
				if err := dec.Decode(r.value, &row); err != nil {
					t.Fatal(err)
				}
				k := fmt.Sprint(v.Bucket(v.Schema.TimeMicros(&row)), row.Values[v.Schema.FieldIndex(v.Dimensions[tc.dim])].Str)
				x := row.Values[v.Schema.FieldIndex(v.Metrics[mi].Field)]
				if v.MetricType(v.Metrics[mi]) == schemas.Float64 {
					if fsums[k] == nil {
						fsums[k] = &schemas.FloatSum{}
					}
					fsums[k].Add(x.Float)
				} else {
					if isums[k] == nil {
						isums[k] = &schemas.IntSum{}
					}
					isums[k].Add(x.Int)
				}
			}
			for k, s := range isums {
				n, ok := s.Value()
				want[k] = cellText(schemas.Value{Int: n, Null: !ok}, !ok)
			}
			for k, s := range fsums {
				f, ok := s.Value()
				want[k] = cellText(schemas.Value{Float: f, Null: !ok}, !ok)
			}
			overflowed := 0
			for _, w := range want {
				if w == "overflow" {
					overflowed++
				}
			}
			if overflowed == 0 {
				t.Fatal("the fixture overflows nothing")
			}

			dirPath := t.TempDir()
			dir, err := lake.NewDirStore(dirPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, store := range []lake.Store{s3, dir} {
				rcPutFlush(t, store, v.Schema, v.Schema.Topic, 0, tc.recs)
				rcSetWatermark(t, store, "g", v.Schema.Topic, 1, h.Add(time.Hour))
				if _, err := rcRecomputer(t, store, "g", nil).Recompute(context.Background(), v, Options{}); err != nil {
					t.Fatalf("recompute: %v", err)
				}
				rows, _ := rcReadView(t, store, v)
				cold, err := ComputeHourRows(context.Background(), store, v, h)
				if err != nil {
					t.Fatal(err)
				}
				for name, rs := range map[string][]views.Row{"view file": rows, "cold path": cold} {
					got := map[string]string{}
					for _, r := range rs {
						over := r.Overflow != nil && r.Overflow[mi]
						got[fmt.Sprint(r.T, r.Dims[tc.dim].Str)] = cellText(r.Values[mi], over)
						if r.Overflow != nil && !over {
							t.Errorf("%s: row %v has Overflow %v with no overflowed metric", name, r.Dims, r.Overflow)
						}
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s sums:\n got %v\nwant %v", name, got, want)
					}
				}
			}

			// DuckDB reads the flag beside the null sum.
			q := fmt.Sprintf(`SELECT count(*) FILTER (WHERE %[1]s_overflow AND %[1]s IS NULL), count(*) FILTER (WHERE %[1]s_overflow)
				FROM read_parquet('%[2]s/views/%[3]s/*/*/view.parquet')`, tc.metric, dirPath, v.Name)
			out, err := exec.Command(python, "-c", `import duckdb, json, sys
print(json.dumps(duckdb.connect().execute(sys.argv[1]).fetchall()))`, q).Output()
			if err != nil {
				if ee, ok := errors.AsType[*exec.ExitError](err); ok {
					t.Fatalf("duckdb: %v: %s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var res [][]int
			if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 || res[0][0] != overflowed || res[0][1] != overflowed {
				t.Errorf("DuckDB counts overflowed null sums %s (%v), want [[%d %d]]", out, err, overflowed, overflowed)
			}
		})
	}
}

// cellText is how the test compares a sum: "overflow", "null" or the value.
func cellText(x schemas.Value, overflow bool) string {
	switch {
	case overflow && x.Null:
		return "overflow"
	case overflow:
		return fmt.Sprintf("overflow with a value %v", x)
	case x.Null:
		return "null"
	}
	if x.Float != 0 {
		return strconv.FormatFloat(x.Float, 'g', -1, 64)
	}
	return strconv.FormatInt(x.Int, 10)
}

// metricTypeOf is the type of a view's metric, naming a subtest.
func metricTypeOf(v *schemas.View, metric string) string {
	m, _ := v.Metric(metric)
	return v.MetricType(m).String()
}

func metricIndex(t *testing.T, v *schemas.View, name string) int {
	t.Helper()
	for i, m := range v.Metrics {
		if m.Name == name {
			return i
		}
	}
	t.Fatalf("view %s has no metric %s", v.Name, name)
	return -1
}
