package speed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

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

// loadOffsets returns the next offset to apply per view for one partition.
// A view with no stored offset starts at now - hot_retention; the start is
// stored with HSETNX so that concurrent workers agree on it.
func loadOffsets(ctx context.Context, rdb redis.UniversalClient, brokers []string, views []*schemas.View, topic string, partition int, now time.Time) ([]int64, error) {
	field := offsetField(topic, partition)
	next := make([]int64, len(views))
	for i, v := range views {
		// Workers running an older definition of the view stop feeding it
		// once a newer one has reset it.
		if fp, err := rdb.HGet(ctx, OffsetsKey(v.Name), fingerprintField).Result(); err == nil && fp != v.Fingerprint() {
			return nil, fmt.Errorf("%w: view=%s", errFingerprint, v.Name)
		}
		s, err := rdb.HGet(ctx, OffsetsKey(v.Name), field).Result()
		if errors.Is(err, redis.Nil) {
			off, err := offsetAt(ctx, brokers, topic, partition, now.Add(-v.HotRetention))
			if err != nil {
				return nil, fmt.Errorf("speed: init offset view=%s: %w", v.Name, err)
			}
			if err := rdb.HSetNX(ctx, OffsetsKey(v.Name), field, off).Err(); err != nil {
				return nil, fmt.Errorf("speed: init offset view=%s %s: %w", v.Name, field, err)
			}
			rdb.PExpire(ctx, OffsetsKey(v.Name), offsetsTTL(v))
			s, err = rdb.HGet(ctx, OffsetsKey(v.Name), field).Result()
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

// ResetConfig says which view to reset and where its Kafka topic is.
type ResetConfig struct {
	Brokers []string
	Redis   redis.UniversalClient
	View    *schemas.View
	Now     time.Time // default time.Now()
}

// Reset clears a view's hot state and points its offsets at now -
// hot_retention, so that workers replay Kafka from there (DESIGN §2: `speed
// rebuild`). Running workers see the offsets move and re-seek. Order: mark
// every partition "rebuilding" and drop the fingerprint (a worker that
// starts meanwhile waits, or redoes the reset if this one dies), delete the
// cells found through the index, then set the offsets and the fingerprint
// in one HSET. It returns the offsets set, per partition.
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
	rdb := cfg.Redis
	okey := OffsetsKey(v.Name)
	marks := make([]any, 0, 2*n)
	for p := range n {
		marks = append(marks, offsetField(topic, p), rebuilding)
	}
	if _, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HDel(ctx, okey, fingerprintField)
		tx.HSet(ctx, okey, marks...)
		tx.PExpire(ctx, okey, offsetsTTL(v))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("speed: reset view=%s: mark offsets: %w", v.Name, err)
	}
	if err := deleteCells(ctx, rdb, v); err != nil {
		return nil, err
	}
	offs := make(map[int]int64, n)
	set := make([]any, 0, 2*n+2)
	for p := range n {
		off, err := offsetAt(ctx, cfg.Brokers, topic, p, now.Add(-v.HotRetention))
		if err != nil {
			return nil, fmt.Errorf("speed: reset view=%s: %w", v.Name, err)
		}
		offs[p] = off
		set = append(set, offsetField(topic, p), off)
	}
	set = append(set, fingerprintField, v.Fingerprint())
	if _, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HSet(ctx, okey, set...)
		tx.PExpire(ctx, okey, offsetsTTL(v))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("speed: reset view=%s: set offsets: %w", v.Name, err)
	}
	return offs, nil
}

// deleteCells deletes every cell key of a view listed in its index, then the
// index.
func deleteCells(ctx context.Context, rdb redis.UniversalClient, v *schemas.View) error {
	var uniq []string
	for _, m := range v.Metrics {
		if m.Agg == schemas.Uniq {
			uniq = append(uniq, m.Name)
		}
	}
	idx := IndexKey(v.Name)
	const page = 1000
	for {
		members, err := rdb.ZRange(ctx, idx, 0, page-1).Result()
		if err != nil {
			return fmt.Errorf("speed: reset view=%s: read index: %w", v.Name, err)
		}
		if len(members) == 0 {
			break
		}
		keys := make([]string, 0, len(members)*(1+len(uniq)))
		zm := make([]any, len(members))
		for i, m := range members {
			keys = append(keys, BucketKey(v.Name, m))
			for _, u := range uniq {
				keys = append(keys, uniqKey(v.Name, m, u))
			}
			zm[i] = m
		}
		if _, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
			tx.Del(ctx, keys...)
			tx.ZRem(ctx, idx, zm...)
			return nil
		}); err != nil {
			return fmt.Errorf("speed: reset view=%s: delete cells: %w", v.Name, err)
		}
	}
	if err := rdb.Del(ctx, idx).Err(); err != nil {
		return fmt.Errorf("speed: reset view=%s: delete index: %w", v.Name, err)
	}
	return nil
}

// checkFingerprint resets a view whose stored windows were computed with
// another definition (DESIGN §1: a changed fingerprint rebuilds speed). A
// view never seen before only gets its fingerprint recorded.
func checkFingerprint(ctx context.Context, cfg ResetConfig) (reset bool, err error) {
	v := cfg.View
	okey := OffsetsKey(v.Name)
	fp, err := cfg.Redis.HGet(ctx, okey, fingerprintField).Result()
	switch {
	case err == nil && fp == v.Fingerprint():
		return false, nil
	case err == nil || errors.Is(err, redis.Nil):
		n, err := cfg.Redis.Exists(ctx, okey, IndexKey(v.Name)).Result()
		if err != nil {
			return false, fmt.Errorf("speed: check fingerprint view=%s: %w", v.Name, err)
		}
		if n == 0 {
			if err := cfg.Redis.HSet(ctx, okey, fingerprintField, v.Fingerprint()).Err(); err != nil {
				return false, fmt.Errorf("speed: record fingerprint view=%s: %w", v.Name, err)
			}
			cfg.Redis.PExpire(ctx, okey, offsetsTTL(v))
			return false, nil
		}
		_, err = Reset(ctx, cfg)
		return err == nil, err
	default:
		return false, fmt.Errorf("speed: check fingerprint view=%s: %w", v.Name, err)
	}
}
