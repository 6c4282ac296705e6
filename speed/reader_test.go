package speed

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// Whole is what the serving layer asks before it trusts an empty bucket:
// the offsets hash must exist, carry the view's fingerprint, and have no
// partition being rebuilt. HotRange is the other question it asks (for
// GET /v1/views).
func TestWholeAndHotRange(t *testing.T) {
	mr, rdb := newMiniRedis(t)
	ctx := context.Background()
	s := testSchema(t, "orders")
	v := testView(viewName("whole"), s, time.Minute, []string{"tenant"})
	b := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := NewReader(ReaderConfig{Redis: rdb, Now: func() time.Time { return b.Add(30 * time.Minute) }})
	fp := v.Fingerprint()
	key := Shards(v)[0].OffsetsKey()
	tests := []struct {
		name  string
		hash  map[string]string
		whole bool
	}{
		{"no hash: Redis lost it or no worker ran", nil, false},
		{"offsets without a fingerprint", map[string]string{"orders:0": "10"}, true},
		{"offsets and this fingerprint", map[string]string{"orders:0": "10", "orders:3": "0", "_fp": fp}, true},
		{"another definition's fingerprint", map[string]string{"orders:0": "10", "_fp": "other"}, false},
		{"a partition being rebuilt", map[string]string{"orders:0": "10", "orders:1": "-1", "_fp": fp}, false},
		{"a fingerprint and no offsets yet", map[string]string{"_fp": fp}, false},
	}
	for _, tt := range tests {
		mr.Del(key)
		for k, val := range tt.hash {
			mr.HSet(key, k, val)
		}
		whole, err := r.Whole(ctx, v)
		if err != nil || whole != tt.whole {
			t.Errorf("%s: Whole = %v, %v; want %v", tt.name, whole, err, tt.whole)
		}
	}

	if _, _, ok, err := r.HotRange(ctx, v); ok || err != nil {
		t.Errorf("HotRange of an empty index: ok=%v err=%v", ok, err)
	}
	for _, m := range []time.Duration{7, 0, 3} {
		bucket := b.Add(m * time.Minute).UnixMicro()
		mr.HSet(Shard{View: v.Name, Index: 0, Count: 1}.VersionKey(b.UnixMicro()), strconv.FormatInt(bucket, 10), "1")
	}
	first, end, ok, err := r.HotRange(ctx, v)
	if err != nil || !ok || !first.Equal(b) || !end.Equal(b.Add(8*time.Minute)) {
		t.Errorf("HotRange = %s, %s, %v, %v; want %s and the end of the 10:07 bucket", first, end, ok, err, b)
	}
}

// A where on the first dimension reads one run of a bucket's sorted cells;
// the run must hold exactly the cells a scan with match keeps, whatever
// the values share as text ("a" is a prefix of "ab"; "!" is null; escaped
// values; one dimension or several).
func TestShapeCellRange(t *testing.T) {
	s := testSchema(t, "orders")
	two := testView(viewName("range2"), s, time.Minute, []string{"tenant", "country"})
	one := testView(viewName("range1"), s, time.Minute, []string{"tenant"})
	tuples := func(v *schemas.View, firsts []string) []string {
		var out []string
		for _, a := range firsts {
			if len(v.Dimensions) == 1 {
				out = append(out, a)
				continue
			}
			for _, b := range []string{"!", "de", "fr", "a%2Cb"} {
				out = append(out, a+","+b)
			}
		}
		slices.Sort(out)
		return out
	}
	firsts := []string{"a", "ab", "a-", "a.b", "b", "!", "a+b", "a%2C", "tenant-1", "tenant-10", "tenant-1a", ""}
	tests := []struct {
		name  string
		view  *schemas.View
		where map[string]schemas.Value
		want  int // cells in the run
	}{
		{"no where: every cell", two, nil, 12 * 4},
		{"first dimension, a prefix of others", two, map[string]schemas.Value{"tenant": {Str: "a"}}, 4},
		{"first dimension tenant-1, not tenant-10", two, map[string]schemas.Value{"tenant": {Str: "tenant-1"}}, 4},
		{"first dimension null", two, map[string]schemas.Value{"tenant": {Null: true}}, 4},
		{"first dimension escaped", two, map[string]schemas.Value{"tenant": {Str: "a b"}}, 4},
		{"first dimension empty", two, map[string]schemas.Value{"tenant": {Str: ""}}, 4},
		{"a value no cell has", two, map[string]schemas.Value{"tenant": {Str: "zz"}}, 0},
		{"second dimension only: every cell", two, map[string]schemas.Value{"country": {Str: "fr"}}, 12 * 4},
		{"both dimensions", two, map[string]schemas.Value{"tenant": {Str: "ab"}, "country": {Str: "a,b"}}, 4},
		{"one dimension", one, map[string]schemas.Value{"tenant": {Str: "a"}}, 1},
		{"one dimension, escaped", one, map[string]schemas.Value{"tenant": {Str: "a,"}}, 1},
	}
	for _, tt := range tests {
		sh, err := resolveShape(tt.view, Query{View: tt.view, Where: tt.where})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		dims := tuples(tt.view, firsts)
		lo, hi := sh.cellRange(dims)
		if hi-lo != tt.want {
			t.Errorf("%s: run [%d, %d) of %d cells, want %d cells", tt.name, lo, hi, len(dims), tt.want)
		}
		for i, d := range dims {
			parts, err := decodeDims(d, len(tt.view.Dimensions))
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if in := i >= lo && i < hi; sh.match(parts) && !in {
				t.Errorf("%s: cell %q matches where but is outside the run [%d, %d)", tt.name, d, lo, hi)
			}
		}
	}
}
