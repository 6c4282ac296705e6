package speed

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The key names of the v2 contract (SPEED.md): one shard keeps the v1 tag.
func TestShardKeys(t *testing.T) {
	v := testView("shop", testSchema(t, "orders"), time.Minute, []string{"tenant"})
	tests := []struct {
		shards, partition int
		tag               string
	}{
		{0, 5, "{shop}"}, {1, 5, "{shop}"}, {3, 0, "{shop:0}"}, {3, 4, "{shop:1}"}, {3, 5, "{shop:2}"}, {64, 63, "{shop:63}"},
	}
	for _, tt := range tests {
		v.Shards = tt.shards
		sh := PartitionShard(v, tt.partition)
		if got := sh.Tag(); got != tt.tag {
			t.Errorf("shards=%d partition %d: tag %s, want %s", tt.shards, tt.partition, got, tt.tag)
		}
		if n := len(Shards(v)); n != max(tt.shards, 1) {
			t.Errorf("shards=%d: Shards gives %d", tt.shards, n)
		}
	}
	sh := Shard{View: "shop", Index: 2, Count: 3}
	const b = int64(1796054460000000) // 2026-11-30 17:01 UTC
	for got, want := range map[string]string{
		sh.BucketKey(b):                     "ll:{shop:2}:m:1796054460000000",
		sh.UniqKey(b, "a,de", "buyers"):     "ll:{shop:2}:u:1796054460000000:a,de:buyers",
		sh.VersionKey(HourOf(b)):            "ll:{shop:2}:v:1796054400000000",
		sh.OffsetsKey():                     "ll:{shop:2}:offsets",
		Shards(v)[0].OffsetsKey():           "ll:{shop:0}:offsets",
		CellField("a,de", "revenue"):        "a,de:revenue",
		NegField("a,de", "revenue"):         "a,de:revenue:n",
		EmptyCellField(""):                  ":_",
		Shard{View: "shop", Count: 1}.Tag(): "{shop}",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if got := (Shard{View: "shop", Count: 1}).OffsetsKey(); got != "ll:{shop}:offsets" {
		t.Errorf("a one-shard view's offsets key moved: %s", got)
	}
}

// FuzzSplitField: every field the writer makes splits back into its parts,
// whatever the dimension values; anything else read from a bucket hash
// splits without panic, and what splits is a field the writer could make.
func FuzzSplitField(f *testing.F) {
	for _, s := range []string{"acme", "", "a,b", "!", "%", "x:y", "{v}", "é %2C"} {
		f.Add(s, "revenue", s+":revenue:n")
	}
	f.Fuzz(func(t *testing.T, dimVal, metric, raw string) {
		if metric == "" || strings.ContainsAny(metric, ":") || metric == "_" {
			metric = "m"
		}
		dims := string(appendEscaped(nil, dimVal)) + "," + nullDim
		for _, tt := range []struct {
			field  string
			metric string
			neg    bool
		}{{CellField(dims, metric), metric, false}, {NegField(dims, metric), metric, true}, {EmptyCellField(dims), "", false}} {
			d, m, neg, ok := SplitField(tt.field)
			if !ok || d != dims || m != tt.metric || neg != tt.neg {
				t.Fatalf("%q: split to %q %q %v %v", tt.field, d, m, neg, ok)
			}
		}
		if d, m, neg, ok := SplitField(raw); ok {
			var back string
			switch {
			case m == "":
				back = EmptyCellField(d)
			case neg:
				back = NegField(d, m)
			default:
				back = CellField(d, m)
			}
			if back != raw {
				t.Fatalf("%q splits to %q %q %v, which makes %q", raw, d, m, neg, back)
			}
		}
	})
}

// Whole answers for every shard: each shard's offsets hash must exist with
// an offset, the fingerprint with the shard count, and no rebuild.
func TestWholeOverShards(t *testing.T) {
	mr, rdb := newMiniRedis(t)
	v := testView(viewName("whole3"), testSchema(t, "orders"), time.Minute, nil)
	v.Shards = 3
	fp := shardFingerprint(v)
	ok := func(p string) map[string]string { return map[string]string{"orders:" + p: "10", "_fp": fp} }
	tests := []struct {
		name   string
		hashes []map[string]string
		whole  bool
	}{
		{"every shard current", []map[string]string{ok("0"), ok("1"), ok("2")}, true},
		{"a shard lost", []map[string]string{ok("0"), nil, ok("2")}, false},
		{"a shard without an offset", []map[string]string{ok("0"), {"_fp": fp}, ok("2")}, false},
		{"a shard being rebuilt", []map[string]string{ok("0"), {"orders:1": "-1"}, ok("2")}, false},
		{"a shard of another shard count", []map[string]string{ok("0"), {"orders:1": "3", "_fp": v.Fingerprint()}, ok("2")}, false},
		{"offsets without fingerprints", []map[string]string{{"orders:0": "1"}, {"orders:1": "1"}, {"orders:2": "1"}}, true},
	}
	r := NewReader(ReaderConfig{Redis: rdb})
	for _, tt := range tests {
		for i, sh := range Shards(v) {
			mr.Del(sh.OffsetsKey())
			for k, val := range tt.hashes[i] {
				mr.HSet(sh.OffsetsKey(), k, val)
			}
		}
		whole, err := r.Whole(context.Background(), v)
		if err != nil || whole != tt.whole {
			t.Errorf("%s: Whole = %v, %v; want %v", tt.name, whole, err, tt.whole)
		}
	}
}

// isHotDataKey picks exactly the hot data keys of one view under any of
// its tags: what a rebuild deletes.
func TestIsHotDataKey(t *testing.T) {
	for key, want := range map[string]bool{
		"ll:{shop}:m:1":               true,
		"ll:{shop}:u:1:a:buyers":      true,
		"ll:{shop}:v:0":               true,
		"ll:{shop}:b:1:a":             true, // v1 cell
		"ll:{shop}:idx":               true, // v1 index
		"ll:{shop:7}:m:1":             true,
		"ll:{shop:7}:v:0":             true,
		"ll:{shop}:offsets":           false,
		"ll:{shop:7}:offsets":         false,
		"ll:{shop}:boundary":          false,
		"ll:{shopping}:m:1":           false,
		"ll:{shop:x}:m:1":             false,
		"ll:{shop:7x}:m:1":            false,
		"ll:{other}:m:1":              false,
		"ll:{shop}:mx":                false,
		"ll:{shop:7}:boundary":        false,
		"ll:{shop}:":                  false,
		"ll:{shop:}:m:1":              false,
		"ll:{shop:1}:u:1:a,b:buyers:": true,
	} {
		if got := isHotDataKey("shop", key); got != want {
			t.Errorf("isHotDataKey(shop, %q) = %v, want %v", key, got, want)
		}
	}
}
