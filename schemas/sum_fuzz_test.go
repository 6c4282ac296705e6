package schemas_test

import (
	"encoding/binary"
	"math"
	"math/big"
	"testing"

	"github.com/lambdalake/lambdalake/schemas"
)

// FuzzSumRule checks the overflow rule (sum.go) against exact arithmetic
// for any values, in any order and any split into partial sums merged —
// what the two layers do differently (recompute adds a cell's values in
// file order, the speed layer adds each flush's share and merges it into
// what Redis holds). Each 8 bytes of data are one value, as int64 and as
// float64 (non-finite bit patterns skipped: the decoder refuses them);
// cut picks the split.
//
// int64 sums: the verdict and the value equal the exact ones whatever the
// order. float64 sums: float addition rounds, so where a part's exact
// value lies within its rounding error bound of where float64 rounds to
// +Inf, one order can overflow and another not (MaxFloat64 + 6e291 +
// 6e291 does not, 6e291 + 6e291 + MaxFloat64 does); that band is left
// out, and outside it the verdict is the exact one and the value within
// rounding of the exact sum.
func FuzzSumRule(f *testing.F) {
	le := func(xs ...uint64) []byte {
		b := make([]byte, 0, 8*len(xs))
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
		return b
	}
	f.Add(le(math.MaxInt64, 1), uint8(1))
	f.Add(le(1<<63, 1<<63|1, 5), uint8(2))
	f.Add(le(math.Float64bits(1e308), math.Float64bits(1e308), math.Float64bits(-1e308)), uint8(1))
	f.Add(le(math.Float64bits(math.MaxFloat64), math.Float64bits(6e291), math.Float64bits(6e291)), uint8(0)) // the band
	f.Add(le(math.Float64bits(5e-324), math.Float64bits(-5e-324), 0), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		var ints []int64
		var floats []float64
		for len(data) >= 8 {
			u := binary.LittleEndian.Uint64(data)
			data = data[8:]
			ints = append(ints, int64(u))
			if x := math.Float64frombits(u); !math.IsNaN(x) && !math.IsInf(x, 0) {
				floats = append(floats, x)
			}
		}
		checkInts(t, ints, int(cut))
		checkFloats(t, floats, int(cut))
	})
}

// orders are the ways the layers may add n values: in order, reversed,
// and split at cut into two partial sums, the second merged into the
// first (indices into the values).
func orders(n, cut int) [][][]int {
	fwd, rev := make([]int, n), make([]int, n)
	for i := range n {
		fwd[i], rev[i] = i, n-1-i
	}
	c := 0
	if n > 0 {
		c = cut % (n + 1)
	}
	return [][][]int{{fwd}, {rev}, {fwd[:c], fwd[c:]}, {rev[:c], rev[c:]}}
}

func checkInts(t *testing.T, xs []int64, cut int) {
	pos, neg := new(big.Int), new(big.Int)
	for _, x := range xs {
		if x >= 0 {
			pos.Add(pos, big.NewInt(x))
		} else {
			neg.Add(neg, big.NewInt(x))
		}
	}
	over := !pos.IsInt64() || !neg.IsInt64()
	for _, o := range orders(len(xs), cut) {
		var sum schemas.IntSum
		for pi, part := range o {
			var p schemas.IntSum
			for _, i := range part {
				p.Add(xs[i])
			}
			if pi == 0 {
				sum = p
			} else {
				sum.Merge(p)
			}
		}
		v, ok := sum.Value()
		if ok == over {
			t.Fatalf("ints %v added as %v: overflow=%v, exact %v", xs, o, !ok, over)
		}
		if ok && v != new(big.Int).Add(pos, neg).Int64() {
			t.Fatalf("ints %v added as %v: %d, exact %v", xs, o, v, new(big.Int).Add(pos, neg))
		}
	}
}

var (
	maxFloat   = new(big.Float).SetPrec(2200).SetFloat64(math.MaxFloat64)
	halfUlpMax = new(big.Float).SetPrec(2200).SetMantExp(big.NewFloat(1), 970)
	toInf      = new(big.Float).SetPrec(2200).Add(maxFloat, halfUlpMax) // where rounding turns to +Inf
)

func checkFloats(t *testing.T, xs []float64, cut int) {
	// Exact parts (2200 bits hold any sum of up to 2^100 float64s
	// exactly) and, per part, a bound of the rounding error near
	// MaxFloat64: each addition errs by at most min(half an ulp there,
	// its smaller operand), so the sum of min(|x|, 2^970) but the largest.
	type part struct{ sum, errSum, errMax *big.Float }
	newPart := func() part {
		return part{new(big.Float).SetPrec(2200), new(big.Float).SetPrec(2200), new(big.Float).SetPrec(2200)}
	}
	pos, neg := newPart(), newPart()
	for _, x := range xs {
		p := &pos
		if x < 0 {
			p = &neg
		}
		a := new(big.Float).SetPrec(2200).SetFloat64(math.Abs(x))
		p.sum.Add(p.sum, a)
		if a.Cmp(halfUlpMax) > 0 {
			a.Set(halfUlpMax)
		}
		p.errSum.Add(p.errSum, a)
		if a.Cmp(p.errMax) > 0 {
			p.errMax.Set(a)
		}
	}
	over := false
	for _, p := range []part{pos, neg} {
		d := new(big.Float).SetPrec(2200).Sub(p.sum, toInf)
		bound := new(big.Float).SetPrec(2200).Sub(p.errSum, p.errMax)
		if new(big.Float).SetPrec(2200).Abs(d).Cmp(bound) <= 0 {
			return // the band: the verdict depends on the order
		}
		over = over || d.Sign() >= 0
	}
	exact, _ := new(big.Float).Sub(pos.sum, neg.sum).Float64()
	pf, _ := pos.sum.Float64()
	nf, _ := neg.sum.Float64()
	for _, o := range orders(len(xs), cut) {
		var sum schemas.FloatSum
		for pi, part := range o {
			var p schemas.FloatSum
			for _, i := range part {
				p.Add(xs[i])
			}
			if pi == 0 {
				sum = p
			} else {
				sum.Merge(p)
			}
		}
		v, ok := sum.Value()
		if ok == over {
			t.Fatalf("floats %v added as %v: overflow=%v, exact %v", xs, o, !ok, over)
		}
		// Each part is within n roundings of its exact value.
		if tol := float64(len(xs)+1) * 0x1p-52 * max(pf, nf); ok && math.Abs(v-exact) > tol {
			t.Fatalf("floats %v added as %v: %g, exact %g (tolerance %g)", xs, o, v, exact, tol)
		}
	}
}
