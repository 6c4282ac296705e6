package speed

import (
	"context"
	"fmt"
	"testing"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// decodeHLL reads a Redis HLL object back into its 16384 registers (the
// test's independent reading of the format).
func decodeHLL(t *testing.T, s string) []int {
	t.Helper()
	if len(s) < 16 || s[:4] != "HYLL" {
		t.Fatalf("not an HLL object: %q", s[:min(len(s), 16)])
	}
	regs := make([]int, 0, hllRegisters)
	switch s[4] {
	case 0: // dense
		if len(s) != 16+hllRegisters*6/8 {
			t.Fatalf("dense HLL of %d bytes", len(s))
		}
		b := s[16:]
		for i := range hllRegisters {
			bit := i * 6
			v := int(b[bit/8]) >> (bit & 7)
			if bit/8+1 < len(b) {
				v |= int(b[bit/8+1]) << (8 - bit&7)
			}
			regs = append(regs, v&63)
		}
	case 1: // sparse
		for p := 16; p < len(s); {
			op := s[p]
			switch {
			case op&0xc0 == 0: // ZERO
				for range int(op&0x3f) + 1 {
					regs = append(regs, 0)
				}
				p++
			case op&0xc0 == 0x40: // XZERO
				for range (int(op&0x3f)<<8 | int(s[p+1])) + 1 {
					regs = append(regs, 0)
				}
				p += 2
			default: // VAL
				for range int(op&3) + 1 {
					regs = append(regs, int(op>>2&0x1f)+1)
				}
				p++
			}
		}
	default:
		t.Fatalf("encoding %d", s[4])
	}
	if len(regs) != hllRegisters {
		t.Fatalf("HLL covers %d registers, want %d", len(regs), hllRegisters)
	}
	return regs
}

func TestHLLEncode(t *testing.T) {
	e := func(idx, val int) hllEntry { return hllEntry(idx<<8 | val) }
	tests := []struct {
		name  string
		in    []hllEntry
		dense bool
	}{
		{"one register", []hllEntry{e(5, 3)}, false},
		{"first and last", []hllEntry{e(0, 1), e(16383, 32)}, false},
		{"repeats keep the largest", []hllEntry{e(70, 2), e(70, 9), e(70, 4), e(1000, 1)}, false},
		{"long zero runs", []hllEntry{e(9000, 7)}, false},
		{"a value above 32 goes dense", []hllEntry{e(3, 33), e(16383, 51), e(200, 1)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := make([]int, hllRegisters)
			for _, x := range tt.in {
				want[x>>8] = max(want[x>>8], int(x&0xff))
			}
			enc := hllEncode(hllCompact(append([]hllEntry(nil), tt.in...)))
			if isDense := enc[4] == 0; isDense != tt.dense {
				t.Errorf("dense = %v, want %v", isDense, tt.dense)
			}
			got := decodeHLL(t, enc)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("register %d = %d, want %d", i, got[i], want[i])
				}
			}
		})
	}
}

// The registers computed here must be the ones Redis' PFADD sets: same
// hash, same register, same run length. A sketch of the same values built
// either way must count the same, and their union must count no more.
func TestSketchMatchesRedis(t *testing.T) {
	rdb := redisClient(t)
	ctx := context.Background()
	for _, n := range []int{1, 7, 100, 3000, 60000} {
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
			regs = hllCompact(regs)
			for _, enc := range []string{hllEncode(regs), hllDense(regs)} {
				if err := rdb.Set(ctx, ours, enc, 0).Err(); err != nil {
					t.Fatal(err)
				}
				want, err1 := rdb.PFCount(ctx, byRedis).Result()
				got, err2 := rdb.PFCount(ctx, ours).Result()
				if err1 != nil || err2 != nil {
					t.Fatalf("PFCOUNT: %v, %v", err1, err2)
				}
				if got != want {
					t.Errorf("encoding %d: PFCOUNT of our sketch = %d, of Redis' = %d", enc[4], got, want)
				}
				if err := rdb.PFMerge(ctx, union, byRedis, ours).Err(); err != nil {
					t.Fatal(err)
				}
				if u := rdb.PFCount(ctx, union).Val(); u != want {
					t.Errorf("encoding %d: union counts %d, want %d (the registers differ)", enc[4], u, want)
				}
				rdb.Del(ctx, union)
			}
		})
	}
}

func BenchmarkHLLPatLen(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		hllPatLen("user_id-12345")
	}
}
