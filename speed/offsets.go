package speed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/keyscan"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/schemas"
)

// rebuilding is the stored offset while a rebuild of the view is under way:
// workers wait until the rebuild sets real offsets.
const rebuilding = "-1"

var (
	errRebuilding  = errors.New("speed: view is being rebuilt")
	errFingerprint = errors.New("speed: the view's windows in Redis were built with another definition (another config version is running)")
)

// OffsetAt returns the first offset of a partition whose record timestamp is
// at or after t (the end of the partition when there is none).
func OffsetAt(ctx context.Context, brokers []string, topic string, partition int, t time.Time) (int64, error) {
	off, err := offsetAt(ctx, brokers, topic, partition, t)
	if err != nil {
		return 0, fmt.Errorf("speed: %w", err)
	}
	return off, nil
}

func offsetAt(ctx context.Context, brokers []string, topic string, partition int, t time.Time) (int64, error) {
	var last error
	for _, b := range brokers {
		conn, err := kafka.DialLeader(ctx, "tcp", b, topic, partition)
		if err != nil {
			last = err
			continue
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		} else {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
		}
		// The end is read first: if no record is at or after t, every
		// record below this end is older than t. Reading it afterwards
		// would skip records written in between.
		end, err := conn.ReadLastOffset()
		if err != nil {
			return 0, fmt.Errorf("end offset of %s/%d: %w", topic, partition, err)
		}
		off, err := conn.ReadOffset(t)
		if err != nil {
			return 0, fmt.Errorf("offset of %s/%d at %s: %w", topic, partition, t.Format(time.RFC3339), err)
		}
		if off < 0 {
			off = end
		}
		return off, nil
	}
	return 0, fmt.Errorf("offset of %s/%d: no broker: %w", topic, partition, last)
}

