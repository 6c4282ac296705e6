package schemas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, and
// whatever it accepts must satisfy the schema (required fields present).
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
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Row
		if err := d.Decode(data, &r); err != nil {
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
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	s := ordersSchema(b)
	event := []byte(`{"order_id":"orders-1-123456","ts":"2026-11-27T10:30:15.123Z","tenant":"tenant-3","qty":7,"amount":412.37,"paid":true,"coupon":"coupon-2"}`)
	d := NewDecoder(s)
	var r Row
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(event, &r); err != nil {
			b.Fatal(err)
		}
	}
}
