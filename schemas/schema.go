package schemas

import (
	"fmt"
	"strings"
	"time"
)

// Type is the type of one schema field. Its low byte is the kind (String,
// Int64, ...); a decimal also carries its precision and scale (see
// DecimalType), so a Type alone says how to parse, store and print a
// value. Compare a Type with the kind constants only for the kinds that
// carry nothing else; a decimal is recognised by t.Kind() == Decimal.
type Type uint32

const (
	TypeInvalid Type = iota
	String
	Int64
	Float64
	Bool
	Timestamp
	// Decimal is the kind of decimal(P,S) types: exact numbers of at most
	// P digits, S of them after the point, held as integers scaled by
	// 10^S (Value.Int). Make one with DecimalType.
	Decimal
)

var typeNames = [...]string{
	TypeInvalid: "invalid",
	String:      "string",
	Int64:       "int64",
	Float64:     "float64",
	Bool:        "bool",
	Timestamp:   "timestamp",
	Decimal:     "decimal",
}

// Kind is the type without its parameters: Decimal for every decimal(P,S),
// the type itself for the others.
func (t Type) Kind() Type { return t & 0xff }

func (t Type) String() string {
	k := t.Kind()
	switch {
	case k == Decimal:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision(), t.Scale())
	case t == k && int(k) < len(typeNames):
		return typeNames[k]
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// ParseType maps a config type name to a Type: string, int64, float64,
// bool, timestamp or decimal(P,S).
func ParseType(s string) (Type, error) {
	if strings.HasPrefix(s, "decimal") {
		return parseDecimalType(s)
	}
	for t, name := range typeNames {
		if t != int(TypeInvalid) && Type(t) != Decimal && name == s {
			return Type(t), nil
		}
	}
	return TypeInvalid, fmt.Errorf("unknown type %q (want string, int64, float64, bool, timestamp or decimal(P,S))", s)
}

// Numeric reports whether sum, min and max are defined on the type.
func (t Type) Numeric() bool { return t == Int64 || t == Float64 || t.Kind() == Decimal }

// Field is one field of a schema, in declaration order.
type Field struct {
	Name     string
	Type     Type
	Optional bool
}

// Schema describes the events of one Kafka topic.
type Schema struct {
	Name   string
	Topic  string
	Time   string // name of the event-time field; always a Timestamp field
	ID     string // optional unique-id field: exact dedup in batch, windowed in speed (SameEvent)
	Fields []Field
	// Retention is how long raw files and dead letters are kept; 0 = forever.
	Retention time.Duration
	// MaxFuture is how far ahead of the wall clock an event time may be
	// (see Admit); 0 means DefaultMaxFuture.
	MaxFuture time.Duration
	// DedupWindow is how long, in event time, the speed layer remembers
	// the ids it applied to skip their copies (see SameEvent); 0 is off.
	DedupWindow time.Duration

	index   map[string]int
	timeIdx int // position of Time, cached: the hot paths ask per event
}

// NewSchema builds a schema and its field index. It checks only what the
// decoder relies on; the config package reports user errors with line numbers.
func NewSchema(name, topic, timeField, idField string, fields []Field) (*Schema, error) {
	s := &Schema{Name: name, Topic: topic, Time: timeField, ID: idField, Fields: fields, index: make(map[string]int, len(fields))}
	for i, f := range fields {
		if _, dup := s.index[f.Name]; dup {
			return nil, fmt.Errorf("schema %s: duplicate field %q", name, f.Name)
		}
		if f.Type == TypeInvalid {
			return nil, fmt.Errorf("schema %s: field %q has no type", name, f.Name)
		}
		s.index[f.Name] = i
	}
	ti, ok := s.index[timeField]
	if !ok {
		return nil, fmt.Errorf("schema %s: time field %q is not a field", name, timeField)
	}
	if fields[ti].Type != Timestamp || fields[ti].Optional {
		return nil, fmt.Errorf("schema %s: time field %q must be a required timestamp", name, timeField)
	}
	s.timeIdx = ti
	if idField != "" {
		ii, ok := s.index[idField]
		if !ok {
			return nil, fmt.Errorf("schema %s: id field %q is not a field", name, idField)
		}
		if fields[ii].Optional {
			return nil, fmt.Errorf("schema %s: id field %q must be required", name, idField)
		}
	}
	return s, nil
}

// FieldIndex returns the position of a field in Fields, or -1.
func (s *Schema) FieldIndex(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// TimeIndex is the position of the event-time field.
func (s *Schema) TimeIndex() int { return s.timeIdx }

// Field returns the named field.
func (s *Schema) Field(name string) (Field, bool) {
	i, ok := s.index[name]
	if !ok {
		return Field{}, false
	}
	return s.Fields[i], true
}

// Value is one decoded field value. Which member holds it depends on the
// field's Type: Str for String; Int for Int64, Bool (0 or 1), Timestamp
// (Unix microseconds, UTC) and Decimal (the value times 10^scale, exactly);
// Float for Float64. Null is set only for an
// optional field that was absent or null.
type Value struct {
	Str   string
	Int   int64
	Float float64
	Null  bool
}

// Row is one decoded event: Values in schema field order.
type Row struct {
	Values []Value
}

// TimeMicros returns the event time of a row of schema s, in Unix microseconds.
func (s *Schema) TimeMicros(r *Row) int64 { return r.Values[s.timeIdx].Int }

// EventTime returns the event time of a row of schema s.
func (s *Schema) EventTime(r *Row) time.Time { return time.UnixMicro(s.TimeMicros(r)).UTC() }
