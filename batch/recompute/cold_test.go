package recompute

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
)

// ComputeHourRows (the serving layer's cold fallback) must give the
// independent reference's figures on a lake with overlapping files and
// duplicate ids, and exactly the rows recompute writes for the hour: same
// dedup, same figures, same order.
func TestComputeHourRowsEqualsRecompute(t *testing.T) {
	cfg := rcConfig(t)
	ctx := context.Background()
	v := cfg.View("revenue")
	store := rcDirStore(t)
	recs := rcLog(t, v.Schema, rcHour(0), rcHour(2), 6000, 2, 5,
		map[string]int{"tenant": 4, "country": 5, "user_id": 300}, nil)
	rcWriteFiles(t, store, v.Schema, v.Schema.Topic, recs, 500, 3)
	rcSetWatermark(t, store, "g", v.Schema.Topic, 2, rcHour(2).Add(10*time.Minute))
	if _, err := rcRecomputer(t, store, "g", nil).Recompute(ctx, v, Options{}); err != nil {
		t.Fatal(err)
	}
	want, _ := rcReadView(t, store, v)
	var got []views.Row
	for _, h := range []time.Time{rcHour(0), rcHour(1)} {
		rows, err := ComputeHourRows(ctx, store, v, h)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rows...)
	}
	// Both drops are exercised: hour 0 has overlapping files, both hours
	// repeated ids.
	rcAssertOverlaps(t, store, v.Schema, rcHour(0))
	rcAssertDuplicates(t, v.Schema, recs, rcHour(0), rcHour(1))
	inRange := func(h time.Time) bool { return !h.Before(rcHour(0)) && h.Before(rcHour(2)) }
	rcCompare(t, v, got, rcReference(t, v, recs, inRange))

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
