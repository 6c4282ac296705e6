package schemas

import (
	"math"
	"testing"
	"time"
)

func TestFloor(t *testing.T) {
	const min = int64(time.Minute / time.Microsecond)
	tests := []struct {
		micros, step, want int64
	}{
		{0, min, 0},
		{1, min, 0},
		{min - 1, min, 0},
		{min, min, min},
		{min + 1, min, min},
		{-1, min, -min},
		{-min, min, -min},
		{-min - 1, min, -2 * min},
		{7, 1, 7},
		{-7, 1, -7},
		{math.MaxInt64, min, math.MaxInt64 - math.MaxInt64%min},
		{math.MinInt64 + min, min, math.MinInt64 + min - (math.MinInt64+min)%min - min},
	}
	for _, tt := range tests {
		if got := Floor(tt.micros, tt.step); got != tt.want {
			t.Errorf("Floor(%d, %d) = %d, want %d", tt.micros, tt.step, got, tt.want)
		}
	}
	at := time.Date(2026, 11, 27, 10, 7, 59, 999_999_000, time.FixedZone("x", 3600))
	if got, want := FloorTime(at, 5*time.Minute), time.Date(2026, 11, 27, 9, 5, 0, 0, time.UTC); got != want {
		t.Errorf("FloorTime = %v, want %v (UTC)", got, want)
	}
	if got, want := FloorTime(at, 24*time.Hour), time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC); got != want {
		t.Errorf("FloorTime day = %v, want %v", got, want)
	}
}

// View.Bucket is what every exactness reference uses to place an event;
// checked here against literal bucket starts and against time.Truncate
// (which counts from year 1, a whole number of days before the epoch, so
// it agrees for every granularity dividing an hour).
func TestViewBucket(t *testing.T) {
	at := func(y int, mo time.Month, d, h, m, s, us int) int64 {
		return time.Date(y, mo, d, h, m, s, us*1000, time.UTC).UnixMicro()
	}
	tests := []struct {
		name   string
		gran   time.Duration
		micros int64
		want   int64
	}{
		{"on a bucket start", time.Minute, at(2026, 11, 27, 10, 7, 0, 0), at(2026, 11, 27, 10, 7, 0, 0)},
		{"last microsecond of a bucket", time.Minute, at(2026, 11, 27, 10, 7, 59, 999999), at(2026, 11, 27, 10, 7, 0, 0)},
		{"first microsecond of the next", time.Minute, at(2026, 11, 27, 10, 8, 0, 0), at(2026, 11, 27, 10, 8, 0, 0)},
		{"last microsecond of an hour", time.Minute, at(2026, 11, 27, 10, 59, 59, 999999), at(2026, 11, 27, 10, 59, 0, 0)},
		{"hour end is the next hour's start", time.Minute, at(2026, 11, 27, 11, 0, 0, 0), at(2026, 11, 27, 11, 0, 0, 0)},
		{"hour granularity, end of hour", time.Hour, at(2026, 11, 27, 10, 59, 59, 999999), at(2026, 11, 27, 10, 0, 0, 0)},
		{"1s granularity", time.Second, at(2026, 11, 27, 10, 7, 3, 500000), at(2026, 11, 27, 10, 7, 3, 0)},
		{"15m granularity", 15 * time.Minute, at(2026, 11, 27, 10, 44, 59, 0), at(2026, 11, 27, 10, 30, 0, 0)},
		{"last day of a year", time.Hour, at(2025, 12, 31, 23, 30, 0, 0), at(2025, 12, 31, 23, 0, 0, 0)},
		{"the epoch", time.Minute, 0, 0},
		{"one microsecond before the epoch", time.Minute, -1, at(1969, 12, 31, 23, 59, 0, 0)},
		{"a minute before the epoch", time.Minute, -60_000_000, -60_000_000},
		{"negative, inside a bucket", time.Minute, at(1969, 12, 31, 23, 58, 30, 0), at(1969, 12, 31, 23, 58, 0, 0)},
		{"negative, hour granularity", time.Hour, at(1969, 12, 31, 22, 59, 59, 999999), at(1969, 12, 31, 22, 0, 0, 0)},
	}
	for _, tt := range tests {
		v := &View{Granularity: tt.gran}
		got := v.Bucket(tt.micros)
		if got != tt.want {
			t.Errorf("%s: Bucket(%d) at %s = %s, want %s", tt.name, tt.micros, tt.gran,
				time.UnixMicro(got).UTC(), time.UnixMicro(tt.want).UTC())
		}
		if ref := time.UnixMicro(tt.micros).UTC().Truncate(tt.gran).UnixMicro(); got != ref {
			t.Errorf("%s: Bucket = %d, time.Truncate = %d", tt.name, got, ref)
		}
	}
}

