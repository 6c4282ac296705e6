package speed

import (
	"slices"
)

// The speed layer keeps, per cell and uniq metric, one value per HyperLogLog
// register: the value with the longest run, as Redis' PFADD would compute it
// (P=14, MurmurHash64A with Redis' seed). PFADD of these representatives
// sets exactly the registers PFADD of every value would, so a flush carries
// at most 16384 values per cell however many events repeat them.

const (
	hllP         = 14
	hllRegisters = 1 << hllP
	hllSeed      = 0xadc83b19
)

// murmur64A is Redis' MurmurHash64A (hyperloglog.c), on little-endian bytes.
func murmur64A(s string, seed uint64) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	n := len(s)
	h := seed ^ (uint64(n) * m)
	i := 0
	for ; i+8 <= n; i += 8 {
		k := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
	}
	if rest := n - i; rest > 0 {
		for j := rest - 1; j >= 0; j-- {
			h ^= uint64(s[i+j]) << (8 * j)
		}
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// hllEntry is one register update: index<<8 | value.
type hllEntry uint32

// hllPatLen is Redis' hllPatLen: the register a value lands in and the
// length of the run of zeros (plus one) it sets there.
func hllPatLen(s string) hllEntry {
	h := murmur64A(s, hllSeed)
	idx := h & (hllRegisters - 1)
	h >>= hllP
	h |= 1 << (64 - hllP)
	count := 1
	for h&1 == 0 {
		count++
		h >>= 1
	}
	return hllEntry(idx<<8 | uint64(count))
}

// uniqRep is one uniq value with the register update it makes.
type uniqRep struct {
	e hllEntry
	v string
}

// compactReps sorts representatives by register and keeps, per register,
// one with the largest value, in place.
func compactReps(rs []uniqRep) []uniqRep {
	slices.SortFunc(rs, func(a, b uniqRep) int { return int(a.e) - int(b.e) })
	out := rs[:0]
	for _, r := range rs {
		if len(out) > 0 && out[len(out)-1].e>>8 == r.e>>8 {
			out[len(out)-1] = r // sorted: a later one for a register has a larger value
			continue
		}
		out = append(out, r)
	}
	return out
}
