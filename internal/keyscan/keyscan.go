// Package keyscan walks the Redis keys matching a pattern, in pages (SCAN,
// never KEYS), on a single Redis or on every master of a Redis Cluster:
// a cluster client's SCAN sees one node's keys only. The speed layer's
// rebuild finds a view's keys with it (DESIGN §3: every shard's hash tag),
// and the tests and benchmarks clean up and measure with it.
package keyscan

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// PageSize is the COUNT hint of each SCAN.
const PageSize = 1000

// Scan calls fn with each page of the keys matching pattern and the node
// holding them (a master's client on a cluster, where the page's keys may
// span slots, so commands over several of them go to node one key at a
// time). On a cluster fn runs for several masters at once.
func Scan(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func(ctx context.Context, node redis.Cmdable, keys []string) error) error {
	scan := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, pattern, PageSize).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := fn(ctx, node, keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, rdb)
}

// Delete deletes the keys matching pattern, page by page, one DEL per key
// pipelined (a page's keys may span slots).
func Delete(ctx context.Context, rdb redis.UniversalClient, pattern string) error {
	return Scan(ctx, rdb, pattern, func(ctx context.Context, node redis.Cmdable, keys []string) error {
		_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, k)
			}
			return nil
		})
		return err
	})
}
