package views

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/lake"
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
	put := func(b time.Time) {
		if err := WriteState(ctx, store, "v", &State{Boundary: b, Hours: map[string]HourState{}}); err != nil {
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
