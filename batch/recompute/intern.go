package recompute

import (
	"hash/maphash"
	"strings"
)

// strIntern numbers distinct strings 0, 1, 2, … It keys its map by a 64-bit
// hash, which is much cheaper to probe than a string-keyed map for the
// hundreds of thousands of ids and user values an hour holds, and it stays
// exact: every hit compares the strings, and the rare string whose hash
// collides with another's is kept in a string-keyed overflow map.
type strIntern struct {
	seed     maphash.Seed
	ids      map[uint64]uint32
	strs     []string // id → string
	overflow map[string]uint32
	clone    bool // copy new strings (false when the caller keeps them alive)
	hash     func(maphash.Seed, string) uint64
}

func newStrIntern(sizeHint int, clone bool) *strIntern {
	return &strIntern{seed: maphash.MakeSeed(), ids: make(map[uint64]uint32, sizeHint),
		strs: make([]string, 0, sizeHint), clone: clone, hash: maphash.String}
}

// id returns s's number, adding s if it is new.
func (in *strIntern) id(s string) (id uint32, added bool) {
	h := in.hash(in.seed, s)
	if id, ok := in.ids[h]; ok {
		if in.strs[id] == s {
			return id, false
		}
		// A hash collision: the overflow map decides.
		if id, ok := in.overflow[s]; ok {
			return id, false
		}
		if in.overflow == nil {
			in.overflow = map[string]uint32{}
		}
		id = in.add(s)
		in.overflow[in.strs[id]] = id
		return id, true
	}
	id = in.add(s)
	in.ids[h] = id
	return id, true
}

func (in *strIntern) add(s string) uint32 {
	if in.clone {
		s = strings.Clone(s)
	}
	in.strs = append(in.strs, s)
	return uint32(len(in.strs) - 1)
}

func (in *strIntern) len() int { return len(in.strs) }
