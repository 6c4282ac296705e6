package recompute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Unit tests: no services (the lake is a local folder).

func rcDirStore(t testing.TB) lake.Store {
	t.Helper()
	s, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rcRecomputer(t testing.TB, store lake.Store, group string, mirror BoundaryMirror) *Recomputer {
	t.Helper()
	rc, err := New(Config{Store: store, Group: group, Mirror: mirror, Parallelism: 2,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestRecomputeExactLocal is the exactness test on a folder lake: both
// example views, duplicates, out-of-order events and overlapping files.
func TestRecomputeExactLocal(t *testing.T) {
	cfg := rcConfig(t)
	ctx := context.Background()
	rev := cfg.View("revenue")
	// Variants of revenue: no dimensions (one tuple), and three dimensions
	// including an optional one (null values, three tuple levels).
	totals, wide := *rev, *rev
	totals.Name, totals.Dimensions = "totals", nil
	wide.Name, wide.Dimensions = "wide", []string{"tenant", "coupon", "country"}
	views := map[string]*schemas.View{"revenue": rev, "traffic": cfg.View("traffic"), "totals": &totals, "wide": &wide}
	for _, name := range []string{"revenue", "traffic", "totals", "wide"} {
		t.Run(name, func(t *testing.T) {
			v := views[name]
			store := rcDirStore(t)
			const parts = 3
			recs := rcLog(t, v.Schema, rcHour(0), rcHour(2).Add(30*time.Minute), 12000, parts, 11,
				map[string]int{"tenant": 4, "country": 5, "user_id": 300, "site": 3, "visitor": 200}, nil)
			rcWriteFiles(t, store, v.Schema, v.Schema.Topic, recs, 700, 3)
			rcSetWatermark(t, store, "g", v.Schema.Topic, parts, rcHour(2).Add(10*time.Minute))
			reg := prometheus.NewRegistry()
			now := rcHour(3)
			rc, err := New(Config{Store: store, Group: "g", Parallelism: 2, Registerer: reg,
				Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			res, err := rc.Recompute(ctx, v, Options{})
			if err != nil {
				t.Fatal(err)
			}
			rcAssertMetric(t, reg, "lambdalake_recompute_hours_total", v.Name, 2)
			rcAssertMetric(t, reg, "lambdalake_recompute_rows_read_total", v.Name, float64(res.Rows))
			rcAssertMetric(t, reg, "lambdalake_boundary_lag_seconds", v.Name, time.Hour.Seconds())
			now = now.Add(time.Minute) // the lag grows between runs
			rcAssertMetric(t, reg, "lambdalake_boundary_lag_seconds", v.Name, 61*time.Minute.Seconds())
			if res.Hours != 2 {
				t.Errorf("recomputed %d hours, want the 2 closed ones", res.Hours)
			}
			if want := rcHour(2); !res.Boundary.Equal(want) {
				t.Errorf("B = %v, want %v", res.Boundary, want)
			}
			rows, hours := rcReadView(t, store, v)
			if len(hours) != 2 {
				t.Fatalf("view files for hours %s, want 00h 01h", rcFmt(hours))
			}
			closed := func(h time.Time) bool { return h.Before(rcHour(2)) }
			ref := rcReference(t, v, recs, closed)
			rcCompare(t, v, rows, ref)
			var valid int64
			for _, r := range ref {
				valid += r.count
			}
			if res.Rows != valid {
				t.Errorf("aggregated %d raw rows, want the %d valid events", res.Rows, valid)
			}
			rcAssertOverlaps(t, store, v.Schema, rcHour(0), rcHour(1))

			// Nothing changed: a second run writes nothing.
			puts := &putCounter{Store: store}
			rc2, err := New(Config{Store: puts, Group: "g", Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			res, err = rc2.Recompute(ctx, v, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Hours != 0 || puts.n.Load() != 0 || !res.Boundary.Equal(rcHour(2)) {
				t.Errorf("second run: %d hours, %d writes, B=%v; want 0, 0, %v", res.Hours, puts.n.Load(), res.Boundary, rcHour(2))
			}
		})
	}
}

func TestDropDuplicates(t *testing.T) {
	s, err := schemas.NewSchema("e", "e", "ts", "id", []schemas.Field{{Name: "id", Type: schemas.String}, {Name: "ts", Type: schemas.Timestamp}})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		p  int32
		o  int64
		id string
	}
	chunk := func(rows ...row) *rawChunk {
		c := &rawChunk{n: len(rows), keep: make([]bool, len(rows))}
		b := array.NewStringBuilder(memory.DefaultAllocator)
		for i, r := range rows {
			c.part = append(c.part, r.p)
			c.off = append(c.off, r.o)
			b.Append(r.id)
			c.keep[i] = true
		}
		c.id = b.NewArray()
		return c
	}
	tests := []struct {
		name         string
		chunks       []*rawChunk
		drops        [][]raw.OffsetRange
		want         [][]bool
		overlap, dup int64
	}{
		{"distinct", []*rawChunk{chunk(row{0, 1, "a"}, row{0, 2, "b"})}, nil,
			[][]bool{{true, true}}, 0, 0},
		{"same id later offset dropped", []*rawChunk{chunk(row{0, 1, "a"}, row{0, 5, "a"})}, nil,
			[][]bool{{true, false}}, 0, 1},
		{"smaller (partition, offset) wins even when read later", []*rawChunk{chunk(row{1, 0, "a"}), chunk(row{0, 9, "a"})}, nil,
			[][]bool{{false}, {true}}, 0, 1},
		{"rows out of offset order within a file", []*rawChunk{chunk(row{0, 7, "a"}, row{0, 3, "a"}, row{0, 5, "a"})}, nil,
			[][]bool{{false, true, false}}, 0, 2},
		{"overlap dropped before ids count", []*rawChunk{chunk(row{0, 1, "a"}, row{0, 2, "b"}), chunk(row{0, 2, "b"}, row{0, 3, "c"})},
			[][]raw.OffsetRange{nil, {{First: 1, Last: 2}}}, [][]bool{{true, true}, {false, true}}, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := make([]raw.FilePlan, len(tc.chunks))
			for i := range plan {
				if tc.drops != nil {
					plan[i].Drop = tc.drops[i]
				}
			}
			overlap, dup := dropDuplicates(s, tc.chunks, plan)
			if overlap != tc.overlap || dup != tc.dup {
				t.Errorf("overlap=%d dup=%d, want %d %d", overlap, dup, tc.overlap, tc.dup)
			}
			for i, c := range tc.chunks {
				for r := range c.keep {
					if c.keep[r] != tc.want[i][r] {
						t.Errorf("chunk %d row %d keep=%v, want %v", i, r, c.keep[r], tc.want[i][r])
					}
				}
			}
		})
	}
}

// TestAggregateNulls covers optional fields: a null dimension is a value of
// its own, and sum/min/max/uniq skip nulls (min is null if all were).
func TestAggregateNulls(t *testing.T) {
	s, err := schemas.NewSchema("e", "e", "ts", "", []schemas.Field{
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "kind", Type: schemas.String, Optional: true},
		{Name: "n", Type: schemas.Int64, Optional: true},
		{Name: "x", Type: schemas.Float64, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.View{Name: "v", Schema: s, Granularity: 30 * time.Minute, Dimensions: []string{"kind"}, Metrics: []schemas.Metric{
		{Name: "c", Agg: schemas.Count}, {Name: "sx", Agg: schemas.Sum, Field: "x"}, {Name: "mn", Agg: schemas.Min, Field: "n"},
		{Name: "mx", Agg: schemas.Max, Field: "x"}, {Name: "u", Agg: schemas.Uniq, Field: "n"}}}
	store := rcDirStore(t)
	events := []string{
		`{"ts":"2026-11-27T00:01:00Z","kind":"a","n":5,"x":1.5}`,
		`{"ts":"2026-11-27T00:02:00Z","kind":"a","n":-2}`,
		`{"ts":"2026-11-27T00:03:00Z","n":7,"x":2}`,
		`{"ts":"2026-11-27T00:04:00Z"}`,
		`{"ts":"2026-11-27T00:40:00Z","kind":"a"}`,
	}
	var recs []rcRecord
	for i, e := range events {
		recs = append(recs, rcRecord{part: 0, off: int64(i), value: []byte(e)})
	}
	rcPutFlush(t, store, s, "e", 0, recs)
	rcSetWatermark(t, store, "g", "e", 1, rcHour(1))
	if _, err := rcRecomputer(t, store, "g", nil).Recompute(context.Background(), v, Options{}); err != nil {
		t.Fatal(err)
	}
	rows, _ := rcReadView(t, store, v)
	null := schemas.Value{Null: true}
	uniq := func(vals ...int64) []byte {
		var sk hll.Sketch
		for _, x := range vals {
			sk.Add(schemas.UniqElement(schemas.Int64, &schemas.Value{Int: x}))
		}
		return sk.Marshal()
	}
	want := []views.Row{
		{T: rcHour(0).UnixMicro(), Dims: []schemas.Value{null},
			Values: []schemas.Value{{Int: 2}, {Float: 2}, {Int: 7}, {Float: 2}, {Int: 1}}, HLL: [][]byte{nil, nil, nil, nil, uniq(7)}},
		{T: rcHour(0).UnixMicro(), Dims: []schemas.Value{{Str: "a"}},
			Values: []schemas.Value{{Int: 2}, {Float: 1.5}, {Int: -2}, {Float: 1.5}, {Int: 2}}, HLL: [][]byte{nil, nil, nil, nil, uniq(5, -2)}},
		{T: rcHour(0).Add(30 * time.Minute).UnixMicro(), Dims: []schemas.Value{{Str: "a"}},
			Values: []schemas.Value{{Int: 1}, null, null, null, {Int: 0}}, HLL: [][]byte{nil, nil, nil, nil, uniq()}},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i := range want {
		g, w := rows[i], want[i]
		if g.T != w.T || g.Dims[0] != w.Dims[0] {
			t.Errorf("row %d: t=%d dims=%+v, want t=%d dims=%+v", i, g.T, g.Dims, w.T, w.Dims)
		}
		for m := range w.Values {
			if g.Values[m] != w.Values[m] {
				t.Errorf("row %d metric %s: %+v, want %+v", i, v.Metrics[m].Name, g.Values[m], w.Values[m])
			}
			if string(g.HLL[m]) != string(w.HLL[m]) {
				t.Errorf("row %d metric %s: sketch differs", i, v.Metrics[m].Name)
			}
		}
	}
}

func TestBoundary(t *testing.T) {
	final := views.HourState{Input: "x", Rows: 1, Version: 1, Final: true}
	open := views.HourState{Input: "x", Rows: 1, Version: 1}
	tests := []struct {
		name  string
		prev  time.Time
		hours map[int]views.HourState // by hour of day; only hours with files
		wm    time.Time
		want  time.Time
	}{
		{"no watermark keeps B", rcHour(3), map[int]views.HourState{0: final}, time.Time{}, rcHour(3)},
		{"all final: B at the watermark's hour", time.Time{}, map[int]views.HourState{0: final, 1: final}, rcHour(3).Add(20 * time.Minute), rcHour(3)},
		{"first not final", time.Time{}, map[int]views.HourState{0: final, 1: open, 2: final}, rcHour(4), rcHour(1)},
		{"uncomputed hour blocks", time.Time{}, map[int]views.HourState{0: final, 2: {}}, rcHour(4), rcHour(2)},
		{"hour without files does not block", time.Time{}, map[int]views.HourState{0: final, 3: final}, rcHour(5), rcHour(5)},
		{"never backwards", rcHour(4), map[int]views.HourState{0: final, 1: open}, rcHour(5), rcHour(4)},
		{"not past an open hour", time.Time{}, map[int]views.HourState{0: final}, rcHour(1), rcHour(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &views.State{Boundary: tc.prev, Hours: map[string]views.HourState{}}
			var hours []time.Time
			for h := 0; h < 24; h++ {
				hs, ok := tc.hours[h]
				if !ok {
					continue
				}
				hours = append(hours, rcHour(h))
				if hs != (views.HourState{}) {
					st.Hours[views.HourKey(rcHour(h))] = hs
				}
			}
			if got := boundary(st, hours, tc.wm); !got.Equal(tc.want) {
				t.Errorf("B = %v, want %v", got, tc.want)
			}
		})
	}
}

// A failed read of a raw file leaves the package with the package prefix
// once, naming the view, the hour and the file.
func TestErrorNamesWhatFailedOnce(t *testing.T) {
	v := rcConfig(t).View("revenue")
	store := rcDirStore(t)
	ctx := context.Background()
	key := lake.RawFile{Schema: v.Schema.Name, Hour: rcHour(0), Topic: v.Schema.Topic, First: 0, Last: 9}.Key()
	if err := lake.PutBytes(ctx, store, key, []byte("not parquet")); err != nil {
		t.Fatal(err)
	}
	rcSetWatermark(t, store, "g", v.Schema.Topic, 1, rcHour(2))
	hour := views.HourKey(rcHour(0))
	tests := []struct {
		name, prefix string
		run          func() error
	}{
		{"recompute", "recompute: view revenue: hour " + hour + ": raw file " + key + ": ", func() error {
			_, err := rcRecomputer(t, store, "g", nil).Recompute(ctx, v, Options{})
			return err
		}},
		{"cold path", "recompute: cold view revenue hour " + hour + ": raw file " + key + ": ", func() error {
			_, err := ComputeHourRows(ctx, store, v, rcHour(0))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("a corrupt raw file read without error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.prefix) || strings.Count(msg, "recompute:") != 1 || strings.Count(msg, key) != 1 {
				t.Errorf("error %q\nwant it to start %q, with the package prefix and the key once", msg, tc.prefix)
			}
		})
	}
}

func TestCheckView(t *testing.T) {
	v := rcConfig(t).View("revenue")
	tests := []struct {
		name  string
		extra schemas.Metric // added to revenue; zero: none
		ok    bool
	}{
		{"the example view", schemas.Metric{}, true},
		{"a metric named like a sketch column", schemas.Metric{Name: "buyers_hll", Agg: schemas.Count}, false},
		{"a metric named like an overflow column", schemas.Metric{Name: "revenue_overflow", Agg: schemas.Count}, false},
		{"a sum whose overflow column is a metric", schemas.Metric{Name: "orders_overflow", Agg: schemas.Count}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := *v
			if tc.extra.Name != "" {
				w.Metrics = append(append([]schemas.Metric(nil), v.Metrics...), tc.extra)
			}
			if err := checkView(&w); (err == nil) != tc.ok {
				t.Errorf("checkView: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// Hours close by the wall clock at the latest, whatever the checkpoints
// say: with a watermark at 9999-12-31T22:55 (left by events from before
// admission existed) recompute closes only the hours the wall clock minus
// lateness has passed, so B stays at the wall clock's hour.
func TestRecomputeClampsTheWatermark(t *testing.T) {
	v := rcConfig(t).View("revenue")
	store := rcDirStore(t)
	now := rcHour(3).Add(20 * time.Minute)
	recs := rcLog(t, v.Schema, rcHour(0), rcHour(4), 2000, 2, 3, nil, nil)
	rcWriteFiles(t, store, v.Schema, v.Schema.Topic, recs, 500, 0)
	rcSetWatermark(t, store, "g", v.Schema.Topic, 2, time.Date(9999, 12, 31, 22, 55, 0, 0, time.UTC))
	rc, err := New(Config{Store: store, Group: "g", Registerer: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rc.Recompute(context.Background(), v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := rcHour(3); !res.Boundary.Equal(want) || res.Hours != 3 {
		t.Errorf("B = %v after %d hours, want %v after the 3 closed by the wall clock", res.Boundary, res.Hours, want)
	}
	st, err := views.ReadState(context.Background(), store, v.Name)
	if err != nil {
		t.Fatal(err)
	}
	for k, h := range st.Hours {
		if tm, _ := time.Parse(time.RFC3339, k); h.Final && !tm.Before(rcHour(3)) {
			t.Errorf("hour %s is final; the wall clock has not closed it", k)
		}
	}
}

// A B already past the wall clock (from before admission existed) is left
// as it is, not published, and reported (ErrBoundaryAhead), while the
// hours that closed are still computed: batch keeps serving them until an
// operator repairs B.
func TestRecomputeReportsABoundaryAhead(t *testing.T) {
	v := rcConfig(t).View("revenue")
	store := rcDirStore(t)
	ctx := context.Background()
	now := rcHour(3).Add(20 * time.Minute)
	recs := rcLog(t, v.Schema, rcHour(0), rcHour(2), 1000, 1, 3, nil, nil)
	rcWriteFiles(t, store, v.Schema, v.Schema.Topic, recs, 500, 0)
	rcSetWatermark(t, store, "g", v.Schema.Topic, 1, rcHour(2).Add(10*time.Minute))
	wrong := time.Date(9999, 12, 31, 22, 0, 0, 0, time.UTC)
	st, err := views.ReadState(ctx, store, v.Name)
	if err != nil {
		t.Fatal(err)
	}
	st.Fingerprint, st.Boundary = v.Fingerprint(), wrong
	if err := views.WriteState(ctx, store, v.Name, st); err != nil {
		t.Fatal(err)
	}
	var mirrored []time.Time
	reg := prometheus.NewRegistry()
	rc, err := New(Config{Store: store, Group: "g", Registerer: reg, Now: func() time.Time { return now },
		Mirror: MirrorFunc(func(_ context.Context, _ string, b time.Time) error { mirrored = append(mirrored, b); return nil })})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rc.Recompute(ctx, v, Options{})
	if !errors.Is(err, ErrBoundaryAhead) {
		t.Fatalf("Recompute: %v, want ErrBoundaryAhead", err)
	}
	if res.Hours != 2 || !res.Boundary.Equal(wrong) || len(mirrored) != 0 {
		t.Errorf("%d hours computed, B %v, mirrored %v; want 2, B left at %v, nothing mirrored", res.Hours, res.Boundary, mirrored, wrong)
	}
	rcAssertMetric(t, reg, "lambdalake_recompute_boundary_ahead_total", v.Name, 1)
	// The repair sets it from the lake state.
	rep, err := rc.RepairBoundary(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Repaired || !rep.Previous.Equal(wrong) || !rep.Boundary.Equal(rcHour(2)) || len(mirrored) != 0 {
		t.Errorf("repair: %+v, mirrored %v; want B from %v back to %v, the mirror left to the caller", rep, mirrored, wrong, rcHour(2))
	}
}

func TestRecomputeNeedsGroupAndStore(t *testing.T) {
	if _, err := New(Config{Group: "g", Registerer: prometheus.NewRegistry()}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := New(Config{Store: rcDirStore(t), Registerer: prometheus.NewRegistry()}); err == nil {
		t.Error("no group accepted")
	}
}

// rcAssertMetric checks the value of a view's series (a counter, a gauge,
// or a histogram's count).
func rcAssertMetric(t *testing.T, reg *prometheus.Registry, name, view string, want float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "view" && l.GetValue() == view {
					var got float64
					switch {
					case m.Counter != nil:
						got = m.GetCounter().GetValue()
					case m.Gauge != nil:
						got = m.GetGauge().GetValue()
					case m.Histogram != nil:
						got = float64(m.GetHistogram().GetSampleCount())
					}
					if got != want {
						t.Errorf("%s{view=%s} = %v, want %v", name, view, got, want)
					}
					return
				}
			}
		}
	}
	t.Errorf("no series %s{view=%s}", name, view)
}

// TestViewFilesInDuckDB checks the views are plain Parquet that DuckDB reads
// as they are (DESIGN §3): every row and value equals what we decode. It
// needs DuckDB (`make duckdb`), so it is an integration test.
func TestViewFilesInDuckDB(t *testing.T) {
	testenv.Integration(t)
	python := testenv.DuckDBPython(t)
	v := rcConfig(t).View("traffic") // a bool dimension and int64 metrics
	dir := t.TempDir()
	store, err := lake.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := rcLog(t, v.Schema, rcHour(0), rcHour(2), 4000, 2, 8, map[string]int{"site": 3, "visitor": 100}, nil)
	rcWriteFiles(t, store, v.Schema, v.Schema.Topic, recs, 600, 2)
	rcSetWatermark(t, store, "g", v.Schema.Topic, 2, rcHour(2))
	if _, err := rcRecomputer(t, store, "g", nil).Recompute(context.Background(), v, Options{}); err != nil {
		t.Fatal(err)
	}
	ours, _ := rcReadView(t, store, v)

	query := fmt.Sprintf(`SELECT epoch_us(t), site, bot, views, visitors, slowest, load_ms, octet_length(visitors_hll), hr
		FROM read_parquet('%s/views/%s/*/*/view.parquet', hive_partitioning = 1) ORDER BY 1, 2, 3`, dir, v.Name)
	script := `import duckdb, json, sys
print(json.dumps(duckdb.connect().execute(sys.argv[1]).fetchall()))`
	out, err := exec.Command(python, "-c", script, query).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("duckdb: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var rows [][]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output: %v: %s", err, out)
	}
	if len(rows) != len(ours) || len(rows) == 0 {
		t.Fatalf("DuckDB reads %d rows, we wrote %d", len(rows), len(ours))
	}
	for i, r := range rows {
		o := ours[i]
		want := []any{float64(o.T), o.Dims[0].Str, o.Dims[1].Int != 0, float64(o.Values[0].Int), float64(o.Values[1].Int),
			float64(o.Values[2].Int), float64(o.Values[3].Int), float64(len(o.HLL[1])), fmt.Sprintf("%02d", time.UnixMicro(o.T).UTC().Hour())}
		if got := fmt.Sprint(r); got != fmt.Sprint(want) {
			t.Fatalf("row %d: DuckDB %v, ours %v", i, got, want)
		}
	}
}

var _ lake.Store = (*putCounter)(nil)

// putCounter counts writes to a store.
type putCounter struct {
	lake.Store
	n atomic.Int64
}

func (s *putCounter) Put(ctx context.Context, key string, body io.Reader) error {
	s.n.Add(1)
	return s.Store.Put(ctx, key, body)
}
