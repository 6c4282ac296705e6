package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

func decType(t testing.TB, p, s int) Type {
	t.Helper()
	typ, err := DecimalType(p, s)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

func TestDecimalType(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the parsed type, or "" for an error
		p, s    int
		errPart string
	}{
		{"decimal(18,2)", "decimal(18,2)", 18, 2, ""},
		{"decimal(1,0)", "decimal(1,0)", 1, 0, ""},
		{"decimal(18,18)", "decimal(18,18)", 18, 18, ""},
		{"decimal( 9 , 3 )", "decimal(9,3)", 9, 3, ""},
		{"decimal(19,2)", "", 0, 0, "precision 19 is more than 18"},
		{"decimal(38,10)", "", 0, 0, "more than 18"},
		{"decimal(0,0)", "", 0, 0, "at least 1"},
		{"decimal(5,6)", "", 0, 0, "scale 6 is more than the precision 5"},
		{"decimal(5,-1)", "", 0, 0, "must not be negative"},
		{"decimal", "", 0, 0, "want decimal(P,S)"},
		{"decimal()", "", 0, 0, "want decimal(P,S)"},
		{"decimal(18)", "", 0, 0, "want decimal(P,S)"},
		{"decimal(18,2", "", 0, 0, "want decimal(P,S)"},
		{"decimal(18,2)x", "", 0, 0, "want decimal(P,S)"},
		{"decimal(a,b)", "", 0, 0, "must be integers"},
		{"decimal(18,2,1)", "", 0, 0, "must be integers"},
		{"numeric(18,2)", "", 0, 0, "unknown type"},
	}
	for _, tt := range tests {
		typ, err := ParseType(tt.in)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("ParseType(%q) = %v, %v; want an error containing %q", tt.in, typ, err, tt.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseType(%q): %v", tt.in, err)
			continue
		}
		if typ.String() != tt.want || typ.Kind() != Decimal || typ.Precision() != tt.p || typ.Scale() != tt.s || !typ.Numeric() {
			t.Errorf("ParseType(%q) = %v (kind %v, P %d, S %d)", tt.in, typ, typ.Kind(), typ.Precision(), typ.Scale())
		}
		if back, err := ParseType(typ.String()); err != nil || back != typ {
			t.Errorf("ParseType(%q) = %v, %v: the name does not read back", typ.String(), back, err)
		}
	}
	// The plain kinds are unchanged by the layout.
	for _, k := range []Type{String, Int64, Float64, Bool, Timestamp} {
		if k.Kind() != k || k.Precision() != 0 || k.Scale() != 0 {
			t.Errorf("%v: kind %v, P %d, S %d", k, k.Kind(), k.Precision(), k.Scale())
		}
		if back, err := ParseType(k.String()); err != nil || back != k {
			t.Errorf("ParseType(%q) = %v, %v", k.String(), back, err)
		}
	}
	if _, err := ParseType("decimal"); err == nil {
		t.Error(`"decimal" without P and S parsed`)
	}
}

