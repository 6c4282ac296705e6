package schemas

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestIntSum(t *testing.T) {
	const max, min = math.MaxInt64, math.MinInt64
	for _, tc := range []struct {
		name   string
		values []int64
		want   int64
		ok     bool
	}{
		{"empty", nil, 0, true},
		{"small", []int64{1, 2, -3, 10}, 10, true},
		{"max alone", []int64{max}, max, true},
		{"min alone", []int64{min}, min, true},
		{"max and min", []int64{max, min}, -1, true},
		{"max plus one", []int64{max, 1}, 0, false},
		{"one plus max", []int64{1, max}, 0, false},
		{"min minus one", []int64{min, -1}, 0, false},
		// The positive part alone leaves the range: overflowed, even though
		// the exact total would fit. That keeps the verdict independent of
		// the order values arrive in.
		{"positives overflow, total fits", []int64{max, min, max}, 0, false},
		{"positives overflow, other order", []int64{max, max, min}, 0, false},
		{"sticky", []int64{max, 1, -5, -max}, 0, false},
		{"zeros", []int64{0, 0, max, 0}, max, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s IntSum
			for _, x := range tc.values {
				s.Add(x)
			}
			got, ok := s.Value()
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("sum of %v = %d, %v; want %d, %v", tc.values, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestFloatSum(t *testing.T) {
	const big = 1e308
	for _, tc := range []struct {
		name   string
		values []float64
		want   float64
		ok     bool
	}{
		{"empty", nil, 0, true},
		{"small", []float64{1.5, 2.25, -0.75}, 3, true},
		{"big alone", []float64{big}, big, true},
		{"big and minus big", []float64{big, -big}, 0, true},
		{"two bigs", []float64{big, big}, 0, false},
		{"two bigs then minus big", []float64{big, big, -big}, 0, false},
		{"minus big then two bigs", []float64{-big, big, big}, 0, false},
		{"two minus bigs", []float64{-big, -big}, 0, false},
		{"max float", []float64{math.MaxFloat64}, math.MaxFloat64, true},
		{"inf input", []float64{1, math.Inf(1)}, 0, false},
		{"nan input", []float64{math.NaN()}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s FloatSum
			for _, x := range tc.values {
				s.Add(x)
			}
			got, ok := s.Value()
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("sum of %v = %g, %v; want %g, %v", tc.values, got, ok, tc.want, tc.ok)
			}
			if ok && (math.IsInf(got, 0) || math.IsNaN(got)) {
				t.Fatalf("sum of %v is %g: a number JSON cannot carry", tc.values, got)
			}
		})
	}
}

// The verdict and the value of a sum do not depend on the order of its
// values nor on how they are split into partial sums that are merged: that
// is what lets two layers (and many partitions) agree.
func TestSumsIndependentOfOrderAndSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	extremes := []int64{math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1, 1 << 62, -(1 << 62), 0, 1, -1}
	fextremes := []float64{1e308, -1e308, math.MaxFloat64, -math.MaxFloat64, 1e-308, 0, 1, -1}
	for trial := 0; trial < 2000; trial++ {
		n := 1 + r.IntN(8)
		ints := make([]int64, n)
		floats := make([]float64, n)
		for i := range ints {
			if r.IntN(2) == 0 {
				ints[i] = extremes[r.IntN(len(extremes))]
				floats[i] = fextremes[r.IntN(len(fextremes))]
			} else {
				ints[i] = r.Int64N(2000) - 1000
				floats[i] = float64(r.Int64N(2000) - 1000)
			}
		}
		var whole IntSum
		var fwhole FloatSum
		for i := range ints {
			whole.Add(ints[i])
			fwhole.Add(floats[i])
		}
		// Shuffled and split in two, merged.
		perm := r.Perm(n)
		cut := r.IntN(n + 1)
		var a, b IntSum
		var fa, fb FloatSum
		for k, i := range perm {
			if k < cut {
				a.Add(ints[i])
				fa.Add(floats[i])
			} else {
				b.Add(ints[i])
				fb.Add(floats[i])
			}
		}
		b.Merge(a)
		fb.Merge(fa)
		wv, wok := whole.Value()
		gv, gok := b.Value()
		if wok != gok || wv != gv {
			t.Fatalf("ints %v: whole = %d,%v; shuffled and split at %d = %d,%v", ints, wv, wok, cut, gv, gok)
		}
		fwv, fwok := fwhole.Value()
		fgv, fgok := fb.Value()
		if fwok != fgok || (fwok && math.Abs(fwv-fgv) > 1e-9*math.Max(1, math.Abs(fwv))) {
			t.Fatalf("floats %v: whole = %g,%v; shuffled and split at %d = %g,%v", floats, fwv, fwok, cut, fgv, fgok)
		}
	}
}

func TestAdmit(t *testing.T) {
	s := &Schema{Retention: 30 * 24 * time.Hour, MaxFuture: 10 * time.Minute}
	forever := &Schema{}
	now := time.Date(2026, 11, 30, 15, 20, 0, 0, time.UTC)
	us := func(t time.Time) int64 { return t.UnixMicro() }
	cutoff := now.Add(-s.Retention) // 2026-10-31T15:20
	for _, tc := range []struct {
		name   string
		schema *Schema
		event  time.Time
		want   Verdict
	}{
		{"now", s, now, Admitted},
		{"a minute ago", s, now.Add(-time.Minute), Admitted},
		{"at max_future", s, now.Add(10 * time.Minute), Admitted},
		{"just past max_future", s, now.Add(10*time.Minute + time.Microsecond), Future},
		{"year 9999", s, time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC), Future},
		{"default max_future admits 15m", forever, now.Add(15 * time.Minute), Admitted},
		{"default max_future refuses 16m", forever, now.Add(16 * time.Minute), Future},
		{"40 days ago", s, now.Add(-40 * 24 * time.Hour), Expired},
		{"40 days ago, kept forever", forever, now.Add(-40 * 24 * time.Hour), Admitted},
		// The hour holding the cutoff has not ended before it: still open.
		{"hour of the cutoff", s, cutoff.Add(-time.Minute), Admitted},
		{"hour before the cutoff's", s, cutoff.Truncate(time.Hour).Add(-time.Microsecond), Expired},
		{"1970", s, time.Unix(0, 0), Expired},
		{"before 1970", s, time.Unix(-3601, 0), Expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.schema.Admit(us(tc.event), us(now)); got != tc.want {
				t.Fatalf("Admit(%s) at %s = %s, want %s", tc.event, now, got, tc.want)
			}
			hour := tc.event.Truncate(time.Hour)
			if tc.event.Before(time.Unix(0, 0)) {
				return // Truncate rounds toward zero before 1970; Sealed takes hour starts
			}
			if sealed := tc.schema.Sealed(us(hour), us(now)); sealed != (tc.want == Expired) {
				t.Fatalf("Sealed(%s) = %v, but Admit says %s", hour, sealed, tc.want)
			}
		})
	}
}
