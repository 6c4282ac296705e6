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
	for s := range viewShards(v) {
		k := shardKeys(v.Name, s, viewShards(v)).offsets()
		w.keys = append(w.keys, k)
		if err := rdb.HSet(context.Background(), k, fingerprintField, v.Fingerprint(), offsetField(v.Schema.Topic, s), 1).Err(); err != nil {
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
	shards := viewShards(w.v)
	type sb struct {
		shard  int
		bucket int64
	}
	touched := map[sb]bool{}
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range lines {
			k := shardKeys(w.v.Name, l.shard, shards)
			metric, _ := strings.CutSuffix(l.field, negSuffix)
			if m, ok := w.v.Metric(metric); ok && m.Agg == schemas.Uniq {
				key := k.uniq(l.bucket, l.dims, metric)
				els := make([]any, len(l.values))
				for i, x := range l.values {
					els[i] = x
				}
				p.PFAdd(ctx, key, els...)
				w.keys = append(w.keys, key)
			} else {
				p.HSet(ctx, k.bucket(l.bucket), l.dims+":"+l.field, l.values[0])
				w.keys = append(w.keys, k.bucket(l.bucket))
			}
			touched[sb{l.shard, l.bucket}] = true
		}
		for x := range touched {
			k := shardKeys(w.v.Name, x.shard, shards)
			p.HIncrBy(ctx, k.versions(schemas.Floor(x.bucket, hourMicros)), strconv.FormatInt(x.bucket, 10), 1)
			w.keys = append(w.keys, k.versions(schemas.Floor(x.bucket, hourMicros)))
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
		for s := range viewShards(w.v) {
			out = append(out, shardKeys(w.v.Name, s, viewShards(w.v)).uniq(w.bucket(minute), dims, metric))
		}
	}
	return out
}
