package speed

import (
	"context"
	"fmt"
	"testing"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

func TestCompactReps(t *testing.T) {
	r := func(idx, val int, v string) uniqRep { return uniqRep{hllEntry(idx<<8 | val), v} }
	tests := []struct {
		name string
		in   []uniqRep
		want []string
	}{
		{"empty", nil, nil},
		{"one per register kept", []uniqRep{r(9, 1, "b"), r(3, 2, "a")}, []string{"a", "b"}},
		{"longest run wins", []uniqRep{r(5, 2, "x"), r(5, 7, "y"), r(5, 3, "z"), r(6, 1, "w")}, []string{"y", "w"}},
	}
	for _, tt := range tests {
		got := compactReps(tt.in)
		var vals []string
		for _, g := range got {
			vals = append(vals, g.v)
		}
		if fmt.Sprint(vals) != fmt.Sprint(tt.want) {
			t.Errorf("%s: kept %v, want %v", tt.name, vals, tt.want)
		}
	}
}

// The registers computed here must be the ones Redis' PFADD sets: same
// hash, same register, same run length. Then PFADD of one representative
// per register builds the very sketch PFADD of every value builds: both
// count the same, and their union counts no more.
func TestSketchMatchesRedis(t *testing.T) {
	rdb := testenv.RedisClient(t)
	ctx := context.Background()
	for _, n := range []int{1, 7, 100, 3000, 60000, 300000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			base := testenv.Name("ll-test-hll")
			byRedis, ours, union := base+":redis", base+":ours", base+":union"
			t.Cleanup(func() { rdb.Del(ctx, byRedis, ours, union) })
			var regs []hllEntry
			vals := make([]any, n)
			for i := range n {
				v := fmt.Sprintf("user-%d-%x", i, i*7919)
				vals[i] = v
				regs = append(regs, hllPatLen(v))
			}
			if err := rdb.PFAdd(ctx, byRedis, vals...).Err(); err != nil {
				t.Fatal(err)
			}
			reps := make([]uniqRep, len(regs))
			for i := range regs {
				reps[i] = uniqRep{regs[i], vals[i].(string)}
			}
			reps = compactReps(reps)
			some := make([]any, len(reps))
			for i, r := range reps {
				some[i] = r.v
			}
			if n > 100 && len(some) >= n {
				t.Errorf("%d values kept %d representatives", n, len(some))
			}
			if err := rdb.PFAdd(ctx, ours, some...).Err(); err != nil {
				t.Fatal(err)
			}
			want, err1 := rdb.PFCount(ctx, byRedis).Result()
			got, err2 := rdb.PFCount(ctx, ours).Result()
			if err1 != nil || err2 != nil {
				t.Fatalf("PFCOUNT: %v, %v", err1, err2)
			}
			if got != want {
				t.Errorf("PFCOUNT from %d representatives = %d, from all %d values = %d", len(some), got, n, want)
			}
			if err := rdb.PFMerge(ctx, union, byRedis, ours).Err(); err != nil {
				t.Fatal(err)
			}
			if u := rdb.PFCount(ctx, union).Val(); u != want {
				t.Errorf("union counts %d, want %d (the registers differ)", u, want)
			}
		})
	}
}

func BenchmarkHLLPatLen(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		hllPatLen("user_id-12345")
	}
}
