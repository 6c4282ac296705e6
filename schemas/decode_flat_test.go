package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The fast path reads the events producers write; a fast path that never
// fires would pass every other test and only show in benchmarks.
func TestDecodeFlatTakesProducerEvents(t *testing.T) {
	s := ordersSchema(t)
	const ok = `"order_id":"o1","ts":"2026-11-27T10:30:15.123Z","tenant":"acme","qty":3,"amount":12.5,"paid":true`
	for _, ev := range []string{
		`{` + ok + `}`,
		`{` + ok + `,"coupon":"X"}`,
		`{` + ok + `,"coupon":null}`,
		` { "order_id" : "o1" ,` + "\n\t" + ok[len(`"order_id":"o1",`):] + "\r\n} \n",
		`{` + ok + `,"extra":"ignored","n":-0.5e-3,"b":false}`,
		`{"meta":{"source":"checkout","v":2,"tags":["a","b\"c"]},` + ok + `}`,
		`{"ts":1795775415123,"qty":-9223372036854775808,"amount":-1e308,"paid":false,"tenant":"ü€","order_id":""}`,
		`{` + ok + `,"amount":0,"qty":0}`,
	} {
		var r Row
		r.Values = make([]Value, len(s.Fields))
		if !NewDecoder(s).decodeFlat([]byte(ev), &r) {
			t.Errorf("decodeFlat refused %s", ev)
		}
	}
}