// The parsing table of issue 15: exact values from numbers and strings of
// every form, and the refusals (never a rounding).
func TestParseDecimal(t *testing.T) {
	d18_2 := decType(t, 18, 2)
	d5_2 := decType(t, 5, 2)
	d18_0 := decType(t, 18, 0)
	d18_18 := decType(t, 18, 18)
	d1_1 := decType(t, 1, 1)
	tests := []struct {
		name string
		in   string
		typ  Type
		want int64
		err  error // nil: want is the value
	}{
		{"integer", "12", d18_2, 1200, nil},
		{"two decimals", "12.34", d18_2, 1234, nil},
		{"one decimal", "12.5", d18_2, 1250, nil},
		{"negative", "-12.34", d18_2, -1234, nil},
		{"plus sign", "+12.34", d18_2, 1234, nil},
		{"zero", "0", d18_2, 0, nil},
		{"negative zero", "-0", d18_2, 0, nil},
		{"negative zero with decimals", "-0.00", d18_2, 0, nil},
		{"negative zero exponent", "-0e5", d18_2, 0, nil},
		{"leading zeros", "007.50", d18_2, 750, nil},
		{"leading zeros of a fraction", "0000.05", d18_2, 5, nil},
		{"trailing zeros beyond the scale", "1.50000000", d18_2, 150, nil},
		{"money, the issue's figure", "25209252.48", d18_2, 2520925248, nil},
		{"largest decimal(18,2)", "9999999999999999.99", d18_2, 999999999999999999, nil},
		{"smallest decimal(18,2)", "-9999999999999999.99", d18_2, -999999999999999999, nil},
		{"largest decimal(18,0)", "999999999999999999", d18_0, 999999999999999999, nil},
		{"decimal(18,18)", "0.123456789012345678", d18_18, 123456789012345678, nil},
		{"decimal(1,1)", "-0.9", d1_1, -9, nil},
		{"exponent", "1.5e2", d18_2, 15000, nil},
		{"exponent upper case", "1.5E2", d18_2, 15000, nil},
		{"exponent plus", "1.5e+2", d18_2, 15000, nil},
		{"negative exponent", "1234e-2", d18_2, 1234, nil},
		{"negative exponent to the scale", "5e-2", d18_2, 5, nil},
		{"exponent moving zeros", "120000e-4", d18_2, 1200, nil},
		{"exponent with leading zeros", "1e002", d18_2, 10000, nil},
		{"zero with a huge exponent", "0e999999999999999999999", d18_2, 0, nil},
		{"zero with a huge negative exponent", "0.000e-999999999999999999999", d18_2, 0, nil},
		{"trailing zeros and a negative exponent", "1500e-3", d18_2, 150, nil},

		{"more decimals than the scale", "12.345", d18_2, 0, errDecimalFraction},
		{"one cent below the scale", "0.001", d18_2, 0, errDecimalFraction},
		{"exponent below the scale", "1e-3", d18_2, 0, errDecimalFraction},
		{"huge negative exponent", "1e-99999999999999999999", d18_2, 0, errDecimalFraction},
		{"too many integer digits", "12345678901234567", d18_2, 0, errDecimalInteger},
		{"too many for decimal(5,2)", "1000", d5_2, 0, errDecimalInteger},
		{"fits decimal(5,2)", "999.99", d5_2, 99999, nil},
		{"exponent past the precision", "1e16", d18_2, 0, errDecimalInteger},
		{"exponent just inside", "1e15", d18_2, 100000000000000000, nil},
		{"huge exponent", "1e99999999999999999999", d18_2, 0, errDecimalInteger},
		{"int digits win over fraction", "123456789012345678.123", d18_2, 0, errDecimalInteger},
		{"decimal(1,1) refuses 1", "1", d1_1, 0, errDecimalInteger},
		{"beyond int64 digits", "99999999999999999999999999", d18_0, 0, errDecimalInteger},

		{"empty", "", d18_2, 0, errDecimalSyntax},
		{"sign only", "-", d18_2, 0, errDecimalSyntax},
		{"leading point", ".5", d18_2, 0, errDecimalSyntax},
		{"trailing point", "5.", d18_2, 0, errDecimalSyntax},
		{"two points", "1.2.3", d18_2, 0, errDecimalSyntax},
		{"two signs", "--1", d18_2, 0, errDecimalSyntax},
		{"exponent without digits", "1e", d18_2, 0, errDecimalSyntax},
		{"exponent sign only", "1e+", d18_2, 0, errDecimalSyntax},
		{"leading space", " 1.5", d18_2, 0, errDecimalSyntax},
		{"trailing space", "1.5 ", d18_2, 0, errDecimalSyntax},
		{"inner space", "1 000", d18_2, 0, errDecimalSyntax},
		{"tab", "1.5\t", d18_2, 0, errDecimalSyntax},
		{"thousands separator", "1,000.00", d18_2, 0, errDecimalSyntax},
		{"underscore", "1_000", d18_2, 0, errDecimalSyntax},
		{"currency", "$12.00", d18_2, 0, errDecimalSyntax},
		{"NaN", "NaN", d18_2, 0, errDecimalSyntax},
		{"Inf", "-Inf", d18_2, 0, errDecimalSyntax},
		{"hex", "0x10", d18_2, 0, errDecimalSyntax},
		{"minus inside", "1-2", d18_2, 0, errDecimalSyntax},
		{"non-ASCII digit", "１", d18_2, 0, errDecimalSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDecimal([]byte(tt.in), tt.typ)
			switch {
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("ParseDecimal(%q, %v) = %d, %v; want error %q", tt.in, tt.typ, got, err, tt.err)
			case tt.err == nil && err != nil:
				t.Fatalf("ParseDecimal(%q, %v): %v", tt.in, tt.typ, err)
			case tt.err == nil && got != tt.want:
				t.Fatalf("ParseDecimal(%q, %v) = %d, want %d", tt.in, tt.typ, got, tt.want)
			}
		})
	}
}

