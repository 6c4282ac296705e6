package schemas

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Decimals: a field of type decimal(P,S) holds exact numbers of at most P
// significant digits, S of them after the point (money: decimal(18,2)).
// A value is kept as the integer value × 10^S in an int64 (Value.Int),
// which is why P is at most 18: every such integer fits, and so does the
// Parquet DECIMAL's INT64 storage. Sums, min and max of decimals are then
// integer arithmetic (a decimal sum is an IntSum), exact in both layers,
// and every answer prints them with exactly S decimals.
//
// Parsing never goes through float64: ParseDecimal reads the digits of the
// JSON text (a number, or a string holding the same text) and refuses a
// value that would need rounding. Rounding would make the stored amount
// differ from the one the producer sent, silently, and every reader of the
// lake would have to agree on a rounding mode; a refused event is dead-
// lettered with its reason instead, where it can be seen and fixed.

// MaxDecimalPrecision is the largest P of decimal(P,S): values are int64
// integers scaled by 10^S, and 10^18 − 1 is the largest all-nines number
// an int64 holds.
const MaxDecimalPrecision = 18

// Type layout of a decimal: kind in the low byte, then P, then S.
const (
	decPrecisionShift = 8
	decScaleShift     = 16
)

// DecimalType is the type decimal(precision, scale): 1 ≤ precision ≤ 18
// and 0 ≤ scale ≤ precision.
func DecimalType(precision, scale int) (Type, error) {
	switch {
	case precision < 1:
		return TypeInvalid, fmt.Errorf("decimal(%d,%d): precision must be at least 1", precision, scale)
	case precision > MaxDecimalPrecision:
		return TypeInvalid, fmt.Errorf("decimal(%d,%d): precision %d is more than %d (values are exact 64-bit integers scaled by 10^scale)", precision, scale, precision, MaxDecimalPrecision)
	case scale < 0:
		return TypeInvalid, fmt.Errorf("decimal(%d,%d): scale must not be negative", precision, scale)
	case scale > precision:
		return TypeInvalid, fmt.Errorf("decimal(%d,%d): scale %d is more than the precision %d", precision, scale, scale, precision)
	}
	return Decimal | Type(precision)<<decPrecisionShift | Type(scale)<<decScaleShift, nil
}

// Precision is P of a decimal(P,S) type; 0 for other types.
func (t Type) Precision() int {
	if t.Kind() != Decimal {
		return 0
	}
	return int(t >> decPrecisionShift & 0xff)
}

// Scale is S of a decimal(P,S) type: the digits after the point; 0 for
// other types.
func (t Type) Scale() int {
	if t.Kind() != Decimal {
		return 0
	}
	return int(t >> decScaleShift & 0xff)
}

// parseDecimalType reads "decimal(P,S)" (spaces around P and S allowed).
func parseDecimalType(s string) (Type, error) {
	args, ok := strings.CutPrefix(s, "decimal(")
	if ok {
		args, ok = strings.CutSuffix(args, ")")
	}
	ps, ss, comma := strings.Cut(args, ",")
	if !ok || !comma {
		return TypeInvalid, fmt.Errorf("bad type %q: want decimal(P,S), e.g. decimal(18,2)", s)
	}
	p, perr := strconv.Atoi(strings.TrimSpace(ps))
	sc, serr := strconv.Atoi(strings.TrimSpace(ss))
	if perr != nil || serr != nil {
		return TypeInvalid, fmt.Errorf("bad type %q: P and S must be integers, as in decimal(18,2)", s)
	}
	return DecimalType(p, sc)
}

// Reasons ParseDecimal gives; a DecodeError carries them for a field.
var (
	errDecimalSyntax   = errors.New("not a decimal number")
	errDecimalFraction = errors.New("more decimal places than the scale (decimals are exact: a value is never rounded)")
	errDecimalInteger  = errors.New("more digits before the point than precision − scale")
)

// maxExp bounds the exponent ParseDecimal keeps: far beyond any digit
// count a record can hold, so clamping changes no verdict and the
// arithmetic never overflows.
const maxExp = 1 << 40