// loadOffsets returns the next offset to apply per view for one partition,
// from each view's shard holding the partition. A view with no stored
// offset starts at now - hot_retention; the start is stored with HSETNX so
// that concurrent workers agree on it.
func loadOffsets(ctx context.Context, rdb redis.UniversalClient, brokers []string, views []*schemas.View, topic string, partition int, now time.Time) ([]int64, error) {
	field := offsetField(topic, partition)
	next := make([]int64, len(views))
	for i, v := range views {
		okey := PartitionShard(v, partition).OffsetsKey()
		// Workers running an older definition of the view (or another
		// shard count) stop feeding it once a newer one has reset it.
		if fp, err := rdb.HGet(ctx, okey, fingerprintField).Result(); err == nil && fp != shardFingerprint(v) {
			return nil, fmt.Errorf("%w: view=%s", errFingerprint, v.Name)
		}
		s, err := rdb.HGet(ctx, okey, field).Result()
		if errors.Is(err, redis.Nil) {
			off, err := offsetAt(ctx, brokers, topic, partition, now.Add(-v.HotRetention))
			if err != nil {
				return nil, fmt.Errorf("speed: init offset view=%s: %w", v.Name, err)
			}
			if err := rdb.HSetNX(ctx, okey, field, off).Err(); err != nil {
				return nil, fmt.Errorf("speed: init offset view=%s %s: %w", v.Name, field, err)
			}
			rdb.PExpire(ctx, okey, offsetsTTL(v))
			s, err = rdb.HGet(ctx, okey, field).Result()
			if err != nil {
				return nil, fmt.Errorf("speed: read offset view=%s %s: %w", v.Name, field, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("speed: read offset view=%s %s: %w", v.Name, field, err)
		}
		if s == rebuilding {
			return nil, fmt.Errorf("%w: view=%s", errRebuilding, v.Name)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("speed: view=%s %s: bad stored offset %q", v.Name, field, s)
		}
		next[i] = n
	}
	return next, nil
}

// StoredOffsets returns the next offset the speed layer will apply for
// each partition of the view's topic, read from every shard's offsets
// hash; -1 while a rebuild runs. A partition never applied is absent.
func StoredOffsets(ctx context.Context, rdb redis.UniversalClient, v *schemas.View) (map[int]int64, error) {
	hashes, err := readOffsets(ctx, rdb, Shards(v))
	if err != nil {
		return nil, fmt.Errorf("speed: stored offsets view=%s: %w", v.Name, err)
	}
	out := map[int]int64{}
	prefix := v.Schema.Topic + ":"
	for _, h := range hashes {
		for f, val := range h {
			p, ok := strings.CutPrefix(f, prefix)
			if !ok {
				continue
			}
			part, err1 := strconv.Atoi(p)
			off, err2 := strconv.ParseInt(val, 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("speed: stored offsets view=%s: bad field %s=%q", v.Name, f, val)
			}
			out[part] = off
		}
	}
	return out, nil
}

// readOffsets reads the offsets hashes of some shards (in one round trip
// per node); a missing hash reads as an empty map.
func readOffsets(ctx context.Context, rdb redis.UniversalClient, shards []Shard) ([]map[string]string, error) {
	cmds := make([]*redis.MapStringStringCmd, len(shards))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sh := range shards {
			cmds[i] = p.HGetAll(ctx, sh.OffsetsKey())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(shards))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// shardsWhole is Reader.Whole's rule over the view's shards' offsets
// hashes: every shard's hash holds at least one partition's offset, none
// is being rebuilt, and each carries the view's fingerprint with its shard
// count (or none, as written before fingerprints were recorded). A worker
// refuses to start with more shards than partitions, so every shard has
// partitions that load offsets into it.
func shardsWhole(v *schemas.View, hashes []map[string]string) bool {
	if len(hashes) != ShardCount(v) {
		return false
	}
	want := shardFingerprint(v)
	for _, m := range hashes {
		n := 0
		for k, val := range m {
			if k == fingerprintField {
				if val != want {
					return false
				}
				continue
			}
			if val == rebuilding {
				return false
			}
			n++
		}
		if n == 0 {
			return false
		}
	}
	return true
}

// ResetConfig says which view to reset and where its Kafka topic is.
type ResetConfig struct {
	Brokers []string
	Redis   redis.UniversalClient
	View    *schemas.View
	Now     time.Time // default time.Now()
}

// allTags lists a shard of every hash tag a view's keys may carry, whatever
// its shard count was: {view} and {view:0} .. {view:MaxShards-1}.
func allTags(view string) []Shard {
	out := []Shard{{View: view, Index: 0, Count: 1}}
	for i := range MaxShards {
		out = append(out, Shard{View: view, Index: i, Count: MaxShards})
	}
	return out
}

// Reset clears a view's hot state under every hash tag it may have been
// written with (the current shard count and any earlier one) and points
// the current shards' offsets at now - hot_retention, so that workers
// replay Kafka from there (DESIGN §2: `speed rebuild`). Running workers see
// the offsets move and re-seek. Order: mark every partition "rebuilding"
// and drop the fingerprints (a worker that starts meanwhile waits, or
// redoes the reset if this one dies), delete the cells of every tag, then
// set each current shard's offsets and fingerprint in one HSET. Offsets
// hashes of tags the current shard count does not use keep only the new
// fingerprint, so a worker still running with the old count stops feeding
// the view instead of starting it afresh. It returns the offsets set, per
// partition.
func Reset(ctx context.Context, cfg ResetConfig) (map[int]int64, error) {
	v := cfg.View
	now := cfg.Now
	if now.IsZero() {
		now = time.Now()
	}
	topic := v.Schema.Topic
	n, err := stream.PartitionCount(ctx, cfg.Brokers, topic)
	if err != nil {
		return nil, fmt.Errorf("speed: reset view=%s: %w", v.Name, err)
	}
	if err := checkShards(v, n); err != nil {
		return nil, err
	}
	rdb := cfg.Redis
	tags := allTags(v.Name)
	old, err := readOffsets(ctx, rdb, tags)
	if err != nil {
		return nil, fmt.Errorf("speed: reset view=%s: read offsets: %w", v.Name, err)
	}
	current := map[string]bool{}
	for _, sh := range Shards(v) {
		current[sh.Tag()] = true
	}
	// Mark: every partition of the current shards, and every offset of
	// any other tag, "rebuilding"; no fingerprint anywhere.
	marks := map[string][]any{}
	for p := range n {
		sh := PartitionShard(v, p)
		marks[sh.Tag()] = append(marks[sh.Tag()], offsetField(topic, p), rebuilding)
	}
	for i, sh := range tags {
		for f := range old[i] {
			if f != fingerprintField && !current[sh.Tag()] {
				marks[sh.Tag()] = append(marks[sh.Tag()], f, rebuilding)
			}
		}
	}
	for i, sh := range tags {
		m := marks[sh.Tag()]
		if len(m) == 0 && len(old[i]) == 0 {
			continue
		}
		if _, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
			tx.HDel(ctx, sh.OffsetsKey(), fingerprintField)
			if len(m) > 0 {
				tx.HSet(ctx, sh.OffsetsKey(), m...)
			}
			tx.PExpire(ctx, sh.OffsetsKey(), offsetsTTL(v))
			return nil
		}); err != nil {
			return nil, fmt.Errorf("speed: reset view=%s: mark offsets %s: %w", v.Name, sh.Tag(), err)
		}
	}
	if err := deleteHotData(ctx, rdb, v.Name); err != nil {
		return nil, fmt.Errorf("speed: reset view=%s: %w", v.Name, err)
	}
	offs := make(map[int]int64, n)
	set := map[string][]any{}
	for p := range n {
		off, err := offsetAt(ctx, cfg.Brokers, topic, p, now.Add(-v.HotRetention))
		if err != nil {
			return nil, fmt.Errorf("speed: reset view=%s: %w", v.Name, err)
		}
		offs[p] = off
		tag := PartitionShard(v, p).Tag()
		set[tag] = append(set[tag], offsetField(topic, p), off)
	}
	fp := shardFingerprint(v)
	for i, sh := range tags {
		if !current[sh.Tag()] && len(old[i]) == 0 {
			continue
		}
		if _, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
			if !current[sh.Tag()] {
				tx.Del(ctx, sh.OffsetsKey())
			}
			tx.HSet(ctx, sh.OffsetsKey(), append(set[sh.Tag()], fingerprintField, fp)...)
			tx.PExpire(ctx, sh.OffsetsKey(), offsetsTTL(v))
			return nil
		}); err != nil {
			return nil, fmt.Errorf("speed: reset view=%s: set offsets %s: %w", v.Name, sh.Tag(), err)
		}
	}
	return offs, nil
}

