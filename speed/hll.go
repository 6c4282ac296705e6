package speed

import (
	"slices"

	"github.com/lambdalake/lambdalake/internal/hll"
)

// The speed layer keeps, per cell and uniq metric, one value per HyperLogLog
// register: the value with the longest run, as Redis' PFADD would compute it
// (internal/hll: P=14, MurmurHash64A with Redis' seed). PFADD of these representatives
// sets exactly the registers PFADD of every value would, so a flush carries
// at most 16384 values per cell however many events repeat them.

// hllEntry is one register update: index<<8 | value.
type hllEntry uint32

// hllPatLen is Redis' hllPatLen: the register a value lands in and the
// length of the run of zeros (plus one) it sets there.
func hllPatLen(s string) hllEntry {
	p := hll.Pattern(s)
	return hllEntry(uint32(p.Index)<<8 | uint32(p.Rank))
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
