package views

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// An overflowed sum travels through a view file as a null value with its
// {metric}_overflow flag set, and reads back as Row.Overflow; rows without
// one have no Overflow at all; a file without the column (written before
// it existed) reads as not overflowed.
func TestOverflowRoundTrip(t *testing.T) {
	s, err := schemas.NewSchema("e", "e", "ts", "", []schemas.Field{{Name: "ts", Type: schemas.Timestamp}, {Name: "x", Type: schemas.Int64}})
	if err != nil {
		t.Fatal(err)
	}
	view := func(agg schemas.Agg) *schemas.View {
		return &schemas.View{Name: "v", Schema: s, Granularity: time.Minute,
			Metrics: []schemas.Metric{{Name: "n", Agg: schemas.Count}, {Name: "total", Agg: agg, Field: "x"}}}
	}
	t0 := hour(0).UnixMicro()
	cols := &Columns{T: []int64{t0, t0 + 60e6, t0 + 120e6}, Metrics: []MetricColumn{
		{Ints: []int64{2, 1, 1}},
		{Ints: []int64{0, 7, 0}, Valid: []bool{false, true, false}, Overflow: []bool{true, false, false}},
	}}
	b, err := Encode(view(schemas.Sum), cols, 1)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Decode(context.Background(), view(schemas.Sum), b)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		row      int
		overflow []bool
		value    schemas.Value
	}{
		{0, []bool{false, true}, schemas.Value{Null: true}},
		{1, nil, schemas.Value{Int: 7}},
		{2, nil, schemas.Value{Null: true}}, // no values: null, not overflowed
	}
	for _, tc := range tests {
		r := rows[tc.row]
		if len(r.Overflow) != len(tc.overflow) || (tc.overflow != nil && r.Overflow[1] != tc.overflow[1]) || r.Values[1] != tc.value {
			t.Errorf("row %d: overflow %v value %+v, want %v %+v", tc.row, r.Overflow, r.Values[1], tc.overflow, tc.value)
		}
	}
	// A file whose metric had no overflow column (a max then, a sum now):
	// nothing reads as overflowed.
	old, err := Encode(view(schemas.Max), &Columns{T: []int64{t0}, Metrics: []MetricColumn{{Ints: []int64{1}}, {Ints: []int64{5}, Valid: []bool{true}}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rows, err = Decode(context.Background(), view(schemas.Sum), old)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Overflow != nil || rows[0].Values[1] != (schemas.Value{Int: 5}) {
		t.Errorf("a file without the column reads %+v", rows)
	}
}

// A sealed hour computed under another definition is the one hour readers
// refuse; any other hour is served as before.
func TestServable(t *testing.T) {
	st := &State{Fingerprint: "new"}
	tests := []struct {
		h    HourState
		want bool
	}{
		{HourState{Fingerprint: "new", Sealed: true}, true},
		{HourState{Fingerprint: "", Sealed: true}, true}, // recorded before fingerprints were: the state's
		{HourState{Fingerprint: "old"}, true},            // stale, recomputed by the running backfill
		{HourState{Fingerprint: "old", Sealed: true}, false},
	}
	for _, tc := range tests {
		if got := st.Servable(tc.h); got != tc.want {
			t.Errorf("Servable(%+v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}