// checkShards refuses a shard count above the topic's partitions: a shard
// without a partition would never hold offsets, and Reader.Whole could
// never call the view whole.
func checkShards(v *schemas.View, partitions int) error {
	if n := ShardCount(v); n > partitions {
		return fmt.Errorf("%w: view %s has %d shards but topic %s has %d partitions (views.%s.shards must be at most the partition count)",
			errShards, v.Name, n, v.Schema.Topic, partitions, v.Name)
	}
	return nil
}

var errShards = errors.New("speed: more shards than partitions")

// deleteHotData deletes every key of the view's hot data under any of its
// tags: bucket hashes, HyperLogLogs, version hashes, and the v1 layout's
// cell hashes and index. Offsets hashes and the boundary are left alone.
// The keys are found with SCAN on every master (the layout has no index of
// all keys): a rebuild costs a pass over the keyspace.
func deleteHotData(ctx context.Context, rdb redis.UniversalClient, view string) error {
	var errs []error
	del := func(ctx context.Context, keys []string) {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, pattern := range []string{"ll:{" + view + "}:*", "ll:{" + view + ":*"} {
		err := scanAll(ctx, rdb, pattern, func(ctx context.Context, keys []string) {
			var hot []string
			for _, k := range keys {
				if isHotDataKey(view, k) {
					hot = append(hot, k)
				}
			}
			if len(hot) > 0 {
				del(ctx, hot)
			}
		})
		if err != nil {
			return fmt.Errorf("scan %s: %w", pattern, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete cells: %w", errs[0])
	}
	return nil
}

// isHotDataKey says key is one of the view's hot data keys (v2 m:/u:/v:,
// v1 b:/u:/idx) under {view} or {view:N}.
func isHotDataKey(view, key string) bool {
	rest, ok := strings.CutPrefix(key, "ll:{"+view)
	if !ok {
		return false
	}
	if r, ok := strings.CutPrefix(rest, "}:"); ok {
		rest = r
	} else if r, ok := strings.CutPrefix(rest, ":"); ok {
		i := strings.Index(r, "}:")
		if i <= 0 {
			return false
		}
		if _, err := strconv.Atoi(r[:i]); err != nil {
			return false
		}
		rest = r[i+2:]
	} else {
		return false
	}
	switch {
	case rest == "idx":
		return true
	case len(rest) > 2 && rest[1] == ':':
		return rest[0] == 'm' || rest[0] == 'u' || rest[0] == 'v' || rest[0] == 'b'
	}
	return false
}

// scanAll hands each page of the keys matching pattern, on every master,
// to fn, one call at a time.
func scanAll(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func(context.Context, []string)) error {
	var mu sync.Mutex
	return keyscan.Scan(ctx, rdb, pattern, func(ctx context.Context, _ redis.Cmdable, keys []string) error {
		mu.Lock()
		defer mu.Unlock()
		fn(ctx, keys)
		return nil
	})
}

// checkFingerprint resets a view whose stored windows were computed with
// another definition, another shard count or the v1 layout (DESIGN §1: a
// changed fingerprint rebuilds speed). Every tag the view may have used is
// looked at: a current shard whose offsets hash carries another (or no)
// fingerprint, offsets under a tag the current count does not use, or the
// v1 index, each mean a reset. A view never seen before only gets its
// fingerprint recorded in every shard.
func checkFingerprint(ctx context.Context, cfg ResetConfig) (reset bool, err error) {
	v := cfg.View
	n, err := stream.PartitionCount(ctx, cfg.Brokers, v.Schema.Topic)
	if err != nil {
		return false, fmt.Errorf("speed: check fingerprint view=%s: %w", v.Name, err)
	}
	if err := checkShards(v, n); err != nil {
		return false, err
	}
	tags := allTags(v.Name)
	hashes, err := readOffsets(ctx, cfg.Redis, tags)
	if err != nil {
		return false, fmt.Errorf("speed: check fingerprint view=%s: %w", v.Name, err)
	}
	v1, err := cfg.Redis.Exists(ctx, v1IndexKey(v.Name)).Result()
	if err != nil {
		return false, fmt.Errorf("speed: check fingerprint view=%s: %w", v.Name, err)
	}
	current := map[string]bool{}
	for _, sh := range Shards(v) {
		current[sh.Tag()] = true
	}
	fp := shardFingerprint(v)
	stale := v1 > 0
	var missing []Shard
	for i, sh := range tags {
		h := hashes[i]
		switch {
		case current[sh.Tag()] && len(h) == 0:
			missing = append(missing, sh)
		case current[sh.Tag()] && h[fingerprintField] != fp:
			stale = true
		case !current[sh.Tag()] && hasOffsets(h):
			stale = true // written with another shard count
		}
	}
	if stale {
		_, err = Reset(ctx, cfg)
		return err == nil, err
	}
	for _, sh := range missing {
		if _, err := cfg.Redis.TxPipelined(ctx, func(tx redis.Pipeliner) error {
			tx.HSetNX(ctx, sh.OffsetsKey(), fingerprintField, fp)
			tx.PExpire(ctx, sh.OffsetsKey(), offsetsTTL(v))
			return nil
		}); err != nil {
			return false, fmt.Errorf("speed: record fingerprint view=%s %s: %w", v.Name, sh.Tag(), err)
		}
	}
	return false, nil
}

// hasOffsets says an offsets hash holds any partition's offset (a tag
// another shard count left behind keeps only a fingerprint).
func hasOffsets(h map[string]string) bool {
	for f := range h {
		if f != fingerprintField {
			return true
		}
	}
	return false
}
