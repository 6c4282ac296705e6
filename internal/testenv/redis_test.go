package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// An atomic step the way the speed layer takes one: MULTI/EXEC and a Lua
// script, all keys under one hash tag. Both set-ups must run it with the
// product's own client; only the cluster refuses a script over two tags.
func TestRedisSetupsAtomicStep(t *testing.T) {
	moveScript := redis.NewScript(`
local v = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'n', v)
redis.call('DEL', KEYS[1])
return redis.call('HGET', KEYS[2], 'n')`)
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			ctx := context.Background()
			rdb := rs.Client(t)
			switch c := rdb.(type) {
			case *redis.Client:
				if rs.Name != "single" {
					t.Fatalf("set-up %s built a single-node client", rs.Name)
				}
			case *redis.ClusterClient:
				if rs.Name != "cluster" {
					t.Fatalf("set-up %s built a cluster client", rs.Name)
				}
			default:
				t.Fatalf("unexpected client %T", c)
			}

			tag := testenv.Name("tx")
			a, b := "ll-test:{"+tag+"}:a", "ll-test:{"+tag+"}:b"
			t.Cleanup(func() { rdb.Del(context.Background(), a, b) })
			cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.IncrBy(ctx, a, 5)
				p.HSet(ctx, b, "n", 10)
				p.Expire(ctx, a, time.Minute)
				p.Expire(ctx, b, time.Minute)
				return nil
			})
			if err != nil {
				t.Fatalf("MULTI/EXEC on one hash tag: %v", err)
			}
			if n := cmds[0].(*redis.IntCmd).Val(); n != 5 {
				t.Fatalf("INCRBY in MULTI = %d, want 5", n)
			}
			got, err := moveScript.Run(ctx, rdb, []string{a, b}).Text()
			if err != nil || got != "15" {
				t.Fatalf("script on one hash tag = %q, %v; want 15", got, err)
			}
			if n, err := rdb.Exists(ctx, a).Result(); err != nil || n != 0 {
				t.Fatalf("script left %s: exists=%d, %v", a, n, err)
			}

			// Two tags in two slots: a CROSSSLOT error on the cluster only.
			otherTag := tag + "-o"
			if rs.Name == "cluster" {
				otherTag = otherSlotTag(t, ctx, rdb, tag)
			}
			other := "ll-test:{" + otherTag + "}:a"
			t.Cleanup(func() { rdb.Del(context.Background(), other) })
			if err := rdb.Set(ctx, other, 1, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			_, err = moveScript.Run(ctx, rdb, []string{other, b}).Result()
			switch {
			case rs.Name == "cluster" && (err == nil || !strings.Contains(err.Error(), "CROSSSLOT")):
				t.Fatalf("script over two hash tags on the cluster: err=%v, want CROSSSLOT", err)
			case rs.Name == "single" && err != nil:
				t.Fatalf("script over two hash tags on a single Redis: %v", err)
			}
		})
	}
}

// otherSlotTag returns a tag whose cluster slot differs from tag's.
func otherSlotTag(t *testing.T, ctx context.Context, rdb redis.UniversalClient, tag string) string {
	t.Helper()
	slot, err := rdb.ClusterKeySlot(ctx, "{"+tag+"}").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		o := fmt.Sprintf("%s-o%d", tag, i)
		s, err := rdb.ClusterKeySlot(ctx, "{"+o+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if s != slot {
			return o
		}
	}
}

// Keys with different hash tags land on different masters: one tag per
// master is found with CLUSTER KEYSLOT and CLUSTER NODES, written through
// the product's client, and then read back from each master directly
// (a plain client that follows no redirect).
func TestRedisClusterSpreadsHashTags(t *testing.T) {
	ctx := context.Background()
	var rs testenv.RedisSetup
	for _, s := range testenv.RedisSetups(t) {
		if s.Name == "cluster" {
			rs = s
		}
	}
	rdb := rs.Client(t)

	nodes, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := make([]string, 16384) // slot -> master address
	var masters []string
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") {
			continue
		}
		addr := strings.SplitN(f[1], "@", 2)[0]
		masters = append(masters, addr)
		for _, r := range f[8:] {
			var lo, hi int
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			if n, _ := fmt.Sscanf(r, "%d-%d", &lo, &hi); n == 1 {
				hi = lo
			}
			for s := lo; s <= hi; s++ {
				owner[s] = addr
			}
		}
	}
	if len(masters) < 3 {
		t.Fatalf("cluster has %d masters (%v), want 3:\n%s", len(masters), masters, nodes)
	}

	base := testenv.Name("spread")
	keyOf := map[string]string{} // master -> a key whose slot it owns
	for i := 0; len(keyOf) < len(masters) && i < 1000; i++ {
		tag := fmt.Sprintf("%s-%d", base, i)
		slot, err := rdb.ClusterKeySlot(ctx, "{"+tag+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if m := owner[slot]; m != "" && keyOf[m] == "" {
			keyOf[m] = "ll-test:{" + tag + "}:v"
		}
	}
	if len(keyOf) != len(masters) {
		t.Fatalf("found tags for %d of %d masters", len(keyOf), len(masters))
	}
	for m, k := range keyOf {
		if err := rdb.Set(ctx, k, m, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s through the cluster client: %v", k, err)
		}
		t.Cleanup(func() { rdb.Del(context.Background(), k) })
	}
	for _, m := range masters {
		direct := redis.NewClient(&redis.Options{Addr: m})
		defer direct.Close()
		for owner, k := range keyOf {
			v, err := direct.Get(ctx, k).Result()
			if owner == m {
				if err != nil || v != m {
					t.Errorf("master %s: GET %s = %q, %v; want its own key", m, k, v, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), "MOVED") {
				t.Errorf("master %s: GET %s (owned by %s) = %q, %v; want MOVED", m, k, owner, v, err)
			}
		}
	}
}
