package recompute

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

var _ lake.Store = (*countingStore)(nil)

// countingStore counts reads of view files.
type countingStore struct {
	lake.Store
	viewGets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, "/view.parquet") {
		s.viewGets.Add(1)
		time.Sleep(5 * time.Millisecond) // widen the window for concurrent misses
	}
	return s.Store.Get(ctx, key)
}

func TestViewReaderCache(t *testing.T) {
	v := rcConfig(t).View("revenue")
	base := rcDirStore(t)
	recs := rcLog(t, v.Schema, rcHour(0), rcHour(3), 3000, 2, 3, map[string]int{"tenant": 3, "country": 2, "user_id": 50}, nil)
	rcWriteFiles(t, base, v.Schema, v.Schema.Topic, recs, 500, 0)
	rcSetWatermark(t, base, "g", v.Schema.Topic, 2, rcHour(3))
	ctx := context.Background()
	if _, err := rcRecomputer(t, base, "g", nil).Recompute(ctx, v, Options{}); err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: base}
	r, err := views.NewReader(views.ReaderConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("concurrent misses load each hour once", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := r.Rows(ctx, v, rcHour(0), rcHour(3), nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := store.viewGets.Load(); n != 3 {
			t.Errorf("%d view file reads for 3 hours", n)
		}
		rows, err := r.Rows(ctx, v, rcHour(0), rcHour(3), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := store.viewGets.Load(); n != 3 {
			t.Errorf("a cached read went to the lake (%d reads)", n)
		}
		rcCompare(t, v, rows, rcReference(t, v, recs, nil))
	})

	t.Run("range is cut to [from, to) and B", func(t *testing.T) {
		from, to := rcHour(1).Add(10*time.Minute), rcHour(9)
		rows, err := r.Rows(ctx, v, from, to, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			t.Fatal("no rows")
		}
		for _, row := range rows {
			if row.T < from.UnixMicro() || row.T >= rcHour(3).UnixMicro() {
				t.Fatalf("row at %v outside [%v, B=%v)", time.UnixMicro(row.T).UTC(), from, rcHour(3))
			}
		}
	})

	t.Run("bad where", func(t *testing.T) {
		tests := map[string]map[string]schemas.Value{
			"unknown dimension": {"city": {Str: "x"}},
		}
		for name, where := range tests {
			if _, err := r.Rows(ctx, v, rcHour(0), rcHour(1), where); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		// Where values arrive typed; the text rule is schemas.ParseDimValue.
		if _, err := schemas.ParseDimValue(schemas.Bool, "maybe"); err == nil {
			t.Error("a bool dimension accepted \"maybe\"")
		}
	})
}

// BenchmarkComputeHour measures reading, dedup and aggregation of one hour
// (about 200k raw rows, the bench's hour) without the view file write.
func BenchmarkComputeHour(b *testing.B) {
	v := rcConfig(b).View("revenue")
	store := rcDirStore(b)
	recs := rcLog(b, v.Schema, rcHour(0), rcHour(1), 200_000, 4, 1,
		map[string]int{"tenant": 10, "country": 20, "user_id": 100_000}, nil)
	rcWriteFiles(b, store, v.Schema, v.Schema.Topic, recs, 50_000, 0)
	ctx := context.Background()
	plan, _, err := raw.PlanHour(ctx, store, v.Schema.Name, rcHour(0))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		vh, st, err := computeHour(ctx, store, v, rcHour(0), plan)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.read), "rows/op")
		_ = vh
	}
}

// BenchmarkEncodeViewFile measures writing one hour's view file.
func BenchmarkEncodeViewFile(b *testing.B) {
	v := rcConfig(b).View("revenue")
	store := rcDirStore(b)
	recs := rcLog(b, v.Schema, rcHour(0), rcHour(1), 200_000, 4, 1,
		map[string]int{"tenant": 10, "country": 20, "user_id": 100_000}, nil)
	rcWriteFiles(b, store, v.Schema, v.Schema.Topic, recs, 50_000, 0)
	ctx := context.Background()
	plan, _, err := raw.PlanHour(ctx, store, v.Schema.Name, rcHour(0))
	if err != nil {
		b.Fatal(err)
	}
	vh, _, err := computeHour(ctx, store, v, rcHour(0), plan)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := views.Encode(v, vh, 1); err != nil {
			b.Fatal(err)
		}
	}
}