func TestMetricType(t *testing.T) {
	s := ordersSchema(t)
	v := &View{Schema: s}
	tests := []struct {
		m    Metric
		want Type
	}{
		{Metric{Agg: Count}, Int64},
		{Metric{Agg: Uniq, Field: "tenant"}, Int64},
		{Metric{Agg: Uniq, Field: "amount"}, Int64},
		{Metric{Agg: Sum, Field: "amount"}, Float64},
		{Metric{Agg: Min, Field: "amount"}, Float64},
		{Metric{Agg: Max, Field: "qty"}, Int64},
		{Metric{Agg: Sum, Field: "qty"}, Int64},
	}
	for _, tt := range tests {
		if got := v.MetricType(tt.m); got != tt.want {
			t.Errorf("MetricType(%s %s) = %s, want %s", tt.m.Agg, tt.m.Field, got, tt.want)
		}
	}
}

func TestReplaces(t *testing.T) {
	ints := []struct {
		agg     Agg
		x, cur  int64
		replace bool
	}{
		{Min, 1, 2, true},
		{Min, 2, 1, false},
		{Min, 2, 2, false},
		{Max, 2, 1, true},
		{Max, 1, 2, false},
		{Max, 1, 1, false},
		{Min, math.MinInt64, math.MaxInt64, true},
		{Max, math.MaxInt64, math.MaxInt64 - 1, true}, // exact beyond 2^53
		{Sum, 1, 2, false},
		{Count, 2, 1, false},
	}
	for _, tt := range ints {
		if got := Replaces(tt.agg, tt.x, tt.cur); got != tt.replace {
			t.Errorf("Replaces(%s, %d, %d) = %v", tt.agg, tt.x, tt.cur, got)
		}
	}
	floats := []struct {
		agg     Agg
		x, cur  float64
		replace bool
	}{
		{Min, -0.5, 0.25, true},
		{Max, 0.25, -0.5, true},
		{Min, 0.1, 0.1, false},
		{Max, math.Inf(1), math.MaxFloat64, true},
		{Min, math.Copysign(0, -1), 0, false}, // -0 == 0: the first one stays
	}
	for _, tt := range floats {
		if got := Replaces(tt.agg, tt.x, tt.cur); got != tt.replace {
			t.Errorf("Replaces(%s, %v, %v) = %v", tt.agg, tt.x, tt.cur, got)
		}
	}
}

func TestCompareValues(t *testing.T) {
	null := Value{Null: true}
	tests := []struct {
		typ  Type
		a, b Value
		want int
	}{
		{String, null, null, 0},
		{String, null, Value{Str: ""}, -1},
		{String, Value{Str: ""}, null, 1},
		{String, Value{Str: "a"}, Value{Str: "b"}, -1},
		{String, Value{Str: "b"}, Value{Str: "B"}, 1}, // bytewise
		{String, Value{Str: "ab"}, Value{Str: "a"}, 1},
		{Int64, Value{Int: -5}, Value{Int: 3}, -1},
		{Int64, Value{Int: 3}, Value{Int: 3}, 0},
		{Int64, null, Value{Int: math.MinInt64}, -1},
		{Bool, Value{}, Value{Int: 1}, -1},
		{Bool, Value{Int: 1}, Value{Int: 1}, 0},
	}
	for _, tt := range tests {
		if got := CompareValues(tt.typ, tt.a, tt.b); got != tt.want {
			t.Errorf("CompareValues(%s, %+v, %+v) = %d, want %d", tt.typ, tt.a, tt.b, got, tt.want)
		}
	}
}

