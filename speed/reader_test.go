package speed

import (
	"context"
	"maps"
	"testing"
	"time"
)

// Whole is what the serving layer asks before it trusts an empty bucket:
// the offsets hash must exist, carry the view's fingerprint, and have no
// partition being rebuilt. Applied and HotRange read the same keys.
func TestWholeAppliedHotRange(t *testing.T) {
	mr, rdb := newMiniRedis(t)
	ctx := context.Background()
	s := testSchema(t, "orders")
	v := testView(viewName("whole"), s, time.Minute, []string{"tenant"})
	r := NewReader(ReaderConfig{Redis: rdb})
	fp := v.Fingerprint()
	key := OffsetsKey(v.Name)
	tests := []struct {
		name    string
		hash    map[string]string
		whole   bool
		applied map[int]int64
	}{
		{"no hash: Redis lost it or no worker ran", nil, false, map[int]int64{}},
		{"offsets without a fingerprint", map[string]string{"orders:0": "10"}, true, map[int]int64{0: 10}},
		{"offsets and this fingerprint", map[string]string{"orders:0": "10", "orders:3": "0", "_fp": fp}, true, map[int]int64{0: 10, 3: 0}},
		{"another definition's fingerprint", map[string]string{"orders:0": "10", "_fp": "other"}, false, map[int]int64{0: 10}},
		{"a partition being rebuilt", map[string]string{"orders:0": "10", "orders:1": "-1", "_fp": fp}, false, map[int]int64{0: 10, 1: -1}},
		{"a fingerprint and no offsets yet", map[string]string{"_fp": fp}, false, map[int]int64{}},
		{"another topic's offsets", map[string]string{"clicks:0": "10", "orders:1": "4"}, true, map[int]int64{1: 4}},
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
		applied, err := r.Applied(ctx, v)
		if err != nil || !maps.Equal(applied, tt.applied) {
			t.Errorf("%s: Applied = %v, %v; want %v", tt.name, applied, err, tt.applied)
		}
	}
	mr.HSet(key, "orders:0", "x")
	if _, err := r.Applied(ctx, v); err == nil {
		t.Error("Applied of a bad offset: no error")
	}

	if _, _, ok, err := r.HotRange(ctx, v); ok || err != nil {
		t.Errorf("HotRange of an empty index: ok=%v err=%v", ok, err)
	}
	b := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, m := range []time.Duration{7, 0, 3} {
		bucket := b.Add(m * time.Minute).UnixMicro()
		mr.ZAdd(IndexKey(v.Name), float64(bucket), member(bucket, "a"))
	}
	first, end, ok, err := r.HotRange(ctx, v)
	if err != nil || !ok || !first.Equal(b) || !end.Equal(b.Add(8*time.Minute)) {
		t.Errorf("HotRange = %s, %s, %v, %v; want %s and the end of the 10:07 bucket", first, end, ok, err, b)
	}
}
