// Package stack is the local stack (DESIGN §6) as the benchmarks use it:
// its endpoints (env-overridable like the product's), fresh names for what a
// run creates, and the removal of it afterwards, so repeated runs neither
// collide with other users of the stack nor fill it.
package stack

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/keyscan"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Brokers are the Kafka brokers (LAMBDALAKE_KAFKA_BROKERS).
func Brokers() []string {
	return strings.Split(env("LAMBDALAKE_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
}

// RedisAddr is Redis' address (LAMBDALAKE_REDIS_ADDR).
func RedisAddr() string { return env("LAMBDALAKE_REDIS_ADDR", "127.0.0.1:6379") }

// S3Endpoint is LocalStack's S3 endpoint (LAMBDALAKE_S3_ENDPOINT).
func S3Endpoint() string { return env("LAMBDALAKE_S3_ENDPOINT", "http://127.0.0.1:4566") }

// Bucket is the bucket `make up` creates.
const Bucket = "lambdalake"

// S3Config is how the benchmarks reach LocalStack.
func S3Config() lake.S3Config {
	return lake.S3Config{Endpoint: S3Endpoint(), Region: "us-east-1", PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test", MaxAttempts: 5}
}

// Suffix is a short name part unique to this run.
func Suffix() string { return strconv.FormatInt(time.Now().UnixNano()%1e12, 36) }

// RedisClusterAddrs are the seeds of the stack's Redis Cluster
// (LAMBDALAKE_REDIS_CLUSTER_ADDRS, as the tests read them).
func RedisClusterAddrs() []string {
	return strings.Split(env("LAMBDALAKE_REDIS_CLUSTER_ADDRS", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"), ",")
}

// RedisModeEnv selects the Redis set-up Redis returns: "single" (the
// default) or "cluster". An environment variable, so that a bench's child
// processes use the set-up their parent chose.
const RedisModeEnv = "LAMBDALAKE_BENCH_REDIS"

// ClusterMode says RedisModeEnv chose the cluster.
func ClusterMode() bool { return os.Getenv(RedisModeEnv) == "cluster" }

// Redis is a client for the stack's Redis: the single Redis, or the
// cluster when RedisModeEnv says so.
func Redis() redis.UniversalClient {
	if ClusterMode() {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: RedisClusterAddrs()})
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{RedisAddr()}})
}

// RedisViewSpread counts a view's keys on each node (address → keys):
// how its shards spread over a cluster's masters.
func RedisViewSpread(ctx context.Context, rdb redis.UniversalClient, view string) (map[string]int, error) {
	out := map[string]int{}
	var mu sync.Mutex
	for _, pattern := range redisViewPatterns(view) {
		err := keyscan.Scan(ctx, rdb, pattern, func(_ context.Context, node redis.Cmdable, keys []string) error {
			mu.Lock()
			defer mu.Unlock()
			out[node.(*redis.Client).Options().Addr] += len(keys)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteTopics deletes topics a run created; a failure is logged, not fatal.
func DeleteTopics(brokers []string, topics ...string) {
	for _, t := range topics {
		if err := stream.DeleteTopic(context.Background(), brokers, t); err != nil {
			log.Printf("cleanup: %v", err)
		}
	}
}

// DeleteRedisView deletes every key of a view (its hash tag, DESIGN §3),
// in pages, never the whole database.
func DeleteRedisView(ctx context.Context, rdb redis.UniversalClient, view string) {
	for _, pattern := range redisViewPatterns(view) {
		DeleteRedisKeys(ctx, rdb, pattern)
	}
}

// RedisViewMemory sums MEMORY USAGE (exact: SAMPLES 0) over every key of a
// view, whatever its shard tags ({view} or {view:N}), boundary included.
func RedisViewMemory(ctx context.Context, rdb redis.UniversalClient, view string) (keys int, bytes int64, err error) {
	var mu sync.Mutex
	for _, pattern := range redisViewPatterns(view) {
		err = keyscan.Scan(ctx, rdb, pattern, func(ctx context.Context, node redis.Cmdable, page []string) error {
			for _, k := range page {
				n, err := node.MemoryUsage(ctx, k, 0).Result()
				if err != nil {
					return fmt.Errorf("memory usage of %s: %w", k, err)
				}
				mu.Lock()
				keys++
				bytes += n
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return keys, bytes, fmt.Errorf("scan %s: %w", pattern, err)
		}
	}
	return keys, bytes, nil
}

// redisViewPatterns match the keys of a view with one shard ({view}) and
// with several ({view:N}), and no other view's.
func redisViewPatterns(view string) []string {
	return []string{"ll:{" + view + "}*", "ll:{" + view + ":*"}
}

// DeleteRedisKeys deletes the keys matching pattern, which must name
// something unique to the run (a suffix), in pages.
func DeleteRedisKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) {
	if err := keyscan.Delete(ctx, rdb, pattern); err != nil {
		log.Printf("cleanup: delete %s: %v", pattern, err)
	}
}

// CleanLake deletes every object under a store's prefix: LocalStack keeps
// objects in memory.
func CleanLake(store lake.Store) {
	ctx := context.Background()
	objs, err := store.List(ctx, "")
	if err != nil {
		log.Printf("cleanup: list lake: %v", err)
		return
	}
	for _, o := range objs {
		store.Delete(ctx, o.Key)
	}
}
