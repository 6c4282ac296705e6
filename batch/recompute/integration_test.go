package recompute

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch/views"
	bound "github.com/lambdalake/lambdalake/internal/boundary" // recompute has a func boundary
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// TestRecomputeOnS3 runs recompute against LocalStack S3 and mirrors B into
// the real Redis: exactness, an hour without files, late data, a changed
// view definition and a forced backfill, in that order on one lake.
func TestRecomputeOnS3(t *testing.T) {
	store, _ := testenv.S3Lake(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()

	base := rcConfig(t).View("revenue")
	v := *base
	v.Name = testenv.Name("revenue") // Redis keys are shared with other tests
	t.Cleanup(func() { rdb.Del(context.Background(), bound.Key(v.Name)) })
	s := v.Schema
	const parts = 3
	const group = "compact"
	// Hours 0, 1 and 3 have events, hour 2 none, hour 4 is still open.
	noHour2 := func(h time.Time) bool { return h.Equal(rcHour(2)) }
	recs := rcLog(t, s, rcHour(0), rcHour(4).Add(30*time.Minute), 18000, parts, 5,
		map[string]int{"tenant": 3, "country": 4, "user_id": 400}, noHour2)
	rcWriteFiles(t, store, s, s.Topic, recs, 300, 2)
	rcSetWatermark(t, store, group, s.Topic, parts, rcHour(4).Add(10*time.Minute))

	mirror := MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
		_, err := bound.Publish(ctx, rdb, view, b)
		return err
	})
	rc := rcRecomputer(t, store, group, mirror)
	reader, err := views.NewReader(views.ReaderConfig{Store: store, StateTTL: time.Nanosecond, CacheBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	closed := func(h time.Time) bool { return h.Before(rcHour(4)) }

	versions := func() map[string]views.HourState {
		st, err := views.ReadState(ctx, store, v.Name)
		if err != nil {
			t.Fatal(err)
		}
		return st.Hours
	}
	viewFile := func(view string, h int) []byte {
		b, err := lake.ReadAll(ctx, store, lake.ViewKey(view, rcHour(h)))
		if err != nil {
			t.Fatalf("view file of hour %d: %v", h, err)
		}
		return b
	}

	t.Run("exact", func(t *testing.T) {
		res, err := rc.Recompute(ctx, &v, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Hours != 3 || !res.Boundary.Equal(rcHour(4)) {
			t.Errorf("hours=%d B=%v, want 3 hours and B=%v", res.Hours, res.Boundary, rcHour(4))
		}
		rows, hours := rcReadView(t, store, &v)
		if got := rcFmt(hours); got != "00h 01h 03h " {
			t.Errorf("view files for %s, want 00h 01h 03h (none for the empty hour 2 or the open hour 4)", got)
		}
		ref := rcReference(t, &v, recs, closed)
		rcCompare(t, &v, rows, ref)
		rcAssertOverlaps(t, store, s, rcHour(0), rcHour(1), rcHour(3))

		b, ok, err := bound.Read(ctx, rdb, v.Name)
		if err != nil || !ok || !b.Equal(rcHour(4)) {
			t.Errorf("Redis boundary = %v, %v, %v; want %v", b, ok, err, rcHour(4))
		}
		// The reader serves the same rows, cut at B.
		got, err := reader.Rows(ctx, &v, rcHour(0), rcHour(6), nil)
		if err != nil {
			t.Fatal(err)
		}
		rcCompare(t, &v, got, ref)
		// ... and filters by dimension.
		where, err := reader.Rows(ctx, &v, rcHour(1), rcHour(2), map[string]schemas.Value{"tenant": {Str: "tenant-1"}})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, r := range rows {
			if r.Dims[0].Str == "tenant-1" && r.T >= rcHour(1).UnixMicro() && r.T < rcHour(2).UnixMicro() {
				want++
			}
		}
		if len(where) != want || want == 0 {
			t.Errorf("where tenant=tenant-1 in hour 1: %d rows, want %d", len(where), want)
		}
		for _, r := range where {
			if r.Dims[0].Str != "tenant-1" {
				t.Fatalf("filtered row has tenant %q", r.Dims[0].Str)
			}
		}
		if _, err := reader.Rows(ctx, &v, rcHour(0), rcHour(1), map[string]schemas.Value{"nope": {Str: "x"}}); err == nil {
			t.Error("unknown dimension accepted")
		}
	})

	t.Run("late data", func(t *testing.T) {
		before := versions()
		h0, h3 := viewFile(v.Name, 0), viewFile(v.Name, 3)
		// Fresh events for the closed hour 1 arrive on partition 0 after
		// everything else; the compactor writes a file and a dirty marker.
		g, err := gen.New(gen.Config{Schema: s, From: rcHour(1), To: rcHour(2), Count: 400, Seed: 99,
			Cardinality: map[string]int{"tenant": 3, "country": 4, "user_id": 400}})
		if err != nil {
			t.Fatal(err)
		}
		var next int64
		for _, r := range recs {
			if r.part == 0 {
				next = max(next, r.off+1)
			}
		}
		var late []rcRecord
		for i := 0; i < 400; i++ {
			e := g.Next(time.Time{})
			late = append(late, rcRecord{part: 0, off: next + int64(i), value: e.Value, kind: e.Kind})
		}
		rcPutFlush(t, store, s, s.Topic, 0, late)
		if err := lake.PutBytes(ctx, store, lake.DirtyKey(s.Name, rcHour(1)), nil); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, late...)

		res, err := rc.Recompute(ctx, &v, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Hours != 1 {
			t.Errorf("recomputed %d hours, want only hour 1", res.Hours)
		}
		if !res.Boundary.Equal(rcHour(4)) {
			t.Errorf("B moved to %v, want it to stay at %v", res.Boundary, rcHour(4))
		}
		after := versions()
		k1 := views.HourKey(rcHour(1))
		if after[k1].Version != before[k1].Version+1 {
			t.Errorf("hour 1 version %d → %d, want +1", before[k1].Version, after[k1].Version)
		}
		for _, h := range []int{0, 3} {
			k := views.HourKey(rcHour(h))
			if after[k] != before[k] {
				t.Errorf("hour %d state changed: %+v → %+v", h, before[k], after[k])
			}
		}
		if !bytes.Equal(h0, viewFile(v.Name, 0)) || !bytes.Equal(h3, viewFile(v.Name, 3)) {
			t.Error("view files of untouched hours were rewritten")
		}
		if _, err := store.Get(ctx, lake.DirtyKey(s.Name, rcHour(1))); err == nil {
			t.Error("dirty marker not removed")
		}
		rows, _ := rcReadView(t, store, &v)
		rcCompare(t, &v, rows, rcReference(t, &v, recs, closed))
		got, err := reader.Rows(ctx, &v, rcHour(0), rcHour(4), nil)
		if err != nil {
			t.Fatal(err)
		}
		rcCompare(t, &v, got, rcReference(t, &v, recs, closed))
	})

	t.Run("fingerprint change", func(t *testing.T) {
		before := versions()
		v2 := v
		v2.Metrics = append(append([]schemas.Metric(nil), v.Metrics...), schemas.Metric{Name: "coupons", Agg: schemas.Uniq, Field: "coupon"})
		if v2.Fingerprint() == v.Fingerprint() {
			t.Fatal("adding a metric did not change the fingerprint")
		}
		res, err := rc.Recompute(ctx, &v2, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Hours != 3 {
			t.Errorf("recomputed %d hours, want every retained hour (3)", res.Hours)
		}
		after := versions()
		for _, h := range []int{0, 1, 3} {
			k := views.HourKey(rcHour(h))
			if after[k].Version != before[k].Version+1 {
				t.Errorf("hour %d version %d → %d, want rewritten", h, before[k].Version, after[k].Version)
			}
		}
		if !res.Boundary.Equal(rcHour(4)) {
			t.Errorf("B = %v, want %v", res.Boundary, rcHour(4))
		}
		rows, _ := rcReadView(t, store, &v2)
		rcCompare(t, &v2, rows, rcReference(t, &v2, recs, closed))
		got, err := reader.Rows(ctx, &v2, rcHour(0), rcHour(4), nil)
		if err != nil {
			t.Fatal(err)
		}
		rcCompare(t, &v2, got, rcReference(t, &v2, recs, closed))
		v = v2
	})

	t.Run("backfill range", func(t *testing.T) {
		before := versions()
		res, err := rc.Recompute(ctx, &v, Options{From: rcHour(0), To: rcHour(2), Force: true})
		if err != nil {
			t.Fatal(err)
		}
		after := versions()
		if res.Hours != 2 {
			t.Errorf("backfilled %d hours, want 2", res.Hours)
		}
		for h, bump := range map[int]int64{0: 1, 1: 1, 3: 0} {
			k := views.HourKey(rcHour(h))
			if after[k].Version != before[k].Version+bump {
				t.Errorf("hour %d version %d → %d, want +%d", h, before[k].Version, after[k].Version, bump)
			}
		}
	})
}
