package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func ordersSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema("orders", "orders", "ts", "order_id", []Field{
		{Name: "order_id", Type: String},
		{Name: "ts", Type: Timestamp},
		{Name: "tenant", Type: String},
		{Name: "qty", Type: Int64},
		{Name: "amount", Type: Float64},
		{Name: "paid", Type: Bool},
		{Name: "coupon", Type: String, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecodeValid(t *testing.T) {
	s := ordersSchema(t)
	ts := time.Date(2026, 11, 27, 10, 30, 15, 123456000, time.UTC)
	tests := []struct {
		name  string
		event string
		check func(t *testing.T, r *Row)
	}{
		{"all types", `{"order_id":"o1","ts":"2026-11-27T10:30:15.123456Z","tenant":"acme","qty":3,"amount":12.5,"paid":true,"coupon":"X"}`,
			func(t *testing.T, r *Row) {
				want := []Value{{Str: "o1"}, {Int: ts.UnixMicro()}, {Str: "acme"}, {Int: 3}, {Float: 12.5}, {Int: 1}, {Str: "X"}}
				for i, w := range want {
					if r.Values[i] != w {
						t.Errorf("field %s = %+v, want %+v", s.Fields[i].Name, r.Values[i], w)
					}
				}
			}},
		{"epoch ms time", `{"order_id":"o1","ts":1795775415123,"tenant":"a","qty":0,"amount":0,"paid":false}`,
			func(t *testing.T, r *Row) {
				if got := r.Values[1].Int; got != 1795775415123000 {
					t.Errorf("ts = %d", got)
				}
				if r.Values[5].Int != 0 {
					t.Errorf("paid = %d, want 0", r.Values[5].Int)
				}
			}},
		{"time zone offset", `{"order_id":"o1","ts":"2026-11-27T11:30:15.123456+01:00","tenant":"a","qty":1,"amount":1,"paid":true}`,
			func(t *testing.T, r *Row) {
				if got := s.EventTime(r); !got.Equal(ts) {
					t.Errorf("time = %v, want %v", got, ts)
				}
			}},
		{"optional absent", `{"order_id":"o1","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":true}`,
			func(t *testing.T, r *Row) {
				if !r.Values[6].Null {
					t.Errorf("coupon not null: %+v", r.Values[6])
				}
			}},
		{"optional null", `{"order_id":"o1","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":true,"coupon":null}`,
			func(t *testing.T, r *Row) {
				if !r.Values[6].Null {
					t.Errorf("coupon not null: %+v", r.Values[6])
				}
			}},
		{"unknown fields ignored, escapes decoded", `{"extra":[1,2],"order_id":"o\u00e9\n","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":-7,"amount":1e3,"paid":true}`,
			func(t *testing.T, r *Row) {
				if r.Values[0].Str != "oé\n" || r.Values[3].Int != -7 || r.Values[4].Float != 1000 {
					t.Errorf("got %+v", r.Values)
				}
			}},
		{"integer accepted as float", `{"order_id":"o1","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":42,"paid":true}`,
			func(t *testing.T, r *Row) {
				if r.Values[4].Float != 42 {
					t.Errorf("amount = %v", r.Values[4].Float)
				}
			}},
	}
	d := NewDecoder(s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Row
			if err := d.Decode([]byte(tt.event), &r); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.check(t, &r)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	s := ordersSchema(t)
	const ok = `"order_id":"o1","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":true`
	tests := []struct {
		name      string
		event     string
		field     string
		inMessage string
	}{
		{"not json", `{"order_id":`, "", "invalid JSON"},
		{"garbage", `\x00\x01garbage`, "", "invalid JSON"},
		{"array", `[1,2,3]`, "", "not a JSON object"},
		{"string instead of object", `"hello"`, "", "not a JSON object"},
		{"missing required", `{"ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":true}`, "order_id", "missing"},
		{"null required", `{"order_id":null,` + ok[len(`"order_id":"o1",`):] + `}`, "order_id", "null"},
		{"string as number", `{` + ok + `,"amount":"12.5"}`, "amount", "got string"},
		{"number as string", `{` + ok + `,"tenant":42}`, "tenant", "got number"},
		{"fractional int", `{` + ok + `,"qty":1.5}`, "qty", "not an integer"},
		{"int overflow", `{` + ok + `,"qty":99999999999999999999}`, "qty", "not an integer"},
		{"bool as string", `{` + ok + `,"paid":"yes"}`, "paid", "got string"},
		{"bad timestamp", `{` + ok + `,"ts":"27/11/2026"}`, "ts", "not RFC 3339"},
		{"timestamp as bool", `{` + ok + `,"ts":true}`, "ts", "got true"},
		{"epoch seconds too large", `{` + ok + `,"ts":1795775415123000000}`, "ts", "out of range"},
		{"negative epoch", `{` + ok + `,"ts":-5}`, "ts", "out of range"},
		{"fractional epoch", `{` + ok + `,"ts":1.5}`, "ts", "must be an integer"},
		{"optional wrong type", `{` + ok + `,"coupon":7}`, "coupon", "got number"},
		{"object as string", `{` + ok + `,"tenant":{"a":1}}`, "tenant", "got object"},
		{"invalid UTF-8 in a string", `{` + ok + `,"tenant":"t` + "\xff" + `07"}`, "tenant", `invalid UTF-8, want string: "\"t\xff07\""`},
		{"truncated UTF-8 sequence", `{` + ok + `,"order_id":"o` + "\xe2\x82" + `"}`, "order_id", "invalid UTF-8"},
		{"UTF-16 surrogate as raw bytes", `{` + ok + `,"tenant":"` + "\xed\xa0\x80" + `"}`, "tenant", "invalid UTF-8"},
		{"invalid UTF-8 in an optional string", `{` + ok + `,"coupon":"` + "\xc0\xaf" + `"}`, "coupon", "invalid UTF-8"},
	}
	d := NewDecoder(s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Row
			err := d.Decode([]byte(tt.event), &r)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want *DecodeError", err)
			}
			if de.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", de.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.inMessage) {
				t.Errorf("error %q does not contain %q", err, tt.inMessage)
			}
		})
	}
}