// pow10 are the powers of ten an int64 holds.
var pow10 = [...]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// ParseDecimal reads the text of a decimal of type t (a Decimal kind) and
// returns its value × 10^scale, exactly. The text is a JSON number's, with
// a sign '+' and leading zeros also allowed: [+-]digits[.digits][(e|E)[+-]digits].
// Nothing else is: no spaces, no ".5" or "5.", no Inf or NaN. Zeros never
// count against the limits ("007.50" is 7.5, "1.500" fits a scale of 2,
// "-0" is 0); a value with a nonzero digit beyond the scale is refused, not
// rounded, as is one with more than precision − scale digits before the
// point.
func ParseDecimal(b []byte, t Type) (int64, error) {
	prec, scale := t.Precision(), t.Scale()
	i, n := 0, len(b)
	neg := false
	if i < n && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	// The mantissa's digits, the point skipped: b[intStart:intEnd] and
	// b[fracStart:fracEnd].
	intStart := i
	for i < n && isDigit(b[i]) {
		i++
	}
	intEnd := i
	if intEnd == intStart {
		return 0, errDecimalSyntax
	}
	fracStart, fracEnd := i, i
	if i < n && b[i] == '.' {
		i++
		fracStart = i
		for i < n && isDigit(b[i]) {
			i++
		}
		fracEnd = i
		if fracEnd == fracStart {
			return 0, errDecimalSyntax
		}
	}
	exp := int64(0)
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		expNeg := false
		if i < n && (b[i] == '+' || b[i] == '-') {
			expNeg = b[i] == '-'
			i++
		}
		start := i
		for i < n && isDigit(b[i]) {
			if exp < maxExp {
				exp = exp*10 + int64(b[i]-'0')
			}
			i++
		}
		if i == start {
			return 0, errDecimalSyntax
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != n {
		return 0, errDecimalSyntax
	}

	// digit k of the mantissa, over both runs
	intLen := intEnd - intStart
	total := intLen + fracEnd - fracStart
	digit := func(k int) byte {
		if k < intLen {
			return b[intStart+k]
		}
		return b[fracStart+k-intLen]
	}
	// The significant digits lo..hi-1: value = digits × 10^e.
	lo, hi := 0, total
	for lo < hi && digit(lo) == '0' {
		lo++
	}
	for hi > lo && digit(hi-1) == '0' {
		hi--
	}
	if lo == hi {
		return 0, nil // zero, whatever its sign, form or exponent
	}
	e := exp - int64(fracEnd-fracStart) + int64(total-hi)
	nd := int64(hi - lo)
	if nd+e > int64(prec-scale) {
		return 0, errDecimalInteger
	}
	shift := e + int64(scale)
	if shift < 0 {
		return 0, errDecimalFraction
	}
	// nd + shift ≤ prec ≤ 18 digits: the scaled value fits an int64.
	var v int64
	for k := lo; k < hi; k++ {
		v = v*10 + int64(digit(k)-'0')
	}
	v *= pow10[shift]
	if neg {
		v = -v
	}
	return v, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// AppendDecimal appends the exact text of a scaled decimal: n / 10^scale
// with exactly scale digits after the point (none, and no point, for
// scale 0), '-' for a negative value. It prints any int64 (a sum may
// exceed the field's precision), and its text is a JSON number.
func AppendDecimal(dst []byte, n int64, scale int) []byte {
	u := uint64(n)
	if n < 0 {
		dst = append(dst, '-')
		u = -u // two's complement: also right for MinInt64
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	if scale <= 0 {
		return append(dst, digits...)
	}
	if len(digits) <= scale { // 0.0…: pad with zeros
		dst = append(dst, '0', '.')
		for range scale - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	point := len(digits) - scale
	dst = append(dst, digits[:point]...)
	dst = append(dst, '.')
	return append(dst, digits[point:]...)
}

// FormatDecimal is AppendDecimal as a string.
func FormatDecimal(n int64, scale int) string {
	var buf [32]byte
	return string(AppendDecimal(buf[:0], n, scale))
}
