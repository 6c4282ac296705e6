package retention

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Retention removes exactly the hour partitions older than their retention
// and before B, and nothing newer (the listing before and after is compared
// key by key). With B later than now − retention, retention decides; with B
// earlier, B holds raw and view hours back (dead letters do not wait for B).
func TestRetentionRemovesExactlyTheExpiredPartitions(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, time.UTC) }
	// Raw retention 10h: now − 10h = 02:30. View retention 5h: 07:30. An
	// object goes when its hour ended at or before its limit.
	tests := []struct {
		name                           string
		boundary                       time.Time
		rawLimit, deadLimit, viewLimit time.Time
	}{
		// raw and dirty: hours ending by min(02:30, B = 04:00) → hours ≤ 01:00.
		// dead letters: hours ending by 02:30 → hours ≤ 01:00.
		// views: hours ending by min(07:30, B) → hours ≤ 03:00.
		{"B lags less than retention", at(4, 0), at(2, 30), at(2, 30), at(4, 0)},
		// raw and dirty: min(02:30, B = 01:00) → hours ≤ 00:00: hours 01:00
		// and 02:00 are past retention but at or after B, and stay.
		// dead letters: still 02:30 → hours ≤ 01:00.
		// views: min(07:30, B) → hours ≤ 00:00.
		{"B earlier than now - retention", at(1, 0), at(1, 0), at(2, 30), at(1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := testenv.S3Lake(t)
			ctx := context.Background()
			orders, err := schemas.NewSchema("orders", "orders", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp}, {Name: "x", Type: schemas.Float64}})
			if err != nil {
				t.Fatal(err)
			}
			orders.Retention = 10 * time.Hour
			revenue := &schemas.View{Name: "revenue", Schema: orders, Granularity: time.Minute, Retention: 5 * time.Hour}

			var all []string
			for h := range 14 {
				hour := now.Truncate(time.Hour).Add(-time.Duration(h) * time.Hour)
				all = append(all,
					lake.RawFile{Schema: "orders", Hour: hour, Topic: "orders", Partition: 0, First: int64(h * 10), Last: int64(h*10 + 9)}.Key(),
					lake.DeadletterKey("orders", hour, "orders", 0, int64(h), int64(h)),
					lake.ViewKey("revenue", hour),
					lake.DirtyKey("orders", hour),
				)
			}
			all = append(all, lake.ViewStateKey("revenue"), lake.CheckpointKey("g", "orders", 0))
			for _, k := range all {
				if err := lake.PutBytes(ctx, store, k, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}

			res, err := Apply(ctx, Config{Store: store, Schemas: []*schemas.Schema{orders},
				Views: []*schemas.View{revenue}, Now: now,
				Boundary: func(ctx context.Context, view string) (time.Time, bool, error) { return tc.boundary, true, nil }})
			if err != nil {
				t.Fatal(err)
			}

			var want []string
			for _, k := range all {
				hour, ok := lake.PartitionHour(k)
				end := hour.Add(time.Hour)
				switch {
				case !ok:
				case strings.HasPrefix(k, "views/") && !end.After(tc.viewLimit):
					continue
				case strings.HasPrefix(k, "deadletter/") && !end.After(tc.deadLimit):
					continue
				case (strings.HasPrefix(k, "raw/") || strings.HasPrefix(k, "_dirty/")) && !end.After(tc.rawLimit):
					continue
				}
				want = append(want, k)
			}
			// The raw hours it deleted are sealed first: every hour
			// before the raw limit's.
			want = append(want, raw.SealKey("orders"))
			slices.Sort(want)
			objs, err := store.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Key)
			}
			if !slices.Equal(got, want) {
				t.Errorf("after retention:\n got %v\nwant %v", got, want)
			}
			seal, _, err := raw.ReadSeal(ctx, store, "orders")
			if err != nil || !seal.Before.Equal(tc.rawLimit.Truncate(time.Hour)) {
				t.Errorf("seal %+v (%v), want every hour before %v sealed", seal, err, tc.rawLimit.Truncate(time.Hour))
			}
			if wantRemoved := len(all) + 1 - len(want); res.Objects != wantRemoved {
				t.Errorf("removed %d objects, want %d", res.Objects, wantRemoved)
			}
		})
	}
}

