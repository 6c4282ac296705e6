package speed

import (
	"context"
	"strconv"
	"testing"
	"time"
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