// Both paths read every event alike: decodeFlat accepts only what
// decodeTree accepts, as the same values, and leaves the rest to it. The
// table holds what decodeFlat must hand over, since fastjson reads it
// differently from strict JSON or reads more of it.
func TestDecodePathsAgree(t *testing.T) {
	s := ordersSchema(t)
	const ok = `"order_id":"o1","ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":true`
	tests := []struct {
		name  string
		event string
		flat  bool // decodeFlat accepts it
	}{
		{"plain", `{` + ok + `}`, true},
		{"empty object", `{}`, false}, // required fields missing
		{"escape in a string", `{` + ok + `,"tenant":"a\"b"}`, true},
		{"every simple escape", `{` + ok + `,"tenant":"\"\\\/\b\f\n\r\tx"}`, true},
		{"escapes and plain runs", `{` + ok + `,"tenant":"ab\u00fccd\u20ac\u0000e","order_id":"x\/y"}`, true},
		{"escaped non-ASCII next to raw UTF-8", `{` + ok + `,"tenant":"ü\u00fc€"}`, true},
		{"surrogate pair", `{` + ok + `,"tenant":"\ud83d\ude00 \uD83D\uDE00"}`, true},
		{"lone surrogate", `{` + ok + `,"tenant":"a\ud800b"}`, false},
		{"lone surrogate at the end", `{` + ok + `,"tenant":"a\ud800"}`, false},
		{"high surrogate then a plain escape", `{` + ok + `,"tenant":"\ud83d\u0041"}`, true},
		{"low surrogate first", `{` + ok + `,"tenant":"\ude00\ud83d"}`, true},
		{"surrogate then a short escape", `{` + ok + `,"tenant":"\ud83d\u00"}`, false},
		{"surrogate then another escape", `{` + ok + `,"tenant":"\ud83d\n"}`, false},
		{"unknown escape", `{` + ok + `,"tenant":"\x41"}`, false},
		{"short unicode escape in a field", `{` + ok + `,"tenant":"\u00f"}`, false},
		{"non-hex unicode escape", `{` + ok + `,"tenant":"\u00fg"}`, false},
		{"escape at the end", `{` + ok + `,"tenant":"a\`, false},
		{"control character after an escape", `{` + ok + `,"tenant":"\n` + "\x01" + `"}`, false},
		{"escaped quote then invalid UTF-8", `{` + ok + `,"tenant":"\"` + "\xff" + `"}`, false},
		{"unicode escape", `{` + ok + `,"tenant":"\u00fc"}`, true},
		{"escape in a key", `{` + ok + `,"ten\u0061nt":"b"}`, false},
		{"raw control character", `{` + ok + `,"tenant":"a` + "\x01" + `"}`, false},
		{"nested unknown key", `{` + ok + `,"extra":{"a":[1,2]}}`, true},
		{"array value", `{` + ok + `,"extra":[1]}`, true},
		{"nested before the fields", `{"meta":{"src":"app","tags":["a","b"],"n":null,"ok":true,"x":-1.5e3},` + ok + `}`, true},
		{"empty nested", `{` + ok + `,"a":{},"b":[],"c":[{}, [ ]]}`, true},
		{"escapes in an unknown key's string", `{` + ok + `,"x":"a\"b\\c\/\b\f\n\r\t\u00fC"}`, true},
		{"escapes in a nested key", `{` + ok + `,"x":{"k\u0065y":1}}`, true},
		{"undefined escape in an unknown key's string", `{` + ok + `,"x":"\x41"}`, false},
		{"short unicode escape", `{` + ok + `,"x":"\u12"}`, false},
		{"control character nested", `{` + ok + `,"x":["a` + "\x01" + `"]}`, false},
		{"nested trailing comma", `{` + ok + `,"x":[1,]}`, false},
		{"nested missing colon", `{` + ok + `,"x":{"a" 1}}`, false},
		{"nested leading zero", `{` + ok + `,"x":[01]}`, false},
		{"nested lax literal", `{` + ok + `,"x":[tru]}`, false},
		{"unterminated nested", `{` + ok + `,"x":{"a":[1,2}`, false},
		{"mismatched brackets", `{` + ok + `,"x":[1}`, false},
		{"64 levels", `{` + ok + `,"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, true},
		{"65 levels", `{` + ok + `,"x":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, false},
		{"301 levels", `{` + ok + `,"x":` + strings.Repeat("[", 301) + strings.Repeat("]", 301) + `}`, false},
		{"object for a schema field", `{` + ok + `,"tenant":{"a":1}}`, false},
		{"escaped string for a schema field", `{` + ok + `,"tenant":"a\nb"}`, true},
		{"leading zero", `{` + ok + `,"qty":01}`, false},
		{"trailing dot", `{` + ok + `,"amount":1.}`, false},
		{"leading dot", `{` + ok + `,"amount":.5}`, false},
		{"plus sign", `{` + ok + `,"amount":+1}`, false},
		{"bare minus", `{` + ok + `,"amount":-}`, false},
		{"exponent without digits", `{` + ok + `,"amount":1e}`, false},
		{"two dots", `{` + ok + `,"amount":1.5.3}`, false},
		{"number then sign", `{` + ok + `,"amount":1-2}`, false},
		{"infinity", `{` + ok + `,"amount":Infinity}`, false},
		{"nan", `{` + ok + `,"amount":nan}`, false},
		{"int64 overflow", `{` + ok + `,"qty":9223372036854775808}`, false},
		{"int64 limit", `{` + ok + `,"qty":9223372036854775807}`, true},
		{"float overflow", `{` + ok + `,"amount":1e309}`, false},
		{"float near the limit", `{` + ok + `,"amount":1.7976931348623157e308}`, true},
		{"exponent forms", `{` + ok + `,"amount":-0.0E+00}`, true},
		{"duplicate key, last wins", `{` + ok + `,"tenant":"b","tenant":"c"}`, true},
		{"duplicate key, first bad", `{` + ok + `,"qty":"x","qty":2}`, false},
		{"truex", `{` + ok + `,"paid":truex}`, false},
		{"nul literal", `{` + ok + `,"coupon":nul}`, false},
		{"trailing comma", `{` + ok + `,}`, false},
		{"missing colon", `{"order_id" "o1"}`, false},
		{"trailing garbage", `{` + ok + `}x`, false},
		{"two objects", `{` + ok + `}{}`, false},
		{"unterminated string", `{"order_id":"o1`, false},
		{"not an object", `"x"`, false},
		{"vertical tab is not space", "{\v" + ok + `}`, false},
		{"invalid UTF-8", `{` + ok + `,"tenant":"` + "\xff" + `"}`, false},
		{"invalid UTF-8 in an unknown key's value", `{` + ok + `,"x":"` + "\xff" + `"}`, true},
		{"null required", `{` + ok + `,"tenant":null}`, false},
		{"bad timestamp", `{` + ok + `,"ts":"2026-11-27 10:30:15"}`, false},
		{"offset timestamp", `{` + ok + `,"ts":"2026-11-27T11:30:15+01:00"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if flat := checkDecodePaths(t, s, []byte(tt.event)); flat != tt.flat {
				t.Errorf("decodeFlat accepted=%v, want %v", flat, tt.flat)
			}
		})
	}
}

// checkDecodePaths decodes data with each path on its own, through each
// kind of decoder, and fails if decodeFlat accepts what decodeTree does
// not, or reads other values, or if Decode answers otherwise than
// decodeTree where decodeFlat refused. It reports whether decodeFlat
// accepted data.
func checkDecodePaths(t *testing.T, s *Schema, data []byte) (flatAccepted bool) {
	t.Helper()
	fields := []int{0} // and amount, where the schema has one
	if i := s.FieldIndex("amount"); i >= 0 {
		fields = append(fields, i)
	}
	for _, mk := range []func() *Decoder{
		func() *Decoder { return NewDecoder(s) },
		func() *Decoder { return NewFieldDecoder(s, fields) },
		func() *Decoder { return NewBorrowingDecoder(s) },
	} {
		flat, tree := Row{Values: make([]Value, len(s.Fields))}, Row{Values: make([]Value, len(s.Fields))}
		fd, td := mk(), mk()
		ok := fd.decodeFlat(data, &flat)
		terr := td.decodeTree(data, &tree)
		flatAccepted = ok
		if !ok {
			// Decode then answers as decodeTree, error text included.
			var r Row
			if err := fd.Decode(data, &r); fmt.Sprint(err) != fmt.Sprint(terr) {
				t.Fatalf("Decode says %v, decodeTree %v", err, terr)
			}
			continue
		}
		if terr != nil {
			var de *DecodeError
			if !errors.As(terr, &de) {
				t.Fatalf("decodeTree error of type %T", terr)
			}
			t.Fatalf("decodeFlat accepted %q, decodeTree refused it: %v", data, terr)
		}
		if !slices.Equal(flat.Values, tree.Values) {
			t.Fatalf("%q:\ndecodeFlat %+v\ndecodeTree %+v", data, flat.Values, tree.Values)
		}
	}
	return flatAccepted
}

// One event with a huge escaped string is decoded on the fast path, and its
// buffer does not stay with the decoder: the next event drops it.
func TestDecodeFlatDropsAHugeEscapeBuffer(t *testing.T) {
	s := ordersSchema(t)
	const ok = `"order_id":"o1","ts":"2026-11-27T10:30:15Z","qty":1,"amount":1,"paid":true`
	huge := strings.Repeat(`\u00fc`, 200_000) // 1.2 MB escaped, 400 KB decoded
	d := NewDecoder(s)
	var r Row
	r.Values = make([]Value, len(s.Fields))
	if !d.decodeFlat([]byte(`{`+ok+`,"tenant":"`+huge+`"}`), &r) {
		t.Fatal("decodeFlat refused the escaped event")
	}
	if got := r.Values[s.FieldIndex("tenant")].Str; got != strings.Repeat("ü", 200_000) {
		t.Fatalf("tenant decoded to %d bytes", len(got))
	}
	if !d.decodeFlat([]byte(`{`+ok+`,"tenant":"a"}`), &r) {
		t.Fatal("decodeFlat refused a plain event")
	}
	if c := cap(d.esc); c > maxKeptEsc {
		t.Errorf("the decoder keeps a %d-byte unescape buffer after a plain event; bound %d", c, maxKeptEsc)
	}
}