func TestAppendDecimal(t *testing.T) {
	tests := []struct {
		n     int64
		scale int
		want  string
	}{
		{2520925248, 2, "25209252.48"},
		{1250, 2, "12.50"},
		{5, 2, "0.05"},
		{-5, 2, "-0.05"},
		{0, 2, "0.00"},
		{0, 0, "0"},
		{-1234, 0, "-1234"},
		{100, 2, "1.00"},
		{123456789012345678, 18, "0.123456789012345678"},
		{1, 18, "0.000000000000000001"},
		{math.MaxInt64, 2, "92233720368547758.07"},
		{math.MinInt64, 2, "-92233720368547758.08"},
		{math.MinInt64, 0, "-9223372036854775808"},
		{math.MinInt64, 18, "-9.223372036854775808"},
	}
	for _, tt := range tests {
		if got := FormatDecimal(tt.n, tt.scale); got != tt.want {
			t.Errorf("FormatDecimal(%d, %d) = %q, want %q", tt.n, tt.scale, got, tt.want)
		}
	}
}

// FuzzParseDecimal holds the parser to math/big's reading of the same
// text: whatever it accepts is exactly the rational big.Rat reads, scaled;
// whatever fits the type and has no digit beyond the scale it accepts;
// and its value prints back to text it reads again to the same value.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"12.34", "-0", "1.5e2", "007.50", "1e-3", "9999999999999999.99",
		"0e99999999999", "1e99999999999", ".5", "5.", "+1", " 1", "1_0", "NaN", "1.2.3", "-1234e-2"} {
		f.Add(s, uint8(18), uint8(2))
	}
	f.Add("0.123456789012345678", uint8(18), uint8(18))
	f.Add("42", uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, in string, p, s uint8) {
		typ, err := DecimalType(int(p%MaxDecimalPrecision)+1, int(s%MaxDecimalPrecision))
		if err != nil {
			return // scale above precision
		}
		got, err := ParseDecimal([]byte(in), typ)

		// The reference: the grammar by hand (big.Rat reads more forms),
		// then big.Rat's exact value.
		ref, refOK := referenceDecimal(in, typ)
		if (err == nil) != refOK {
			t.Fatalf("ParseDecimal(%q, %v) = %d, %v; reference accepts: %v (%d)", in, typ, got, err, refOK, ref)
		}
		if err != nil {
			return
		}
		if got != ref {
			t.Fatalf("ParseDecimal(%q, %v) = %d, reference %d", in, typ, got, ref)
		}
		text := FormatDecimal(got, typ.Scale())
		back, err := ParseDecimal([]byte(text), typ)
		if err != nil || back != got {
			t.Fatalf("FormatDecimal(%d) = %q reads back as %d, %v", got, text, back, err)
		}
	})
}

// referenceDecimal is ParseDecimal's contract by other means: the grammar
// checked by a scanner, the value by big.Rat, the limits by comparing
// with 10^(P-S) and the scaled value's denominator.
func referenceDecimal(in string, typ Type) (int64, bool) {
	if !grammarOK(in) {
		return 0, false
	}
	mant, exp, _ := strings.Cut(strings.ToLower(in), "e")
	if exp != "" {
		// big.Rat would compute 10^exp: bound it first. A nonzero
		// mantissa of at most len(in) digits is out of range whenever
		// |exp| passes len(in) + 40; a zero one is zero.
		e := new(big.Int)
		e.SetString(exp, 10)
		lim := big.NewInt(int64(len(in) + 40))
		if new(big.Int).Abs(e).Cmp(lim) > 0 {
			r, _ := new(big.Rat).SetString(mant)
			if r.Sign() == 0 {
				return 0, true
			}
			return 0, false
		}
	}
	r, ok := new(big.Rat).SetString(in)
	if !ok {
		return 0, false
	}
	limit := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(typ.Precision()-typ.Scale())), nil))
	if new(big.Rat).Abs(r).Cmp(limit) >= 0 {
		return 0, false
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(typ.Scale())), nil)))
	if !scaled.IsInt() {
		return 0, false
	}
	return scaled.Num().Int64(), true
}

