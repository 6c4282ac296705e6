package recompute

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Helpers shared by the recompute tests: a simulated Kafka log written into
// raw lake files the way the compactor writes them (overlaps included), and
// a reference aggregation computed independently of the code under test.

func rcConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rcRecord is one Kafka record of the simulated log.
type rcRecord struct {
	part  int32
	off   int64
	value []byte
	kind  gen.Kind
}

// rcLog generates count events over [from, to) and spreads them over
// partitions the way a keyless producer would (round robin), numbering
// offsets per partition. Events whose hour skip reports are left out.
func rcLog(t testing.TB, s *schemas.Schema, from, to time.Time, count int64, partitions int, seed uint64, card map[string]int, skip func(time.Time) bool) []rcRecord {
	t.Helper()
	mine := map[string]int{}
	for name, c := range card {
		if s.FieldIndex(name) >= 0 {
			mine[name] = c
		}
	}
	g, err := gen.New(gen.Config{Schema: s, From: from, To: to, Count: count, Cardinality: mine, DefaultCardinality: 7,
		OutOfOrder: 0.1, MaxDelay: 20 * time.Minute, Duplicates: 0.03, Malformed: 0.01, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int64, partitions)
	recs := make([]rcRecord, 0, count)
	dec := schemas.NewDecoder(s)
	var row schemas.Row
	for i := int64(0); i < count; i++ {
		e := g.Next(time.Time{})
		if skip != nil && dec.Decode(e.Value, &row) == nil && skip(time.UnixMicro(s.TimeMicros(&row)).UTC().Truncate(time.Hour)) {
			continue
		}
		p := int32(i % int64(partitions))
		recs = append(recs, rcRecord{part: p, off: next[p], value: e.Value, kind: e.Kind})
		next[p]++
	}
	return recs
}

// rcWriteFiles writes the records as the compactor would: per partition,
// flushes of flush records, one file per event hour per flush, rows sorted
// by event time, malformed records left out (they go to dead letters). Every
// overlapEvery-th flush (0: none) re-reads the last third of the previous
// flush, as a compactor restarted from an old checkpoint does.
func rcWriteFiles(t testing.TB, store lake.Store, s *schemas.Schema, topic string, recs []rcRecord, flush, overlapEvery int) {
	t.Helper()
	byPart := map[int32][]rcRecord{}
	for _, r := range recs {
		byPart[r.part] = append(byPart[r.part], r)
	}
	for p, rs := range byPart {
		n := 0
		for start := 0; start < len(rs); n++ {
			from := start
			if overlapEvery > 0 && n > 0 && n%overlapEvery == 0 {
				from = max(0, start-flush/3)
			}
			end := min(len(rs), start+flush)
			rcPutFlush(t, store, s, topic, p, rs[from:end])
			start = end
		}
	}
}

// rcPutFlush writes one flush's records, one file per event hour.
func rcPutFlush(t testing.TB, store lake.Store, s *schemas.Schema, topic string, p int32, rs []rcRecord) {
	t.Helper()
	dec := schemas.NewDecoder(s)
	type hrow struct {
		t   int64
		row parquet.Row
		off int64
	}
	hours := map[time.Time][]hrow{}
	layout := s.RawLayout()
	for _, r := range rs {
		var row schemas.Row
		if err := dec.Decode(r.value, &row); err != nil {
			continue
		}
		ts := s.TimeMicros(&row)
		h := time.UnixMicro(ts).UTC().Truncate(time.Hour)
		hours[h] = append(hours[h], hrow{ts, layout.AppendRow(nil, &row, p, r.off, ts+1000), r.off})
	}
	for h, rows := range hours {
		first, last := int64(math.MaxInt64), int64(math.MinInt64)
		for _, r := range rows {
			first, last = min(first, r.off), max(last, r.off)
		}
		slices.SortStableFunc(rows, func(a, b hrow) int { return cmp.Compare(a.t, b.t) })
		prows := make([]parquet.Row, len(rows))
		for i := range rows {
			prows[i] = rows[i].row
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema)
		if _, err := w.WriteRows(prows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		key := lake.RawFile{Schema: s.Name, Hour: h, Topic: topic, Partition: p, First: first, Last: last}.Key()
		if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// rcSetWatermark publishes the same watermark for every partition.
func rcSetWatermark(t testing.TB, store lake.Store, group, topic string, partitions int, wm time.Time) {
	t.Helper()
	for p := 0; p < partitions; p++ {
		b, err := json.Marshal(raw.Checkpoint{NextOffset: 1, Watermark: wm})
		if err != nil {
			t.Fatal(err)
		}
		if err := lake.PutBytes(context.Background(), store, lake.CheckpointKey(group, topic, int32(p)), b); err != nil {
			t.Fatal(err)
		}
	}
}

// rcRef is the reference value of one (bucket, dimensions) row.
type rcRef struct {
	count int64
	f     []float64
	i     []int64
	has   []bool
	uniq  []map[string]bool
}

// rcReference aggregates the valid events (each id once) independently of
// the code under test: straight from the decoded rows, keyed by
// "t|dim|dim..." with dimensions as text.
func rcReference(t testing.TB, v *schemas.View, recs []rcRecord, hourFilter func(time.Time) bool) map[string]*rcRef {
	t.Helper()
	s := v.Schema
	dec := schemas.NewDecoder(s)
	out := map[string]*rcRef{}
	for _, r := range recs {
		if r.kind != gen.Valid {
			continue
		}
		var row schemas.Row
		if err := dec.Decode(r.value, &row); err != nil {
			t.Fatalf("valid event does not decode: %v", err)
		}
		ts := s.TimeMicros(&row)
		if hourFilter != nil && !hourFilter(time.UnixMicro(ts).UTC().Truncate(time.Hour)) {
			continue
		}
		key := strconv.FormatInt(v.Bucket(ts), 10)
		for _, d := range v.Dimensions {
			key += "|" + rcText(s, d, row.Values[s.FieldIndex(d)])
		}
		ref := out[key]
		if ref == nil {
			n := len(v.Metrics)
			ref = &rcRef{f: make([]float64, n), i: make([]int64, n), has: make([]bool, n), uniq: make([]map[string]bool, n)}
			out[key] = ref
		}
		ref.count++
		for mi, m := range v.Metrics {
			if m.Agg == schemas.Count {
				continue
			}
			f, _ := s.Field(m.Field)
			x := row.Values[s.FieldIndex(m.Field)]
			if x.Null {
				continue
			}
			if m.Agg == schemas.Uniq {
				if ref.uniq[mi] == nil {
					ref.uniq[mi] = map[string]bool{}
				}
				ref.uniq[mi][rcText(s, m.Field, x)] = true
				continue
			}
			fl := f.Type == schemas.Float64
			switch {
			case m.Agg == schemas.Sum && fl:
				ref.f[mi] += x.Float
			case m.Agg == schemas.Sum:
				ref.i[mi] += x.Int
			case fl && (!ref.has[mi] || m.Agg == schemas.Min && x.Float < ref.f[mi] || m.Agg == schemas.Max && x.Float > ref.f[mi]):
				ref.f[mi] = x.Float
			case !fl && (!ref.has[mi] || m.Agg == schemas.Min && x.Int < ref.i[mi] || m.Agg == schemas.Max && x.Int > ref.i[mi]):
				ref.i[mi] = x.Int
			}
			ref.has[mi] = true
		}
	}
	return out
}

// rcText is a value as text: what where= filters take and what a uniq
// metric counts.
func rcText(s *schemas.Schema, field string, x schemas.Value) string {
	f, _ := s.Field(field)
	switch {
	case x.Null:
		return "<null>"
	case f.Type == schemas.String:
		return x.Str
	case f.Type == schemas.Bool:
		return strconv.FormatBool(x.Int != 0)
	case f.Type == schemas.Float64:
		return strconv.FormatFloat(x.Float, 'g', -1, 64)
	case f.Type.Kind() == schemas.Decimal: // exact, S decimals; by math/big, not the code under test
		return new(big.Rat).SetFrac(big.NewInt(x.Int), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(f.Type.Scale())), nil)).FloatString(f.Type.Scale())
	}
	return strconv.FormatInt(x.Int, 10)
}

// rcRelTol is the tolerance for float sums: the view adds in file order, the
// reference in log order, and float addition is not associative. Amounts
// are cents below 1000, so sums of a bucket differ by a few ulps at most.
const rcRelTol = 1e-9

// rcCompare checks view rows against the reference, exactly but for float
// sums (rcRelTol), including each uniq sketch's registers.
func rcCompare(t testing.TB, v *schemas.View, rows []views.Row, ref map[string]*rcRef) {
	t.Helper()
	seen := map[string]bool{}
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for ri := range rows {
		row := &rows[ri]
		key := strconv.FormatInt(row.T, 10)
		for d, name := range v.Dimensions {
			key += "|" + rcText(v.Schema, name, row.Dims[d])
		}
		if ri > 0 && !rcLess(v, &rows[ri-1], row) {
			fail("rows not sorted by t then dimensions at %s", key)
		}
		if seen[key] {
			fail("row %s twice", key)
		}
		seen[key] = true
		want, ok := ref[key]
		if !ok {
			fail("row %s not in the reference", key)
			continue
		}
		for mi, m := range v.Metrics {
			got := row.Values[mi]
			f, _ := v.Schema.Field(m.Field)
			switch {
			case m.Agg == schemas.Count:
				if got.Int != want.count {
					fail("%s %s: count %d, want %d", key, m.Name, got.Int, want.count)
				}
			case m.Agg == schemas.Uniq:
				if got.Int != int64(len(want.uniq[mi])) {
					fail("%s %s: distinct %d, want %d", key, m.Name, got.Int, len(want.uniq[mi]))
				}
				var sk hll.Sketch
				for e := range want.uniq[mi] {
					sk.Add(e)
				}
				back, err := hll.Unmarshal(row.HLL[mi])
				if err != nil {
					fail("%s %s: sketch: %v", key, m.Name, err)
				} else if *back != sk {
					fail("%s %s: sketch registers differ from the reference values'", key, m.Name)
				}
			case got.Null != !want.has[mi]:
				fail("%s %s: null=%v, want has=%v", key, m.Name, got.Null, want.has[mi])
			case got.Null:
			case f.Type == schemas.Float64 && m.Agg == schemas.Sum:
				if d := math.Abs(got.Float - want.f[mi]); d > rcRelTol*math.Max(1, math.Abs(want.f[mi])) {
					fail("%s %s: sum %v, want %v", key, m.Name, got.Float, want.f[mi])
				}
			case f.Type == schemas.Float64:
				if got.Float != want.f[mi] {
					fail("%s %s: %v, want %v", key, m.Name, got.Float, want.f[mi])
				}
			default:
				if got.Int != want.i[mi] {
					fail("%s %s: %d, want %d", key, m.Name, got.Int, want.i[mi])
				}
			}
		}
	}
	for key := range ref {
		if !seen[key] {
			fail("reference row %s missing from the view", key)
		}
	}
	if errs > 10 {
		t.Errorf("... %d mismatches in all", errs)
	}
}

func rcLess(v *schemas.View, a, b *views.Row) bool {
	if a.T != b.T {
		return a.T < b.T
	}
	for d, name := range v.Dimensions {
		f, _ := v.Schema.Field(name)
		if c := schemas.CompareValues(f.Type, a.Dims[d], b.Dims[d]); c != 0 {
			return c < 0
		}
	}
	return false
}

// rcReadView reads every view file of a view, sorted by hour.
func rcReadView(t testing.TB, store lake.Store, v *schemas.View) (rows []views.Row, hours []time.Time) {
	t.Helper()
	ctx := context.Background()
	objs, err := store.List(ctx, lake.ViewPrefix(v.Name))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, "/view.parquet") {
			continue
		}
		h, _ := lake.PartitionHour(o.Key)
		hours = append(hours, h)
		b, err := lake.ReadAll(ctx, store, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := views.Decode(ctx, v, b)
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		if fp := rcFileFingerprint(t, b); fp != v.Fingerprint() {
			t.Errorf("%s: fingerprint %s, want %s", o.Key, fp, v.Fingerprint())
		}
		rows = append(rows, rs...)
	}
	return rows, hours
}

// rcFileFingerprint reads the fingerprint a view file records in its
// key-value metadata, as any Parquet reader sees it.
func rcFileFingerprint(t testing.TB, b []byte) string {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fp := pf.MetaData().KeyValueMetadata().FindValue("lambdalake.fingerprint")
	if fp == nil {
		return ""
	}
	return *fp
}

func rcHour(h int) time.Time { return time.Date(2026, 11, 27, h, 0, 0, 0, time.UTC) }

func rcFmt(ts []time.Time) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "%s ", t.Format("15h"))
	}
	return b.String()
}

