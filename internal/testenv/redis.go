package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/keyscan"
)

// The Redis set-ups of the local stack (DESIGN §6): the single Redis and the
// 3-master Redis Cluster `localstack/up` starts. Tests that touch Redis run
// over both, as a table, the way the lake suite runs over both stores:
//
//	for _, rs := range testenv.RedisSetups(t) {
//		t.Run(rs.Name, func(t *testing.T) {
//			rdb := rs.Client(t) // what the product builds from rs.Config(t)
//			...
//		})
//	}
//
// Keys must carry a hash tag per atomic unit (DESIGN §3), or a MULTI/EXEC
// or script over them fails with CROSSSLOT on the cluster only.

// RedisSetup is one Redis set-up of the local stack.
type RedisSetup struct {
	Name  string   // "single" or "cluster"
	Addrs []string // one address (single) or the cluster's seeds
}

// RedisSetups returns the set-ups integration tests run over, "single" and
// "cluster". It skips t under -short; whether a set-up answers is checked
// when a test asks it for a config or a client, so a missing cluster fails
// that sub-test only.
func RedisSetups(t testing.TB) []RedisSetup {
	t.Helper()
	Integration(t)
	return []RedisSetup{
		{Name: "single", Addrs: []string{env("LAMBDALAKE_REDIS_ADDR", "127.0.0.1:6379")}},
		{Name: "cluster", Addrs: clusterSeeds()},
	}
}

func clusterSeeds() []string {
	var seeds []string
	for _, a := range strings.Split(env("LAMBDALAKE_REDIS_CLUSTER_ADDRS", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			seeds = append(seeds, a)
		}
	}
	return seeds
}

// RedisClusterAddrs returns the local stack's Redis Cluster seeds
// (LAMBDALAKE_REDIS_CLUSTER_ADDRS), after checking the cluster is up.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	Integration(t)
	return RedisSetup{Name: "cluster", Addrs: clusterSeeds()}.Config(t).Addrs
}

// Config returns the product's Redis settings for this set-up, after
// checking the set-up answers (a cluster must also report cluster_state:ok);
// if it does not, t fails and says to run `make up`.
func (s RedisSetup) Config(t testing.TB) config.Redis {
	t.Helper()
	Integration(t)
	if len(s.Addrs) == 0 {
		t.Fatalf("Redis set-up %q has no address", s.Name)
	}
	for _, a := range s.Addrs {
		reach(t, "Redis ("+s.Name+")", a)
	}
	if s.Name == "cluster" {
		// config.Redis reads one address as a single Redis; the cluster
		// needs seeds enough for the product to build a cluster client.
		if len(s.Addrs) < 2 {
			t.Fatalf("LAMBDALAKE_REDIS_CLUSTER_ADDRS=%q: give at least two seeds (one address is a single Redis to the product)",
				strings.Join(s.Addrs, ","))
		}
		checkCluster(t, s.Addrs[0])
	}
	return config.Redis{Addrs: append([]string(nil), s.Addrs...)}
}

// Client returns the client the product builds for this set-up
// (config.Redis.Client: one address a plain client, several a cluster
// client), closed when t ends.
func (s RedisSetup) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	rdb := s.Config(t).Client()
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func checkCluster(t testing.TB, seed string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: seed})
	defer c.Close()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		t.Fatalf("Redis Cluster seed %s: CLUSTER INFO: %v: start the local stack with `make up`", seed, err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("Redis Cluster at %s is not ready (%s): start the local stack with `make up`",
			seed, strings.SplitN(strings.TrimSpace(info), "\n", 2)[0])
	}
}

// DeleteRedisKeys deletes the keys matching pattern, on every master of a
// cluster, in pages (SCAN), never a whole database: the stack is shared,
// so pattern must name something unique to the test (its hash tag).
func DeleteRedisKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) error {
	return keyscan.Delete(ctx, rdb, pattern)
}
