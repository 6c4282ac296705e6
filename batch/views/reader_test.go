package views

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

func dirStore(t testing.TB) lake.Store {
	t.Helper()
	s, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StateAtLeast rereads a cached state whose boundary is older than asked.
func TestStateAtLeastRereads(t *testing.T) {
	ctx := context.Background()
	store := dirStore(t)
	r, err := NewReader(ReaderConfig{Store: store, StateTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	put := func(b time.Time) { // as recompute writes it: over the version read
		st, err := ReadState(ctx, store, "v")
		if err != nil {
			t.Fatal(err)
		}
		st.Boundary = b
		if err := WriteState(ctx, store, "v", st); err != nil {
			t.Fatal(err)
		}
	}
	put(hour(1))
	if st, _ := r.State(ctx, "v"); !st.Boundary.Equal(hour(1)) {
		t.Fatalf("B = %v", st.Boundary)
	}
	put(hour(3))
	if st, _ := r.State(ctx, "v"); !st.Boundary.Equal(hour(1)) {
		t.Fatalf("cached B = %v, want the cached 01h", st.Boundary)
	}
	st, err := r.StateAtLeast(ctx, "v", hour(2))
	if err != nil || !st.Boundary.Equal(hour(3)) {
		t.Fatalf("StateAtLeast = %v, %v; want 03h from the lake", st.Boundary, err)
	}
	if st, _ := r.State(ctx, "v"); !st.Boundary.Equal(hour(3)) {
		t.Errorf("cache not refreshed: %v", st.Boundary)
	}
	if _, err := lake.ReadAll(ctx, store, lake.ViewStateKey("v")); err != nil {
		t.Fatal(err)
	}
}

// The cache is bounded by its byte budget: with a 1-byte budget it keeps
// only the hour read last. (Moved from the recompute tests, which hold the
// reader's tests that need recomputed hours.)
func TestReaderCacheEviction(t *testing.T) {
	ctx := context.Background()
	store := dirStore(t)
	s, err := schemas.NewSchema("e", "e", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp}, {Name: "k", Type: schemas.String}})
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.View{Name: "v", Schema: s, Granularity: time.Minute, Dimensions: []string{"k"},
		Metrics: []schemas.Metric{{Name: "c", Agg: schemas.Count}}}
	st := &State{Fingerprint: v.Fingerprint(), Boundary: hour(3), Hours: map[string]HourState{}}
	for h := range 3 {
		cols := &Columns{T: []int64{hour(h).UnixMicro()}, Dims: [][]schemas.Value{{{Str: "a"}}},
			Metrics: []MetricColumn{{Ints: []int64{int64(h + 1)}}}}
		b, err := Encode(v, cols, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := lake.PutBytes(ctx, store, lake.ViewKey(v.Name, hour(h)), b); err != nil {
			t.Fatal(err)
		}
		st.Hours[HourKey(hour(h))] = HourState{Input: "x", Rows: 1, Version: 1, Final: true}
	}
	if err := WriteState(ctx, store, v.Name, st); err != nil {
		t.Fatal(err)
	}
	small, err := NewReader(ReaderConfig{Store: store, CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rows, err := small.Rows(ctx, v, hour(0), hour(3), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("%d rows, want one per hour", len(rows))
		}
	}
	if n, _ := small.cacheStats(); n != 1 {
		t.Errorf("%d hours cached with a 1-byte budget, want only the latest", n)
	}
}
