package views

import (
	"context"
	"slices"
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

// Rows with a where gives the rows a scan would: on the first dimension
// found by binary search in each bucket when the file is in recompute's
// order (time, then dimension values), by a scan when it is not; with
// values missing from some buckets, a null value, the second dimension and
// both, and a range that cuts the hour.
func TestRowsWhere(t *testing.T) {
	ctx := context.Background()
	s, err := schemas.NewSchema("e", "e", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp},
		{Name: "k", Type: schemas.String, Optional: true}, {Name: "n", Type: schemas.Int64}})
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.View{Name: "v", Schema: s, Granularity: time.Minute, Dimensions: []string{"k", "n"},
		Metrics: []schemas.Metric{{Name: "c", Agg: schemas.Count}}}
	// Minute m holds k in {null, a, b, c} minus one value, n in {1, 2}.
	var sorted Columns
	sorted.Dims = make([][]schemas.Value, 2)
	keys := []schemas.Value{{Null: true}, {Str: "a"}, {Str: "b"}, {Str: "c"}}
	for m := range 60 {
		for i, k := range keys {
			if i == m%4 {
				continue
			}
			for n := range int64(2) {
				sorted.T = append(sorted.T, hour(0).Add(time.Duration(m)*time.Minute).UnixMicro())
				sorted.Dims[0] = append(sorted.Dims[0], k)
				sorted.Dims[1] = append(sorted.Dims[1], schemas.Value{Int: n + 1})
			}
		}
	}
	sorted.Metrics = []MetricColumn{{Ints: make([]int64, len(sorted.T))}}
	for i := range sorted.T {
		sorted.Metrics[0].Ints[i] = int64(i)
	}
	// The same rows, k's order reversed in each bucket.
	var shuffled Columns
	shuffled.Dims = make([][]schemas.Value, 2)
	var ints []int64
	for i := 0; i < len(sorted.T); {
		j := i
		for j < len(sorted.T) && sorted.T[j] == sorted.T[i] {
			j++
		}
		for k := j - 1; k >= i; k-- {
			shuffled.T = append(shuffled.T, sorted.T[k])
			shuffled.Dims[0] = append(shuffled.Dims[0], sorted.Dims[0][k])
			shuffled.Dims[1] = append(shuffled.Dims[1], sorted.Dims[1][k])
			ints = append(ints, sorted.Metrics[0].Ints[k])
		}
		i = j
	}
	shuffled.Metrics = []MetricColumn{{Ints: ints}}
	for _, file := range []struct {
		name        string
		cols        *Columns
		wantByFirst bool
	}{{"recompute's order", &sorted, true}, {"another order", &shuffled, false}} {
		store := dirStore(t)
		b, err := Encode(v, file.cols, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := lake.PutBytes(ctx, store, lake.ViewKey(v.Name, hour(0)), b); err != nil {
			t.Fatal(err)
		}
		st := &State{Fingerprint: v.Fingerprint(), Boundary: hour(1),
			Hours: map[string]HourState{HourKey(hour(0)): {Input: "x", Rows: int64(len(file.cols.T)), Version: 1, Final: true}}}
		if err := WriteState(ctx, store, v.Name, st); err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(ReaderConfig{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		all, err := r.Rows(ctx, v, hour(0), hour(1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if hr, _ := r.hour(ctx, v, st.Fingerprint, hour(0), 1); hr.byFirst != file.wantByFirst {
			t.Fatalf("%s: byFirst = %v, want %v", file.name, hr.byFirst, file.wantByFirst)
		}
		for _, tt := range []struct {
			where    map[string]schemas.Value
			from, to time.Duration
		}{
			{map[string]schemas.Value{"k": {Str: "b"}}, 0, time.Hour},
			{map[string]schemas.Value{"k": {Null: true}}, 0, time.Hour},
			{map[string]schemas.Value{"k": {Str: "zz"}}, 0, time.Hour},
			{map[string]schemas.Value{"k": {Str: "0"}}, 0, time.Hour},
			{map[string]schemas.Value{"n": {Int: 2}}, 0, time.Hour},
			{map[string]schemas.Value{"k": {Str: "c"}, "n": {Int: 1}}, 0, time.Hour},
			{map[string]schemas.Value{"k": {Str: "a"}}, 7 * time.Minute, 31 * time.Minute},
		} {
			var want []int64
			for _, row := range all {
				ok := row.T >= hour(0).Add(tt.from).UnixMicro() && row.T < hour(0).Add(tt.to).UnixMicro()
				for d, val := range tt.where {
					ok = ok && row.Dims[slices.Index(v.Dimensions, d)] == val
				}
				if ok {
					want = append(want, row.Values[0].Int)
				}
			}
			rows, err := r.Rows(ctx, v, hour(0).Add(tt.from), hour(0).Add(tt.to), tt.where)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, row := range rows {
				got = append(got, row.Values[0].Int)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: where %v [%v, %v): rows %v, want %v", file.name, tt.where, tt.from, tt.to, got, want)
			}
			if len(want) == 0 && tt.where["k"].Str != "zz" && tt.where["k"].Str != "0" {
				t.Errorf("%s: where %v: the test expects rows", file.name, tt.where)
			}
		}
	}
}