// Without a boundary, raw hours stay whatever their age: batch may still
// need them. Dead letters still expire.
func TestRetentionKeepsRawWithoutBoundary(t *testing.T) {
	store, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s, _ := schemas.NewSchema("pv", "pv", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp}})
	s.Retention = time.Hour
	v := &schemas.View{Name: "traffic", Schema: s, Granularity: time.Minute, Retention: time.Hour}
	old := now.Add(-5 * time.Hour)
	raw := lake.RawFile{Schema: "pv", Hour: old, Topic: "pv", First: 0, Last: 1}.Key()
	dl := lake.DeadletterKey("pv", old, "pv", 0, 0, 0)
	view := lake.ViewKey("traffic", old)
	for _, k := range []string{raw, dl, view} {
		lake.PutBytes(ctx, store, k, []byte("x"))
	}
	_, err = Apply(ctx, Config{Store: store, Schemas: []*schemas.Schema{s}, Views: []*schemas.View{v}, Now: now,
		Boundary: func(context.Context, string) (time.Time, bool, error) { return time.Time{}, false, nil }})
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := store.List(ctx, "")
	var got []string
	for _, o := range objs {
		got = append(got, o.Key)
	}
	if want := []string{raw, view}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

// deleteFailing refuses every delete: a retention run that crashes after
// its first step.
type deleteFailing struct{ lake.ConditionalStore }

func (deleteFailing) Delete(context.Context, string) error { return errors.New("injected failure") }

// Retention seals an hour before it deletes any of its raw data: a run that
// dies at its first delete leaves the hour sealed with its data whole, never
// partly deleted and unsealed. The seal only moves forward.
func TestRetentionSealsBeforeItDeletes(t *testing.T) {
	ctx := context.Background()
	dir, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)
	s, _ := schemas.NewSchema("orders", "orders", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp}})
	s.Retention = 10 * time.Hour
	v := &schemas.View{Name: "revenue", Schema: s, Granularity: time.Minute}
	old := lake.RawFile{Schema: "orders", Hour: now.Add(-12 * time.Hour).Truncate(time.Hour), Topic: "orders", First: 0, Last: 9}.Key()
	if err := lake.PutBytes(ctx, dir, old, []byte("x")); err != nil {
		t.Fatal(err)
	}
	apply := func(store lake.Store, now time.Time) error {
		_, err := Apply(ctx, Config{Store: store, Schemas: []*schemas.Schema{s}, Views: []*schemas.View{v}, Now: now,
			Boundary: func(context.Context, string) (time.Time, bool, error) { return now, true, nil }})
		return err
	}
	if err := apply(deleteFailing{dir}, now); err == nil {
		t.Fatal("the failing delete was not reported")
	}
	seal, _, err := raw.ReadSeal(ctx, dir, "orders")
	if want := now.Add(-10 * time.Hour).Truncate(time.Hour); err != nil || !seal.Before.Equal(want) {
		t.Fatalf("after a run that deleted nothing: seal %+v (%v), want every hour before %v sealed", seal, err, want)
	}
	if _, err := lake.ReadAll(ctx, dir, old); err != nil {
		t.Fatalf("the raw file went: %v", err)
	}
	// The next run finishes; one with an earlier clock leaves the seal.
	if err := apply(dir, now); err != nil {
		t.Fatal(err)
	}
	if _, err := lake.ReadAll(ctx, dir, old); !errors.Is(err, lake.ErrNotExist) {
		t.Errorf("the raw file is still there: %v", err)
	}
	if err := apply(dir, now.Add(-5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := raw.ReadSeal(ctx, dir, "orders"); !again.Before.Equal(seal.Before) {
		t.Errorf("seal moved from %v to %v", seal.Before, again.Before)
	}
}
