package speed

import (
	"slices"
)

// The speed layer computes HyperLogLog registers itself, exactly as Redis'
// PFADD would (P=14, MurmurHash64A with Redis' seed), and ships each cell's
// registers as a Redis sparse HLL that the apply script PFMERGEs (or SETs,
// for a new cell). Redis then does one merge per cell and flush instead of
// hashing every value, and the flush carries a few bytes per register
// instead of every distinct value: this is most of a flush's cost otherwise.

const (
	hllP         = 14
	hllRegisters = 1 << hllP
	hllSeed      = 0xadc83b19
	// A sparse VAL opcode holds values up to 32; a register above that (odds
	// about 2^-32 per value) makes the sketch dense.
	hllSparseMaxVal = 32
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

// hllCompact sorts register updates and keeps the largest value per
// register, in place.
func hllCompact(es []hllEntry) []hllEntry {
	slices.Sort(es)
	out := es[:0]
	for _, e := range es {
		if len(out) > 0 && out[len(out)-1]>>8 == e>>8 {
			out[len(out)-1] = e // sorted: a later entry for a register has a larger value
			continue
		}
		out = append(out, e)
	}
	return out
}

// hllEncode renders compacted register updates as a Redis HLL object: sparse
// when every value fits, dense otherwise.
func hllEncode(es []hllEntry) string {
	for _, e := range es {
		if e&0xff > hllSparseMaxVal {
			return hllDense(es)
		}
	}
	b := make([]byte, 16, 16+3*len(es)+4)
	copy(b, "HYLL")
	b[4] = 1 // HLL_SPARSE
	b[15] = 1 << 7
	pos := 0
	zeros := func(n int) {
		for n > 0 {
			if n > 64 {
				run := min(n, 16384)
				b = append(b, 0x40|byte((run-1)>>8), byte((run-1)&0xff)) // XZERO
				n -= run
			} else {
				b = append(b, byte(n-1)) // ZERO
				n = 0
			}
		}
	}
	for _, e := range es {
		idx, val := int(e>>8), int(e&0xff)
		zeros(idx - pos)
		b = append(b, 0x80|byte(val-1)<<2) // VAL, run of 1
		pos = idx + 1
	}
	zeros(hllRegisters - pos)
	return string(b)
}

// hllDense renders register updates as a dense Redis HLL: 6-bit registers,
// little-endian, after the 16-byte header.
func hllDense(es []hllEntry) string {
	b := make([]byte, 16+hllRegisters*6/8+1)
	copy(b, "HYLL")
	b[15] = 1 << 7
	regs := b[16:]
	for _, e := range es {
		idx, val := int(e>>8), byte(e&0xff)
		bit := idx * 6
		i, fb := bit/8, uint(bit&7)
		regs[i] |= val << fb
		regs[i+1] |= val >> (8 - fb)
	}
	return string(b[:16+hllRegisters*6/8])
}