// rcAssertOverlaps checks the test lake really has overlapping files and
// duplicate ids in the given hours, so exactness tests exercise both drops.
func rcAssertOverlaps(t testing.TB, store lake.Store, s *schemas.Schema, hours ...time.Time) {
	t.Helper()
	for _, h := range hours {
		plan, _, err := raw.PlanHour(context.Background(), store, s.Name, h)
		if err != nil {
			t.Fatal(err)
		}
		overlaps := 0
		for _, f := range plan {
			overlaps += len(f.Drop)
		}
		if overlaps == 0 {
			t.Errorf("hour %v: no overlapping raw files; the test does not exercise the overlap drop", h)
		}
	}
}

// rcAssertDuplicates checks the simulated log really repeats ids (the
// generator's duplicates: a valid event sent again) in the given hours, so
// exactness tests exercise the id dedup.
func rcAssertDuplicates(t testing.TB, s *schemas.Schema, recs []rcRecord, hours ...time.Time) {
	t.Helper()
	dec := schemas.NewDecoder(s)
	dups := map[time.Time]int{}
	for _, r := range recs {
		var row schemas.Row
		if r.kind != gen.Duplicate || dec.Decode(r.value, &row) != nil {
			continue
		}
		dups[time.UnixMicro(s.TimeMicros(&row)).UTC().Truncate(time.Hour)]++
	}
	for _, h := range hours {
		if dups[h] == 0 {
			t.Errorf("hour %v: no duplicate ids in the log; the test does not exercise the id dedup", h)
		}
	}
}
