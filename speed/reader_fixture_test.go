package speed

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// contractWriter puts hot data into Redis exactly as the v2 key layout
// contract says a writer leaves it (SPEED.md; the package doc, "Redis
// keys"), so the read path is tested against the contract, not against
// one writer. A flush writes its lines and bumps the version of every
// (shard, bucket) it touched once, as the flush script does.
type contractWriter struct {
	t    testing.TB
	rdb  redis.UniversalClient
	v    *schemas.View
	base time.Time // minute 0
	now  time.Time // the readers' clock
	keys []string  // written, for cleanup
}

// fixtureLine is one field of one cell: "<shard> <minute> <dims> <field> <values...>".
type fixtureLine struct {
	shard  int
	bucket int64
	dims   string
	field  string
	values []string
}

func newContractWriter(t testing.TB, rdb redis.UniversalClient, v *schemas.View, base, now time.Time) *contractWriter {
	w := &contractWriter{t: t, rdb: rdb, v: v, base: base, now: now}
	// Every shard's offsets: a worker with this definition keeps it.
	for _, sh := range Shards(v) {
		k := sh.OffsetsKey()
		w.keys = append(w.keys, k)
		if err := rdb.HSet(context.Background(), k, fingerprintField, shardFingerprint(v), offsetField(v.Schema.Topic, sh.Index), 1).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { rdb.Del(context.Background(), w.keys...) })
	return w
}

// bucket is the start of a fixture minute: a number, or "expired".
func (w *contractWriter) bucket(minute string) int64 {
	g := w.v.Granularity
	if minute == "expired" {
		return schemas.FloorTime(w.now.Add(-w.v.HotRetention-2*g), g).UnixMicro()
	}
	m, err := strconv.Atoi(minute)
	if err != nil {
		w.t.Fatalf("fixture: bad minute %q", minute)
	}
	return w.base.Add(time.Duration(m) * g).UnixMicro()
}

// load reads a fixture file into lines.
func (w *contractWriter) load(path string) []fixtureLine {
	f, err := os.Open(path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	var out []fixtureLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) < 5 {
			w.t.Fatalf("fixture: short line %q", line)
		}
		shard, err := strconv.Atoi(fs[0])
		if err != nil {
			w.t.Fatalf("fixture: bad shard in %q", line)
		}
		out = append(out, fixtureLine{shard: shard, bucket: w.bucket(fs[1]), dims: fs[2], field: fs[3], values: fs[4:]})
	}
	if err := sc.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// flush writes the lines as one flush per shard would.
func (w *contractWriter) flush(lines []fixtureLine) {
	w.t.Helper()
	ctx := context.Background()
	shards := ShardCount(w.v)
	type sb struct {
		shard  int
		bucket int64
	}
	touched := map[sb]bool{}
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range lines {
			k := Shard{View: w.v.Name, Index: l.shard, Count: shards}
			metric, _ := strings.CutSuffix(l.field, negFieldSuffix)
			if m, ok := w.v.Metric(metric); ok && m.Agg == schemas.Uniq {
				key := k.UniqKey(l.bucket, l.dims, metric)
				els := make([]any, len(l.values))
				for i, x := range l.values {
					els[i] = x
				}
				p.PFAdd(ctx, key, els...)
				w.keys = append(w.keys, key)
			} else {
				p.HSet(ctx, k.BucketKey(l.bucket), l.dims+":"+l.field, l.values[0])
				w.keys = append(w.keys, k.BucketKey(l.bucket))
			}
			touched[sb{l.shard, l.bucket}] = true
		}
		for x := range touched {
			k := Shard{View: w.v.Name, Index: x.shard, Count: shards}
			p.HIncrBy(ctx, k.VersionKey(schemas.Floor(x.bucket, microsPerHour)), strconv.FormatInt(x.bucket, 10), 1)
			w.keys = append(w.keys, k.VersionKey(schemas.Floor(x.bucket, microsPerHour)))
		}
		return nil
	})
	if err != nil {
		w.t.Fatalf("fixture flush: %v", err)
	}
}

// uniqKeys are the HyperLogLog keys of a uniq metric of the given cells in
// every shard ("<minute> <dims>" pairs), for PFCOUNT.
func (w *contractWriter) uniqKeys(metric string, cells ...string) []string {
	var out []string
	for _, c := range cells {
		minute, dims, _ := strings.Cut(c, " ")
		for _, sh := range Shards(w.v) {
			out = append(out, sh.UniqKey(w.bucket(minute), dims, metric))
		}
	}
	return out
}
