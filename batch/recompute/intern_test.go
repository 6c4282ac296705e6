package recompute

import (
	"hash/maphash"
	"strconv"
	"testing"
)

func TestStrIntern(t *testing.T) {
	hashes := map[string]func(maphash.Seed, string) uint64{
		"maphash": maphash.String,
		// Every string collides: the overflow map must keep them apart.
		"all collide": func(maphash.Seed, string) uint64 { return 42 },
		"two buckets": func(_ maphash.Seed, s string) uint64 { return uint64(len(s) % 2) },
	}
	for name, h := range hashes {
		t.Run(name, func(t *testing.T) {
			in := newStrIntern(0, true)
			in.hash = h
			want := map[string]uint32{}
			for round := range 2 {
				for i := range 300 {
					s := "v" + strconv.Itoa(i%150)
					id, added := in.id(s)
					prev, seen := want[s]
					if added == seen {
						t.Fatalf("round %d %q: added=%v, seen before=%v", round, s, added, seen)
					}
					if seen && id != prev {
						t.Fatalf("%q: id %d, was %d", s, id, prev)
					}
					want[s] = id
				}
			}
			if in.len() != 150 {
				t.Errorf("%d distinct, want 150", in.len())
			}
			for s, id := range want {
				if in.strs[id] != s {
					t.Errorf("id %d holds %q, want %q", id, in.strs[id], s)
				}
			}
		})
	}
}
