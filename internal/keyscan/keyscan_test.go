package keyscan_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/keyscan"
	"github.com/lambdalake/lambdalake/internal/testenv"
)

// Keys under many hash tags (so, on the cluster, on every master) are all
// found, each once, across pages, and Delete leaves none.
func TestScanAndDeleteOnEveryNode(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			ctx := context.Background()
			rdb := rs.Client(t)
			prefix := testenv.Name("keyscan")
			const n = 2*keyscan.PageSize + 37
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range n {
					p.Set(ctx, fmt.Sprintf("%s:{%d}", prefix, i), "x", 0)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			nodes := map[string]bool{}
			var mu sync.Mutex
			err = keyscan.Scan(ctx, rdb, prefix+":*", func(_ context.Context, node redis.Cmdable, keys []string) error {
				mu.Lock()
				defer mu.Unlock()
				nodes[node.(*redis.Client).Options().Addr] = true
				for _, k := range keys {
					seen[k]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != n {
				t.Fatalf("found %d keys of %d", len(seen), n)
			}
			for k, c := range seen {
				if c != 1 {
					t.Fatalf("%s found %d times", k, c)
				}
			}
			if want := len(rs.Addrs); rs.Name == "cluster" && len(nodes) < 3 || rs.Name == "single" && len(nodes) != want {
				t.Fatalf("keys found on nodes %v", nodes)
			}
			if err := keyscan.Delete(ctx, rdb, prefix+":*"); err != nil {
				t.Fatal(err)
			}
			left := 0
			keyscan.Scan(ctx, rdb, prefix+":*", func(_ context.Context, _ redis.Cmdable, keys []string) error {
				mu.Lock()
				left += len(keys)
				mu.Unlock()
				return nil
			})
			if left != 0 {
				t.Fatalf("%d keys left after Delete", left)
			}
		})
	}
}
