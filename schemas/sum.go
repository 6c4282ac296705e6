package schemas

import "math"

// The overflow rule of sum metrics, one definition for both layers.
//
// A sum is kept as two parts that only ever grow away from zero: the sum of
// the positive values (Pos) and the sum of the negative values (Neg). A sum
// is overflowed when either part alone leaves the type's range (int64, or
// float64's finite range); otherwise its value is Pos + Neg, which always
// fits. Because each part is monotone, whether a sum overflows does not
// depend on the order values arrive in, how they are split across
// partitions and flushes, or which layer adds them up: the speed layer and
// recompute reach the same verdict for the same events. One exception, for
// float64 only: addition rounds, so a part whose exact value lies within
// its rounding error of where float64 turns to +Inf (MaxFloat64 plus half
// an ulp, 2^970) may overflow in one order and not in another
// (MaxFloat64 + 6e291 + 6e291 does not, 6e291 + 6e291 + MaxFloat64 does);
// FuzzSumRule pins this band, and the layers may disagree only there.
// An overflowed sum
// stays overflowed (sticky), is stored as such (a marker in Redis, a flag
// column in view files) and is answered as null with the metric listed
// under "overflow" — never as a wrapped or infinite number.
//
// At the stored grain (a view cell) the parts come from the events. A
// rollup across cells (a query's step or group_by) adds the cells' values
// with Add, so a rollup is overflowed when its cells' positive or negative
// values alone leave the range, or when any of its cells is overflowed.
// Both layers hand serving cells, so both give the same rollup.

// IntSum is a sum of int64 values (and of decimals, as scaled integers)
// under the overflow rule. The zero value is an empty sum.
type IntSum struct {
	Pos      int64 // sum of the positive values, ≥ 0
	Neg      int64 // sum of the negative values, ≤ 0
	Overflow bool
}

// Add adds one value.
func (s *IntSum) Add(x int64) {
	switch {
	case s.Overflow:
	case x >= 0:
		if s.Pos > math.MaxInt64-x {
			s.Overflow = true
			return
		}
		s.Pos += x
	default:
		if s.Neg < math.MinInt64-x {
			s.Overflow = true
			return
		}
		s.Neg += x
	}
}

// Merge adds another partial sum of the same cell (another partition's or
// flush's share of its events): the parts add up separately.
func (s *IntSum) Merge(o IntSum) {
	if o.Overflow {
		s.Overflow = true
	}
	s.Add(o.Pos)
	s.Add(o.Neg)
}

// Value is the sum, or ok=false when it overflowed.
func (s IntSum) Value() (sum int64, ok bool) {
	if s.Overflow {
		return 0, false
	}
	return s.Pos + s.Neg, true
}

// FloatSum is a sum of float64 values under the overflow rule: a part that
// reaches ±Inf overflows. Inputs are finite (the decoder refuses others).
type FloatSum struct {
	Pos      float64 // sum of the positive values, ≥ 0
	Neg      float64 // sum of the negative values, ≤ 0
	Overflow bool
}

// Add adds one finite value.
func (s *FloatSum) Add(x float64) {
	switch {
	case s.Overflow:
	case math.IsNaN(x) || math.IsInf(x, 0):
		s.Overflow = true
	case x >= 0:
		s.Pos += x
		s.Overflow = math.IsInf(s.Pos, 1)
	default:
		s.Neg += x
		s.Overflow = math.IsInf(s.Neg, -1)
	}
}

// Merge adds another partial sum of the same cell.
func (s *FloatSum) Merge(o FloatSum) {
	if o.Overflow {
		s.Overflow = true
	}
	s.Add(o.Pos)
	s.Add(o.Neg)
}

// Value is the sum, or ok=false when it overflowed.
func (s FloatSum) Value() (sum float64, ok bool) {
	if s.Overflow {
		return 0, false
	}
	return s.Pos + s.Neg, true
}