func grammarOK(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// moneySchema is ordersSchema with exact amounts: a required decimal(18,2)
// and an optional decimal(9,3).
func moneySchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema("money", "money", "ts", "order_id", []Field{
		{Name: "order_id", Type: String},
		{Name: "ts", Type: Timestamp},
		{Name: "amount", Type: decType(t, 18, 2)},
		{Name: "rate", Type: decType(t, 9, 3), Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Decimals decode from JSON numbers and from strings holding the same
// text, exactly where float64 would not be (0.1, 18 digits), and the
// errors name the field and the type.
func TestDecodeDecimal(t *testing.T) {
	s := moneySchema(t)
	const head = `{"order_id":"o1","ts":"2026-11-27T10:30:15Z",`
	tests := []struct {
		name       string
		fields     string
		amount     int64
		rate       int64
		rateNull   bool
		errField   string
		errContent string
	}{
		{"numbers", `"amount":12.34,"rate":0.125`, 1234, 125, false, "", ""},
		{"strings", `"amount":"12.34","rate":"0.125"`, 1234, 125, false, "", ""},
		{"a tenth, which float64 cannot hold", `"amount":0.1`, 10, 0, true, "", ""},
		{"18 digits, beyond float64's 15-17", `"amount":9999999999999999.99`, 999999999999999999, 0, true, "", ""},
		{"18 digits as a string", `"amount":"-9999999999999999.99"`, -999999999999999999, 0, true, "", ""},
		{"exponent number", `"amount":1.5e2`, 15000, 0, true, "", ""},
		{"exponent string", `"amount":"125E-2"`, 125, 0, true, "", ""},
		{"negative zero", `"amount":-0.0`, 0, 0, true, "", ""},
		{"integer", `"amount":7`, 700, 0, true, "", ""},
		{"optional null", `"amount":1,"rate":null`, 100, 0, true, "", ""},
		{"escaped digits in a string", `"amount":"1\u0032.5"`, 1250, 0, true, "", ""},
		{"zeros past the scale, as a string", `"amount":"12.3400"`, 1234, 0, true, "", ""},
		{"exponent that leaves no fraction", `"amount":"1234e-2","rate":-5E-3`, 1234, -5, false, "", ""},

		{"more decimals than the scale", `"amount":12.345`, 0, 0, false, "amount", "more decimal places than the scale"},
		{"more decimals, as a string", `"amount":"12.345"`, 0, 0, false, "amount", "more decimal places than the scale"},
		{"more decimals by an exponent", `"amount":1234e-4`, 0, 0, false, "amount", "more decimal places than the scale"},
		{"too many digits by an exponent, as a string", `"amount":"1e16"`, 0, 0, false, "amount", "more digits before the point"},
		{"too many digits", `"amount":12345678901234567`, 0, 0, false, "amount", "more digits before the point"},
		{"too many digits for decimal(9,3)", `"amount":1,"rate":1000000`, 0, 0, false, "rate", "more digits before the point"},
		{"huge exponent", `"amount":1e400`, 0, 0, false, "amount", "more digits before the point"},
		{"string with spaces", `"amount":" 12.34"`, 0, 0, false, "amount", "not a decimal number"},
		{"empty string", `"amount":""`, 0, 0, false, "amount", "not a decimal number"},
		{"string with words", `"amount":"12 EUR"`, 0, 0, false, "amount", "not a decimal number"},
		{"number fastjson accepts, JSON does not", `"amount":1-2`, 0, 0, false, "amount", "not a decimal number"},
		{"bool", `"amount":true`, 0, 0, false, "amount", "got true"},
		{"object", `"amount":{"v":1}`, 0, 0, false, "amount", "got object"},
		{"missing", `"rate":1`, 0, 0, false, "amount", "missing"},
		{"null required", `"amount":null`, 0, 0, false, "amount", "null"},
	}
	d := NewDecoder(s)
	fd := NewFieldDecoder(s, []int{2})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r, fr Row
			ev := []byte(head + tt.fields + "}")
			err, ferr := d.Decode(ev, &r), fd.Decode(ev, &fr)
			if (err == nil) != (ferr == nil) {
				t.Fatalf("decoder %v, field decoder %v", err, ferr)
			}
			if tt.errField != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Field != tt.errField || !strings.Contains(err.Error(), tt.errContent) {
					t.Fatalf("error %v, want one on %s containing %q", err, tt.errField, tt.errContent)
				}
				if f, _ := s.Field(tt.errField); !strings.Contains(err.Error(), "want "+f.Type.String()) && tt.errContent != "missing" {
					t.Errorf("error %q does not name the type %s", err, f.Type)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Values[2]; got.Int != tt.amount || got.Null || fr.Values[2] != got {
				t.Errorf("amount = %+v (field decoder %+v), want %d", got, fr.Values[2], tt.amount)
			}
			if got := r.Values[3]; got.Null != tt.rateNull || got.Int != tt.rate {
				t.Errorf("rate = %+v, want %d (null %v)", got, tt.rate, tt.rateNull)
			}
		})
	}
}

// The uniq text of a decimal is its exact text with S decimals: equal
// values, written in any form, are one element.
func TestUniqElementDecimal(t *testing.T) {
	d := decType(t, 18, 2)
	for _, in := range []string{"12.5", "12.50", "1.25e1", "0012.500", "1250e-2"} {
		n, err := ParseDecimal([]byte(in), d)
		if err != nil {
			t.Fatal(err)
		}
		if got := UniqElement(d, &Value{Int: n}); got != "12.50" {
			t.Errorf("UniqElement(%s) = %q, want 12.50", in, got)
		}
	}
	if got := UniqElement(decType(t, 10, 0), &Value{Int: -7}); got != "-7" {
		t.Errorf("decimal(10,0) -7: %q", got)
	}
}

// A decimal metric's type is the field's decimal type, P and S included:
// it is what every answer prints with.
func TestMetricTypeDecimal(t *testing.T) {
	s := moneySchema(t)
	v := &View{Schema: s}
	want := decType(t, 18, 2)
	for _, agg := range []Agg{Sum, Min, Max} {
		if got := v.MetricType(Metric{Agg: agg, Field: "amount"}); got != want {
			t.Errorf("MetricType(%s amount) = %v, want %v", agg, got, want)
		}
	}
	if got := v.MetricType(Metric{Agg: Uniq, Field: "amount"}); got != Int64 {
		t.Errorf("MetricType(uniq amount) = %v, want int64", got)
	}
}

// checkDecimalDecode is FuzzDecode's part for decimal fields: the full and
// the field decoder judge alike, and an accepted amount is the exact value
// of the text encoding/json sees (a number's literal, or a string's
// content), as the reference reads it.
func checkDecimalDecode(t *testing.T, s *Schema, d, fd *Decoder, data []byte) {
	t.Helper()
	var r, fr Row
	err, ferr := d.Decode(data, &r), fd.Decode(data, &fr)
	if (err == nil) != (ferr == nil) || (err != nil && err.Error() != ferr.Error()) {
		t.Fatalf("decimal schema: full decoder says %v, field decoder says %v", err, ferr)
	}
	if err != nil {
		return
	}
	ai := s.FieldIndex("amount")
	if fr.Values[ai] != r.Values[ai] {
		t.Fatalf("amount: full decoder %+v, field decoder %+v", r.Values[ai], fr.Values[ai])
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil || dec.InputOffset() != int64(len(bytes.TrimRight(data, " \t\r\n"))) {
		return // encoding/json refuses it, or reads only a prefix
	}
	for _, name := range []string{"amount", "rate"} {
		i := s.FieldIndex(name)
		var text string
		switch x := obj[name].(type) {
		case json.Number:
			text = string(x)
		case string:
			text = x
		default:
			continue
		}
		want, ok := referenceDecimal(text, s.Fields[i].Type)
		if !ok || want != r.Values[i].Int {
			t.Fatalf("%s: decoder %d from %q, reference %d (accepts: %v)", name, r.Values[i].Int, text, want, ok)
		}
	}
}

// A view's fingerprint names its fields' types, P and S included: a
// changed scale changes every stored number, so both layers rebuild.
func TestFingerprintDecimalScale(t *testing.T) {
	fp := func(typ Type) string {
		s, err := NewSchema("m", "m", "ts", "", []Field{{Name: "ts", Type: Timestamp}, {Name: "amount", Type: typ}})
		if err != nil {
			t.Fatal(err)
		}
		v := &View{Name: "v", Schema: s, Granularity: time.Minute, Metrics: []Metric{{Name: "r", Agg: Sum, Field: "amount"}}}
		return v.Fingerprint()
	}
	a, b, c := fp(decType(t, 18, 2)), fp(decType(t, 18, 3)), fp(decType(t, 12, 2))
	if a == b || a == c || b == c || a == fp(Int64) {
		t.Errorf("fingerprints %s %s %s: a decimal's P and S must change them", a, b, c)
	}
}