func TestUniqElement(t *testing.T) {
	tests := []struct {
		typ  Type
		v    Value
		want string
	}{
		{String, Value{Str: "user-7"}, "user-7"},
		{String, Value{Str: ""}, ""},
		{String, Value{Str: "ünï,:{}"}, "ünï,:{}"},
		{Int64, Value{Int: 42}, "42"},
		{Int64, Value{Int: -42}, "-42"},
		{Int64, Value{Int: math.MinInt64}, "-9223372036854775808"},
		{Float64, Value{Float: 0.1}, "0.1"},
		{Float64, Value{Float: 100}, "100"},
		{Float64, Value{Float: -2.5}, "-2.5"},
		{Float64, Value{Float: 1e21}, "1e+21"},
		{Float64, Value{Float: 1.0000000000000002}, "1.0000000000000002"},
		{Float64, Value{Float: -math.MaxFloat64}, "-1.7976931348623157e+308"},
		{Float64, Value{Float: 5e-324}, "5e-324"},
		{Bool, Value{Int: 1}, "true"},
		{Bool, Value{Int: 0}, "false"},
		{Timestamp, Value{Int: 1795775415123000}, "1795775415123000"},
		{Timestamp, Value{Int: -1}, "-1"},
	}
	buf := []byte("prefix:")
	for _, tt := range tests {
		if got := UniqElement(tt.typ, &tt.v); got != tt.want {
			t.Errorf("UniqElement(%s, %+v) = %q, want %q", tt.typ, tt.v, got, tt.want)
		}
		if got := AppendUniqElement(buf[:7], tt.typ, &tt.v); string(got) != "prefix:"+tt.want {
			t.Errorf("AppendUniqElement(%s, %+v) = %q, want prefix:%q", tt.typ, tt.v, got, tt.want)
		}
	}
	// The speed aggregator calls these per event.
	s := Value{Str: "user-7"}
	if n := testing.AllocsPerRun(100, func() { _ = UniqElement(String, &s) }); n != 0 {
		t.Errorf("UniqElement of a string allocates %v times", n)
	}
	f := Value{Float: 12.5}
	if n := testing.AllocsPerRun(100, func() { buf = AppendUniqElement(buf[:0], Float64, &f) }); n != 0 {
		t.Errorf("AppendUniqElement into a buffer allocates %v times", n)
	}
}

func TestParseDimValue(t *testing.T) {
	tests := []struct {
		typ     Type
		text    string
		want    Value
		wantErr bool
	}{
		{String, "acme", Value{Str: "acme"}, false},
		{String, "", Value{Str: ""}, false},
		{String, "a:b,c", Value{Str: "a:b,c"}, false},
		{String, "007", Value{Str: "007"}, false},
		{Int64, "42", Value{Int: 42}, false},
		{Int64, "-7", Value{Int: -7}, false},
		{Int64, "007", Value{Int: 7}, false},
		{Int64, "+3", Value{Int: 3}, false},
		{Int64, "9223372036854775807", Value{Int: math.MaxInt64}, false},
		{Int64, "9223372036854775808", Value{}, true},
		{Int64, "4.5", Value{}, true},
		{Int64, "", Value{}, true},
		{Int64, "x", Value{}, true},
		{Bool, "true", Value{Int: 1}, false},
		{Bool, "false", Value{}, false},
		{Bool, "1", Value{Int: 1}, false},
		{Bool, "F", Value{}, false},
		{Bool, "yes", Value{}, true},
		{Float64, "1.5", Value{}, true}, // not a dimension type
		{Timestamp, "1", Value{}, true},
	}
	for _, tt := range tests {
		got, err := ParseDimValue(tt.typ, tt.text)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseDimValue(%s, %q) = %+v, %v; want %+v, error %v", tt.typ, tt.text, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if back, err := ParseDimValue(tt.typ, FormatDimValue(tt.typ, got)); err != nil || back != got {
				t.Errorf("%s %q: FormatDimValue does not read back: %+v, %v", tt.typ, tt.text, back, err)
			}
		}
	}
}

// FuzzParseDimValue: whatever a query sends, a value that parses formats
// to a text that parses back to the same value.
func FuzzParseDimValue(f *testing.F) {
	for _, s := range []string{"acme", "42", "-0", "+7", "true", "F", "", "9223372036854775808"} {
		f.Add(uint8(String), s)
		f.Add(uint8(Int64), s)
		f.Add(uint8(Bool), s)
	}
	f.Fuzz(func(t *testing.T, typ uint8, s string) {
		ty := Type(typ % uint8(Timestamp+1))
		v, err := ParseDimValue(ty, s)
		if err != nil {
			return
		}
		if ty == String && v.Str != s {
			t.Fatalf("string %q parsed as %q", s, v.Str)
		}
		back, err := ParseDimValue(ty, FormatDimValue(ty, v))
		if err != nil || back != v {
			t.Fatalf("%s %q: %+v formats to %q, which reads %+v, %v", ty, s, v, FormatDimValue(ty, v), back, err)
		}
	})
}
