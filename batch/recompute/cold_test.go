package batch

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

// ComputeHourRows (the serving layer's cold fallback) must give exactly the
// rows recompute writes for the hour: same dedup, same figures, same order.
func TestComputeHourRowsEqualsRecompute(t *testing.T) {
	cfg := rcConfig(t)
	ctx := context.Background()
	v := cfg.View("revenue")
	store := rcDirStore(t)
	recs := rcLog(t, v.Schema, rcHour(0), rcHour(2), 6000, 2, 5,
		map[string]int{"tenant": 4, "country": 5, "user_id": 300}, nil)
	rcWriteFiles(t, store, v.Schema, v.Schema.Topic, recs, 500, 3)
	rcSetWatermark(t, store, "g", v.Schema.Topic, 2, rcHour(2).Add(10*time.Minute))
	if _, err := rcRecomputer(t, store, "g", nil).Recompute(ctx, v, RecomputeOptions{}); err != nil {
		t.Fatal(err)
	}
	want, _ := rcReadView(t, store, v)
	var got []ViewRow
	for _, h := range []time.Time{rcHour(0), rcHour(1)} {
		rows, err := ComputeHourRows(ctx, store, v, h)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rows...)
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d cold rows, recompute wrote %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		same := g.T == w.T && len(g.Dims) == len(w.Dims) && len(g.Values) == len(w.Values)
		for j := 0; same && j < len(g.Dims); j++ {
			same = g.Dims[j] == w.Dims[j]
		}
		for j := 0; same && j < len(g.Values); j++ {
			same = g.Values[j] == w.Values[j] && string(g.HLL[j]) == string(w.HLL[j])
		}
		if !same {
			t.Fatalf("row %d: cold %+v, recompute %+v", i, *g, *w)
		}
	}
	// An hour without raw files has no rows and no error.
	if rows, err := ComputeHourRows(ctx, store, v, rcHour(5)); err != nil || len(rows) != 0 {
		t.Errorf("empty hour: %d rows, %v", len(rows), err)
	}
}

// StateAtLeast rereads a cached state whose boundary is older than asked.
func TestStateAtLeastRereads(t *testing.T) {
	ctx := context.Background()
	store := rcDirStore(t)
	r, err := NewViewReader(ViewReaderConfig{Store: store, StateTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	put := func(b time.Time) {
		if err := writeState(ctx, store, "v", &State{Boundary: b, Hours: map[string]HourState{}}); err != nil {
			t.Fatal(err)
		}
	}
	put(rcHour(1))
	if st, _ := r.State(ctx, "v"); !st.Boundary.Equal(rcHour(1)) {
		t.Fatalf("B = %v", st.Boundary)
	}
	put(rcHour(3))
	if st, _ := r.State(ctx, "v"); !st.Boundary.Equal(rcHour(1)) {
		t.Fatalf("cached B = %v, want the cached 01h", st.Boundary)
	}
	st, err := r.StateAtLeast(ctx, "v", rcHour(2))
	if err != nil || !st.Boundary.Equal(rcHour(3)) {
		t.Fatalf("StateAtLeast = %v, %v; want 03h from the lake", st.Boundary, err)
	}
	if st, _ := r.State(ctx, "v"); !st.Boundary.Equal(rcHour(3)) {
		t.Errorf("cache not refreshed: %v", st.Boundary)
	}
	if _, err := lake.ReadAll(ctx, store, lake.ViewStateKey("v")); err != nil {
		t.Fatal(err)
	}
}