func TestDecodeErrorExcerptIsBounded(t *testing.T) {
	s := ordersSchema(t)
	long := strings.Repeat("x", 10000)
	err := NewDecoder(s).Decode([]byte(`{"order_id":"`+long+`","ts":7.5e300}`), &Row{})
	if err == nil {
		t.Fatal("want error")
	}
	if len(err.Error()) > 200 {
		t.Errorf("error is %d bytes long; excerpts must be bounded", len(err.Error()))
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic,
// whatever it accepts must satisfy the schema (required fields present),
// and its fast path (decodeFlat) must accept only what fastjson's path
// accepts, as the same values.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/events/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := ordersSchema(f)
	d := NewDecoder(s)
	// A decoder keeping two fields must judge every input alike and agree
	// on what it keeps: the speed layer uses one, the compactor the other.
	kept := []int{s.FieldIndex("tenant"), s.FieldIndex("amount"), s.TimeIndex()}
	fd := NewFieldDecoder(s, kept[:2])
	// And a borrowing decoder must decode every value as the full one does.
	bd := NewBorrowingDecoder(s)
	// The same bytes read with exact amounts (decimal fields).
	ms := moneySchema(f)
	md, mfd := NewDecoder(ms), NewFieldDecoder(ms, []int{ms.FieldIndex("amount")})
	f.Add([]byte(`{"order_id":"o1","ts":"2026-11-27T10:30:15Z","amount":"12.50","rate":1.5e-2}`))
	f.Add([]byte(`{"meta":{"k\u0065y":["a\"b",1e3,{"n":null}],"t":true},"order_id":"o1","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":false}`))
	f.Add([]byte(`{"order_id":"o\"1\u00fc","ts":"2026-11-27T10:30:15Z","tenant":"M\u00fcnchen \u0026 \ud83d\ude00","qty":1,"amount":1,"paid":false}`))
	f.Add([]byte(`{"order_id":"o1","ts":"2026-11-27T10:30:15Z","amount":9999999999999999.99,"rate":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodePaths(t, s, data)
		checkDecodePaths(t, ms, data)
		checkDecimalDecode(t, ms, md, mfd, data)
		var r, fr, br Row
		err, ferr, berr := d.Decode(data, &r), fd.Decode(data, &fr), bd.Decode(data, &br)
		if (err == nil) != (ferr == nil) || (err != nil && err.Error() != ferr.Error()) {
			t.Fatalf("full decoder says %v, field decoder says %v", err, ferr)
		}
		if (err == nil) != (berr == nil) || (err != nil && err.Error() != berr.Error()) {
			t.Fatalf("full decoder says %v, borrowing decoder says %v", err, berr)
		}
		if err == nil && !slices.Equal(r.Values, br.Values) {
			t.Fatalf("full decoder %+v, borrowing decoder %+v", r.Values, br.Values)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if len(r.Values) != len(s.Fields) {
			t.Fatalf("row has %d values for %d fields", len(r.Values), len(s.Fields))
		}
		for i, f := range s.Fields {
			if r.Values[i].Null && !f.Optional {
				t.Fatalf("required field %s is null", f.Name)
			}
			if f.Type == String && !utf8.ValidString(r.Values[i].Str) {
				t.Fatalf("field %s accepted as invalid UTF-8 %q", f.Name, r.Values[i].Str)
			}
		}
		for _, i := range kept {
			if r.Values[i] != fr.Values[i] {
				t.Fatalf("field %s: full decoder %+v, field decoder %+v", s.Fields[i].Name, r.Values[i], fr.Values[i])
			}
		}
		checkAgainstEncodingJSON(t, s, data, &r)
	})
}

// checkAgainstEncodingJSON compares an accepted event's values with what
// encoding/json reads from the same bytes, where it accepts them too: our
// decoder (fastjson, a fast path for timestamps) must read the same
// strings, numbers, bools and instants. Strings that are not valid UTF-8
// (raw bytes, lone surrogate escapes) are the one known difference:
// encoding/json replaces them with U+FFFD, ours keeps the bytes.
func checkAgainstEncodingJSON(t *testing.T, s *Schema, data []byte, r *Row) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil || dec.InputOffset() != int64(len(bytes.TrimRight(data, " \t\r\n"))) {
		return // encoding/json refuses it, or reads only a prefix
	}
	for i, f := range s.Fields {
		got := r.Values[i]
		jv, present := obj[f.Name]
		if !present || jv == nil {
			if !got.Null {
				t.Fatalf("field %s: encoding/json has no value, decoder %+v", f.Name, got)
			}
			continue
		}
		if got.Null {
			t.Fatalf("field %s: decoder null, encoding/json %v", f.Name, jv)
		}
		switch f.Type {
		case String:
			str, _ := jv.(string)
			if !utf8.ValidString(got.Str) || strings.ContainsRune(str, utf8.RuneError) {
				continue
			}
			if str != got.Str {
				t.Fatalf("field %s: decoder %q, encoding/json %q", f.Name, got.Str, str)
			}
		case Int64:
			n, err := jv.(json.Number).Int64()
			if err != nil || n != got.Int {
				t.Fatalf("field %s: decoder %d, encoding/json %v (%v)", f.Name, got.Int, jv, err)
			}
		case Float64:
			x, err := jv.(json.Number).Float64()
			if err != nil || x != got.Float {
				t.Fatalf("field %s: decoder %v, encoding/json %v (%v)", f.Name, got.Float, jv, err)
			}
		case Bool:
			if b, _ := jv.(bool); b != (got.Int == 1) || got.Int > 1 {
				t.Fatalf("field %s: decoder %d, encoding/json %v", f.Name, got.Int, jv)
			}
		case Timestamp:
			var us int64
			switch x := jv.(type) {
			case string:
				ts, err := time.Parse(time.RFC3339Nano, x)
				if err != nil {
					t.Fatalf("field %s: decoder accepts %q, time.Parse: %v", f.Name, x, err)
				}
				us = ts.UnixMicro()
			case json.Number:
				ms, err := x.Int64()
				if err != nil {
					t.Fatalf("field %s: decoder accepts %v as epoch ms: %v", f.Name, x, err)
				}
				us = ms * 1000
			}
			if us != got.Int {
				t.Fatalf("field %s: decoder %d µs, encoding/json + time.Parse %d (%v)", f.Name, got.Int, us, jv)
			}
		}
	}
}

// FuzzParseTimestamp holds the fast UTC path to time.Parse: whatever it
// accepts, time.Parse accepts as the same instant.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-11-27T10:30:15Z", "2026-11-27T10:30:15.123456789Z", "2024-02-29T23:59:59.5Z",
		"2026-02-29T10:30:00Z", "0000-01-01T00:00:00Z", "2026-11-27T10:30:15+02:00", "2026-11-27T10:30:15.Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		us, ok := parseUTC([]byte(s))
		if !ok {
			return
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("fast path accepts %q, time.Parse says %v", s, err)
		}
		if ts.Year() < 1 || ts.Year() > 9999 || ts.UnixMicro() != us {
			t.Fatalf("%q: fast path %d, time.Parse %d (year %d)", s, us, ts.UnixMicro(), ts.Year())
		}
	})
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Time
		reason string // "" when valid
	}{
		{"2026-11-27T10:30:15Z", time.Date(2026, 11, 27, 10, 30, 15, 0, time.UTC), ""},
		{"2026-11-27T10:30:15.123456789Z", time.Date(2026, 11, 27, 10, 30, 15, 123456000, time.UTC), ""},
		{"2026-11-27T10:30:15.1Z", time.Date(2026, 11, 27, 10, 30, 15, 100000000, time.UTC), ""},
		{"2024-02-29T00:00:00Z", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), ""},
		{"0001-01-01T00:00:00.000001Z", time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC), ""},
		{"9999-12-31T23:59:59.999999999Z", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), ""},
		// Left to time.Parse: offsets, a comma, ten fraction digits.
		{"2026-11-27T12:30:15+02:00", time.Date(2026, 11, 27, 10, 30, 15, 0, time.UTC), ""},
		{"2026-11-27T10:30:15,5Z", time.Date(2026, 11, 27, 10, 30, 15, 500000000, time.UTC), ""},
		{"2026-11-27T10:30:15.1234567891Z", time.Date(2026, 11, 27, 10, 30, 15, 123456000, time.UTC), ""},
		{"2026-02-29T10:30:00Z", time.Time{}, "not RFC 3339"},
		{"2026-11-27T24:00:00Z", time.Time{}, "not RFC 3339"},
		{"2026-11-27T10:60:00Z", time.Time{}, "not RFC 3339"},
		{"2026-11-27T10:30:60Z", time.Time{}, "not RFC 3339"},
		{"2026-13-01T10:30:00Z", time.Time{}, "not RFC 3339"},
		{"2026-11-27T10:30:15.Z", time.Time{}, "not RFC 3339"},
		{"2026-11-27t10:30:15Z", time.Time{}, "not RFC 3339"},
		{"2026-11-27T10:30:1xZ", time.Time{}, "not RFC 3339"},
		{"0000-01-01T00:00:00Z", time.Time{}, "out of range"},
	}
	for _, tt := range tests {
		us, reason := parseTimestamp([]byte(tt.in))
		if reason != tt.reason {
			t.Errorf("%q: reason %q, want %q", tt.in, reason, tt.reason)
			continue
		}
		if reason == "" && us != tt.want.UnixMicro() {
			t.Errorf("%q: %s, want %s", tt.in, time.UnixMicro(us).UTC(), tt.want)
		}
	}
}

// BenchmarkDecode decodes events whose ids differ, as real ones do (a
// single repeated event would flatter the string interning).
func BenchmarkDecode(b *testing.B) {
	s := ordersSchema(b)
	events := make([][]byte, 8192)
	size := 0
	for i := range events {
		events[i] = fmt.Appendf(nil, `{"order_id":"orders-1-%06d","ts":"2026-11-27T10:%02d:%02d.%03dZ","tenant":"tenant-%d","qty":%d,"amount":%d.%02d,"paid":%t,"coupon":"coupon-%d"}`,
			100000+i*7, i%60, i*7%60, i%1000, i%10, i%9+1, i*37%1000, i%100, i%3 == 0, i%5)
		size += len(events[i])
	}
	nested := make([][]byte, len(events))
	for i, e := range events {
		nested[i] = append([]byte(`{"meta":{"source":"checkout","v":2,"tags":["web","eu"]},`), e[1:]...)
	}
	escaped := make([][]byte, len(events))
	for i, e := range events {
		escaped[i] = bytes.Replace(e, []byte(`"tenant":"tenant-`), []byte(`"tenant":"M\u00fcnchen-`), 1)
	}
	for _, bc := range []struct {
		name   string
		dec    *Decoder
		events [][]byte
	}{
		{"all", NewDecoder(s), events},
		// What the speed layer keeps for a view on tenant with sum(amount).
		{"fields", NewFieldDecoder(s, []int{s.FieldIndex("tenant"), s.FieldIndex("amount")}), events},
		// What the compactor uses: it copies each row into its columns.
		{"borrow", NewBorrowingDecoder(s), events},
		// Events that carry an object under a key the schema lacks.
		{"nested", NewDecoder(s), nested},
		// Events as Python's json.dumps writes them: non-ASCII escaped.
		{"escaped", NewDecoder(s), escaped},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var r Row
			b.SetBytes(int64(size / len(events)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := bc.dec.Decode(bc.events[i%len(bc.events)], &r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// The decoder shares the strings of low-cardinality fields between events;
// whatever the cardinality, every event gets its own value.
func TestDecodeInternedStrings(t *testing.T) {
	s := ordersSchema(t)
	d := NewDecoder(s)
	tenant := s.FieldIndex("tenant")
	var r Row
	for i := range 5000 {
		for _, want := range []string{fmt.Sprintf("tenant-%d", i%7), fmt.Sprintf("t-%d", i), "", "x"} {
			ev := fmt.Appendf(nil, `{"order_id":"o-%d","ts":"2026-11-27T10:30:15Z","tenant":%q,"qty":1,"amount":1.5,"paid":true}`, i, want)
			if err := d.Decode(ev, &r); err != nil {
				t.Fatal(err)
			}
			if got := r.Values[tenant].Str; got != want {
				t.Fatalf("event %d: tenant %q, want %q", i, got, want)
			}
		}
	}
}
