package schemas

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The rules in this file are the ones the speed and batch layers must apply
// identically, or their figures would not merge at the boundary B: the
// serving layer adds batch cells before B to speed cells after it, unions
// their uniq sketches, and compares their min/max. Each is defined here once;
// internal/agreement feeds the same events to both layers and checks the
// cells are equal.

// Floor returns the start of the step holding micros (Unix microseconds):
// steps are aligned on the Unix epoch, also before it. step must be positive.
func Floor(micros, step int64) int64 {
	r := micros % step
	if r < 0 {
		r += step
	}
	return micros - r
}

// FloorTime is Floor on a time; the result is UTC.
func FloorTime(t time.Time, step time.Duration) time.Time {
	return time.UnixMicro(Floor(t.UnixMicro(), step.Microseconds())).UTC()
}

// MetricType is the type of a metric's values: int64 for count and uniq
// (a number of events or of distinct values), the field's type for sum, min
// and max (int64, float64 or decimal(P,S): a decimal sum is the scaled
// integer sum, with the field's scale, and is printed with it).
func (v *View) MetricType(m Metric) Type {
	switch m.Agg {
	case Count, Uniq:
		return Int64
	}
	f, _ := v.Schema.Field(m.Field)
	return f.Type
}

// Replaces reports whether x takes the place of cur in a min (x < cur) or
// max (x > cur) metric. Ties keep cur. Decoded float64 values are never
// NaN (JSON has none), so the order is total.
func Replaces[T int64 | float64](agg Agg, x, cur T) bool {
	switch agg {
	case Min:
		return x < cur
	case Max:
		return x > cur
	}
	return false
}

// CompareValues orders two values of a dimension of type t: null first,
// strings bytewise, int64 and bool (0 < 1) numerically. Rows of both layers
// and of answers are sorted by it.
func CompareValues(t Type, a, b Value) int {
	if a.Null || b.Null {
		switch {
		case a.Null && b.Null:
			return 0
		case a.Null:
			return -1
		}
		return 1
	}
	if t == String {
		return strings.Compare(a.Str, b.Str)
	}
	return cmp.Compare(a.Int, b.Int)
}

// AppendUniqElement appends the text a value of type t is counted under in
// a uniq metric's HyperLogLog: strings as they are, int64 in decimal,
// float64 in the shortest 'g' form that round-trips, bools as true/false,
// timestamps as decimal Unix microseconds, decimal(P,S) values as their
// exact text with S decimals (AppendDecimal: 12.50 for 12.5 in a
// decimal(18,2), so equal values have one text). The speed layer PFADDs this text
// and batch builds its sketches from the same hash of it, which is what
// makes the two layers' sketches unionable (and byte-equal for equal input).
func AppendUniqElement(dst []byte, t Type, v *Value) []byte {
	switch t {
	case String:
		return append(dst, v.Str...)
	case Float64:
		return strconv.AppendFloat(dst, v.Float, 'g', -1, 64)
	case Bool:
		return strconv.AppendBool(dst, v.Int != 0)
	}
	if t.Kind() == Decimal {
		return AppendDecimal(dst, v.Int, t.Scale())
	}
	return strconv.AppendInt(dst, v.Int, 10)
}

// UniqElement is AppendUniqElement as a string; a string value is returned
// as it is, without a copy.
func UniqElement(t Type, v *Value) string {
	if t == String {
		return v.Str
	}
	var buf [32]byte // the longest float64 'g' text is 24 bytes, decimal 21
	return string(AppendUniqElement(buf[:0], t, v))
}

// ParseDimValue reads a dimension value given as text (a query's where):
// a string as it is, an int64 in decimal, a bool as strconv.ParseBool reads
// it (true/false, 1/0, t/f). The value equals the one the decoder produces
// for the same field, so filters compare values, not texts.
func ParseDimValue(t Type, s string) (Value, error) {
	switch t {
	case String:
		return Value{Str: s}, nil
	case Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, errors.New("want an integer")
		}
		return Value{Int: n}, nil
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Value{}, errors.New("want true or false")
		}
		if b {
			return Value{Int: 1}, nil
		}
		return Value{}, nil
	}
	return Value{}, fmt.Errorf("a %s field is not a dimension", t)
}

// FormatDimValue is the text of a dimension value that ParseDimValue reads
// back to the same value (nulls aside, which have no text).
func FormatDimValue(t Type, v Value) string {
	switch t {
	case String:
		return v.Str
	case Bool:
		return strconv.FormatBool(v.Int != 0)
	}
	return strconv.FormatInt(v.Int, 10)
}
