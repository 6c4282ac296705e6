package schemas

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// DecodeError says why one event could not be decoded. Field is empty when
// the event as a whole is wrong (not JSON, not an object).
type DecodeError struct {
	Field    string
	Expected string // the type wanted, or empty
	Reason   string // what was wrong
	Excerpt  string // the offending value, cut to a readable length
}

func (e *DecodeError) Error() string {
	var s string
	if e.Field != "" {
		s = fmt.Sprintf("field %q: ", e.Field)
	}
	s += e.Reason
	if e.Expected != "" {
		s += ", want " + e.Expected
	}
	if e.Excerpt != "" {
		s += ": " + e.Excerpt
	}
	return s
}

// maxExcerpt bounds how much of a bad value goes into an error, so a huge
// malformed record does not blow up logs or the dead-letter area's index.
const maxExcerpt = 64

func excerpt(b []byte) string {
	if len(b) > maxExcerpt {
		return strconv.Quote(string(b[:maxExcerpt])) + "…"
	}
	return strconv.Quote(string(b))
}

// Decoder decodes JSON events of one schema. It is not safe for concurrent
// use; give each goroutine its own.
type Decoder struct {
	schema *Schema
	parser fastjson.Parser
	seen   []bool
}

// NewDecoder returns a decoder for s.
func NewDecoder(s *Schema) *Decoder {
	return &Decoder{schema: s, seen: make([]bool, len(s.Fields))}
}

// Decode parses one JSON object into row, reusing row's storage. Fields not
// in the schema are ignored, so producers may add fields before the schema
// does. A missing or null required field is an error.
func (d *Decoder) Decode(data []byte, row *Row) error {
	v, err := d.parser.ParseBytes(data)
	if err != nil {
		return &DecodeError{Reason: "invalid JSON (" + err.Error() + ")", Excerpt: excerpt(data)}
	}
	obj, err := v.Object()
	if err != nil {
		return &DecodeError{Reason: "not a JSON object", Excerpt: excerpt(data)}
	}
	fields := d.schema.Fields
	if cap(row.Values) < len(fields) {
		row.Values = make([]Value, len(fields))
	}
	row.Values = row.Values[:len(fields)]
	for i := range d.seen {
		d.seen[i] = false
	}
	var firstErr error
	obj.Visit(func(key []byte, jv *fastjson.Value) {
		if firstErr != nil {
			return
		}
		i, ok := d.schema.index[string(key)]
		if !ok {
			return
		}
		d.seen[i] = true
		if err := decodeValue(&fields[i], jv, &row.Values[i]); err != nil {
			firstErr = err
		}
	})
	if firstErr != nil {
		return firstErr
	}
	for i := range fields {
		if d.seen[i] {
			continue
		}
		if !fields[i].Optional {
			return &DecodeError{Field: fields[i].Name, Reason: "missing", Expected: fields[i].Type.String()}
		}
		row.Values[i] = Value{Null: true}
	}
	return nil
}

func decodeValue(f *Field, jv *fastjson.Value, out *Value) error {
	*out = Value{}
	t := jv.Type()
	if t == fastjson.TypeNull {
		if f.Optional {
			out.Null = true
			return nil
		}
		return &DecodeError{Field: f.Name, Reason: "null", Expected: f.Type.String()}
	}
	bad := func(reason string) error {
		return &DecodeError{Field: f.Name, Reason: reason, Expected: f.Type.String(), Excerpt: excerpt(jv.MarshalTo(nil))}
	}
	switch f.Type {
	case String:
		if t != fastjson.TypeString {
			return bad("got " + t.String())
		}
		out.Str = string(jv.GetStringBytes())
	case Int64:
		if t != fastjson.TypeNumber {
			return bad("got " + t.String())
		}
		n, err := jv.Int64()
		if err != nil {
			return bad("not an integer in range")
		}
		out.Int = n
	case Float64:
		if t != fastjson.TypeNumber {
			return bad("got " + t.String())
		}
		x, err := jv.Float64()
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return bad("not a finite number")
		}
		out.Float = x
	case Bool:
		switch t {
		case fastjson.TypeTrue:
			out.Int = 1
		case fastjson.TypeFalse:
			out.Int = 0
		default:
			return bad("got " + t.String())
		}
	case Timestamp:
		switch t {
		case fastjson.TypeString:
			ts, err := time.Parse(time.RFC3339Nano, string(jv.GetStringBytes()))
			if err != nil {
				return bad("not RFC 3339")
			}
			if ts.Year() < 1 || ts.Year() > 9999 {
				return bad("out of range")
			}
			out.Int = ts.UnixMicro()
		case fastjson.TypeNumber:
			ms, err := jv.Int64()
			if err != nil {
				return bad("epoch milliseconds must be an integer")
			}
			if ms < minEpochMillis || ms > maxEpochMillis {
				return bad("epoch milliseconds out of range")
			}
			out.Int = ms * 1000
		default:
			return bad("got " + t.String())
		}
	default:
		return bad("unsupported type")
	}
	return nil
}

// Epoch-millisecond timestamps are accepted between 1970 and the end of 9999;
// anything else is far more likely a seconds/nanoseconds mix-up than data.
const (
	minEpochMillis = 0
	maxEpochMillis = 253402300799999
)
