package raw

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

func TestPlanHourDropsOverlaps(t *testing.T) {
	hour := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	key := func(p int32, first, last int64) string {
		return lake.RawFile{Schema: "orders", Hour: hour, Topic: "orders", Partition: p, First: first, Last: last}.Key()
	}
	tests := []struct {
		name      string
		files     []string
		plan      map[string][]OffsetRange // key → dropped ranges
		redundant []string
	}{
		{"disjoint files keep everything",
			[]string{key(0, 0, 9), key(0, 20, 29), key(1, 0, 9)},
			map[string][]OffsetRange{key(0, 0, 9): nil, key(0, 20, 29): nil, key(1, 0, 9): nil}, nil},
		{"a crash re-read overlaps the tail",
			[]string{key(0, 0, 9), key(0, 5, 14)},
			map[string][]OffsetRange{key(0, 0, 9): nil, key(0, 5, 14): {{5, 9}}}, nil},
		{"a merged file makes the files it replaced redundant",
			[]string{key(0, 0, 9), key(0, 0, 29), key(0, 20, 29)},
			map[string][]OffsetRange{key(0, 0, 29): nil}, []string{key(0, 0, 9), key(0, 20, 29)}},
		{"a wide re-read covers a later small file",
			[]string{key(0, 0, 9), key(0, 12, 19), key(0, 5, 30)},
			map[string][]OffsetRange{key(0, 0, 9): nil, key(0, 5, 30): {{5, 9}}}, []string{key(0, 12, 19)}},
		{"overlap across two earlier files",
			[]string{key(0, 0, 9), key(0, 12, 19), key(0, 15, 30), key(0, 16, 16)},
			map[string][]OffsetRange{key(0, 0, 9): nil, key(0, 12, 19): nil, key(0, 15, 30): {{15, 19}}}, []string{key(0, 16, 16)}},
		{"partitions do not overlap each other",
			[]string{key(0, 0, 9), key(1, 0, 9)},
			map[string][]OffsetRange{key(0, 0, 9): nil, key(1, 0, 9): nil}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := lake.NewDirStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.files {
				if err := lake.PutBytes(context.Background(), store, k, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			plan, redundant, err := PlanHour(context.Background(), store, "orders", hour)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]OffsetRange{}
			for _, f := range plan {
				got[f.Key] = f.Drop
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.plan) {
				t.Errorf("plan = %v, want %v", got, tt.plan)
			}
			var red []string
			for _, f := range redundant {
				red = append(red, f.Key)
			}
			slices.Sort(red)
			if !slices.Equal(red, tt.redundant) {
				t.Errorf("redundant = %v, want %v", red, tt.redundant)
			}
		})
	}
}
