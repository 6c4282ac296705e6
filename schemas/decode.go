package schemas

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"
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
	// keep[i]: field i is converted into the row; the others are checked
	// as fully (so every layer agrees on what is malformed) but their
	// values are left zero. nil keeps every field.
	keep []bool
	// guess[k] is the field the k-th key of the last event named.
	// Producers write keys in one order, so one string compare usually
	// replaces a map lookup.
	guess  []int
	intern []internCache // per field; used for String fields
	// borrow: String values point into the parser's buffer instead of
	// being allocated (see NewBorrowingDecoder).
	borrow bool
	num    []byte // scratch: a decimal number's text
	// esc holds the event's unescaped strings (decodeFlat); a borrowing
	// decoder's values may point into it until the next Decode.
	esc []byte
}

// NewDecoder returns a decoder for s that converts every field.
func NewDecoder(s *Schema) *Decoder {
	return &Decoder{schema: s, seen: make([]bool, len(s.Fields)), intern: make([]internCache, len(s.Fields))}
}

// NewFieldDecoder returns a decoder for s that converts only the fields at
// the given positions (the event-time field always). It rejects exactly the
// events NewDecoder's rejects, so a consumer that needs a few fields (the
// speed layer) drops the same malformed records as one that needs all (the
// compactor), at less cost.
func NewFieldDecoder(s *Schema, fields []int) *Decoder {
	d := NewDecoder(s)
	d.keep = make([]bool, len(s.Fields))
	d.keep[s.TimeIndex()] = true
	for _, i := range fields {
		d.keep[i] = true
	}
	return d
}

// NewBorrowingDecoder returns a decoder for s whose String values are only
// valid until its next Decode, and while the bytes given to Decode stay
// unchanged: they point into those bytes (decodeFlat) or into the
// decoder's own buffer (decodeTree). For a consumer that copies what it
// keeps of each row at once (the compactor's column buffers), it spares an
// allocation per string and event.
func NewBorrowingDecoder(s *Schema) *Decoder {
	d := NewDecoder(s)
	d.borrow = true
	return d
}

// Decode parses one JSON object into row, reusing row's storage. Fields not
// in the schema are ignored, so producers may add fields before the schema
// does. A missing or null required field is an error.
func (d *Decoder) Decode(data []byte, row *Row) error {
	fields := d.schema.Fields
	if cap(row.Values) < len(fields) {
		row.Values = make([]Value, len(fields))
	}
	row.Values = row.Values[:len(fields)]
	if d.decodeFlat(data, row) {
		return nil
	}
	return d.decodeTree(data, row)
}

// decodeTree is Decode through fastjson's parse tree: the whole of JSON as
// fastjson reads it, and every error's wording. decodeFlat hands it every
// event it does not accept.
func (d *Decoder) decodeTree(data []byte, row *Row) error {
	v, err := d.parser.ParseBytes(data)
	if err != nil {
		return &DecodeError{Reason: "invalid JSON (" + err.Error() + ")", Excerpt: excerpt(data)}
	}
	obj, err := v.Object()
	if err != nil {
		return &DecodeError{Reason: "not a JSON object", Excerpt: excerpt(data)}
	}
	clear(d.seen)
	var firstErr error
	k := 0
	obj.Visit(func(key []byte, jv *fastjson.Value) {
		i := d.field(k, key)
		k++
		if i < 0 || firstErr != nil {
			return
		}
		d.seen[i] = true
		if err := d.decodeValue(i, jv, &row.Values[i]); err != nil {
			firstErr = err
		}
	})
	if firstErr != nil {
		return firstErr
	}
	return d.fillMissing(row)
}

// fillMissing sets the fields no key named to null, or fails on the first
// required one.
func (d *Decoder) fillMissing(row *Row) error {
	fields := d.schema.Fields
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

// decodeFlat is Decode's fast path, for events as producers write them: one
// object whose keys hold no escape, whose strings hold no control character
// and only the escapes unescape decodes, whose numbers follow JSON's grammar
// to the letter, and whose nested values, if any, belong to keys the schema
// does not have (they are skipped, see skipValue). It reads such an event in
// one pass over its bytes, with no parse tree and no copy but of escaped
// strings. It reports false for anything else, and for any event with an
// error; decodeTree then reads the event again and decides, so the rules
// and the error texts stay fastjson's and decodeValue's. Whatever it
// accepts, fastjson reads as the same values: the same scalars, converted
// by the same code (convert), from the same text. FuzzDecode holds the two
// paths to that.
func (d *Decoder) decodeFlat(data []byte, row *Row) bool {
	clear(d.seen)
	d.esc = d.esc[:0]
	if cap(d.esc) > maxKeptEsc {
		d.esc = nil // one huge escaped string does not stay with the decoder
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data) && d.fillMissing(row) == nil
	}
	for k := 0; ; k++ {
		if i >= len(data) || data[i] != '"' {
			return false
		}
		end, _ := scanString(data, i+1)
		if end < 0 {
			return false
		}
		key := data[i+1 : end]
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return false
		}
		f := d.field(k, key)
		if f < 0 {
			// A key the schema does not have: its value only has
			// to be JSON, nested or escaped as it likes.
			if i = skipValue(data, i, 0); i < 0 {
				return false
			}
		} else {
			var t fastjson.Type
			var text []byte
			ascii := false
			switch c := data[i]; {
			case c == '"':
				var end int
				end, ascii = scanString(data, i+1)
				if end < 0 {
					// Escapes (Python's json.dumps writes every
					// non-ASCII character as \uXXXX, Go's
					// encoding/json <, > and &): decoded into the
					// decoder's buffer.
					if end, text = d.unescaped(data, i+1); end < 0 {
						return false
					}
					t, i = fastjson.TypeString, end
					break
				}
				t, text, i = fastjson.TypeString, data[i+1:end], end+1
			case c == '-' || c >= '0' && c <= '9':
				end := scanNumber(data, i)
				if end < 0 {
					return false
				}
				t, text, i = fastjson.TypeNumber, data[i:end], end
			case c == 't' && hasWord(data[i:], "true"):
				t, i = fastjson.TypeTrue, i+4
			case c == 'f' && hasWord(data[i:], "false"):
				t, i = fastjson.TypeFalse, i+5
			case c == 'n' && hasWord(data[i:], "null"):
				t, i = fastjson.TypeNull, i+4
			default:
				return false // nested (a wrong type), or not JSON: decodeTree's to judge
			}
			d.seen[f] = true
			if t == fastjson.TypeNull {
				if !d.schema.Fields[f].Optional {
					return false
				}
				row.Values[f] = Value{Null: true}
			} else if d.convert(f, t, text, ascii, &row.Values[f]) != "" {
				return false
			}
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data) && d.fillMissing(row) == nil
		default:
			return false
		}
	}
}

// skipSpace returns the position of the first byte at or after i that is
// not JSON whitespace (the four bytes fastjson skips too).
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the position of the quote that ends the string whose
// first content byte is at i, or -1 if the string holds an escape or a
// control character or does not end: decodeFlat then tries unescape, which
// leaves control characters to fastjson (which lets them through). ascii reports
// that no byte was above 0x7f, so the string is valid UTF-8 as it is. It
// looks at eight bytes at a time while they are plain ASCII.
func scanString(b []byte, i int) (end int, ascii bool) {
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// A byte's high bit is set in m if it is a quote, a backslash,
		// below 0x20 or non-ASCII. (x-0x01…)&^x&0x80… flags the zero
		// bytes of x; a borrow can flag a byte above a flagged one
		// too, never one below, so the lowest flag is exact.
		m := (hasZero(w^(lsb*'"')) | hasZero(w^(lsb*'\\')) | (w-lsb*0x20) & ^w | w) & msb
		if m != 0 {
			i += bits.TrailingZeros64(m) / 8
			break
		}
	}
	ascii = true
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i, ascii
		case c == '\\' || c < 0x20:
			return -1, false
		case c >= 0x80:
			ascii = false
		}
	}
	return -1, false
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func hasZero(x uint64) uint64 { return (x - lsb) & ^x }

// maxKeptEsc bounds the unescape buffer a decoder keeps between events.
const maxKeptEsc = 64 << 10

// unescaped decodes the string whose first content byte is at i into the
// decoder's buffer (see unescape) and returns the position after it and
// its content there.
func (d *Decoder) unescaped(data []byte, i int) (int, []byte) {
	at := len(d.esc)
	i, d.esc = unescape(data, i, d.esc)
	if i < 0 {
		return -1, nil
	}
	return i, d.esc[at:]
}

// unescape appends the content of the string whose first content byte is
// at i to dst with its escapes decoded, as fastjson decodes them, and
// returns the position after the closing quote. It returns -1 for a string
// that holds a control character, an escape fastjson keeps as written (an
// unknown one, a short or malformed \u, a UTF-16 surrogate with no \u
// after it), or that does not end: decodeTree takes those.
func unescape(b []byte, i int, dst []byte) (int, []byte) {
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, dst
		case c < 0x20:
			return -1, dst
		case c != '\\':
			j := i + 1
			for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
				j++
			}
			dst = append(dst, b[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(b) {
			return -1, dst
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
				return -1, dst
			}
			r := hex4(b[i+2 : i+6])
			if !utf16.IsSurrogate(r) {
				dst = utf8.AppendRune(dst, r)
				i += 6
				continue
			}
			// As fastjson reads a surrogate: with another \uXXXX
			// after it, the two are one UTF-16 pair (U+FFFD if they
			// do not make one, an emoji if they do); alone, it is
			// kept as written, which is decodeTree's to do.
			if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' || !isHex4(b[i+8:i+12]) {
				return -1, dst
			}
			dst = utf8.AppendRune(dst, utf16.DecodeRune(r, hex4(b[i+8:i+12])))
			i += 12
			continue
		default:
			return -1, dst
		}
		i += 2
	}
	return -1, dst
}

// hex4 is the value of four hex digits (checked by isHex4).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// scanNumber returns the end of the number starting at i if it follows
// JSON's grammar exactly (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?),
// or -1. fastjson's number text runs over every byte of 0-9.eE+-; since
// decodeFlat wants whitespace, ',' or '}' after a value, a number it
// accepts ends where fastjson's does.
func scanNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// hasWord reports whether b starts with the literal w.
func hasWord(b []byte, w string) bool {
	return len(b) >= len(w) && string(b[:len(w)]) == w
}

// maxSkipDepth bounds how deep skipValue follows nesting, well below
// fastjson's own limit (300), so whatever it skips fastjson parses too.
const maxSkipDepth = 64

// skipValue returns the end of the JSON value at i, one decodeFlat does not
// convert (an unknown key's), or -1. It takes strict JSON only: escapes as
// JSON defines them, numbers in its grammar, whitespace, commas and colons
// where JSON has them, at most maxSkipDepth levels. fastjson accepts all of
// that (it is laxer: it does not look into escapes, or lets raw control
// characters through), so an event decodeFlat accepts is one fastjson
// accepts; anything else goes to decodeTree.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i+1)
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	case c == 't' && hasWord(b[i:], "true"):
		return i + 4
	case c == 'f' && hasWord(b[i:], "false"):
		return i + 5
	case c == 'n' && hasWord(b[i:], "null"):
		return i + 4
	case c == '{' || c == '[':
		if depth >= maxSkipDepth {
			return -1
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = skipString(b, i+1); i < 0 {
					return -1
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case closer:
				return i + 1
			default:
				return -1
			}
		}
	}
	return -1
}

// skipString returns the position after the quote that ends the string
// whose first content byte is at i, or -1 if it holds a control character,
// an escape JSON does not define, or does not end.
func skipString(b []byte, i int) int {
	for i < len(b) {
		end, _ := scanString(b, i)
		if end >= 0 {
			return end + 1
		}
		// Stopped at a backslash or a control character (or the end).
		for i < len(b) && b[i] != '\\' && b[i] >= 0x20 && b[i] != '"' {
			i++
		}
		if i >= len(b) || b[i] != '\\' {
			return -1
		}
		if i+1 >= len(b) {
			return -1
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
				return -1
			}
			i += 6
		default:
			return -1
		}
	}
	return -1
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// field returns the position of the k-th key's field, or -1 if the key is
// not in the schema.
func (d *Decoder) field(k int, key []byte) int {
	if k < len(d.guess) {
		if g := d.guess[k]; g >= 0 && d.schema.Fields[g].Name == string(key) {
			return g
		}
	}
	i, ok := d.schema.index[string(key)]
	if !ok {
		i = -1
	}
	if k < len(d.guess) {
		d.guess[k] = i
	} else if k < 4*len(d.schema.Fields) { // bounded: events may carry many unknown keys
		for len(d.guess) < k {
			d.guess = append(d.guess, -1)
		}
		d.guess = append(d.guess, i)
	}
	return i
}

// internCache shares the strings of low-cardinality fields (tenants,
// countries) between events instead of allocating one per event. It is
// direct-mapped on a cheap hash of a few bytes: a hit costs one compare, a
// miss (an id field, a collision) one allocation as without the cache.
type internCache [256]string

func (c *internCache) get(b []byte) string {
	n := len(b)
	if n == 0 {
		return ""
	}
	h := (uint(n)*151 + uint(b[n-1])*31 + uint(b[n/2])*7 + uint(b[0])) & 255
	if s := c[h]; s == string(b) {
		return s
	}
	s := string(b)
	c[h] = s
	return s
}

// decodeValue checks one value of decodeTree's against field i's type and,
// if the decoder keeps the field, converts it into out.
func (d *Decoder) decodeValue(i int, jv *fastjson.Value, out *Value) error {
	f := &d.schema.Fields[i]
	t := jv.Type()
	if t == fastjson.TypeNull {
		if f.Optional {
			*out = Value{Null: true}
			return nil
		}
		*out = Value{}
		return &DecodeError{Field: f.Name, Reason: "null", Expected: f.Type.String()}
	}
	var text []byte
	switch t {
	case fastjson.TypeString:
		text = jv.GetStringBytes()
	case fastjson.TypeNumber:
		d.num = jv.MarshalTo(d.num[:0]) // a number's text as the event has it
		text = d.num
	}
	if reason := d.convert(i, t, text, false, out); reason != "" {
		return &DecodeError{Field: f.Name, Reason: reason, Expected: f.Type.String(), Excerpt: excerpt(jv.MarshalTo(nil))}
	}
	return nil
}

// convert checks one non-null value against field i's type and, if the
// decoder keeps the field, converts it into out; on failure it returns the
// reason. text is a string's content (unescaped) or a number's text; ascii
// says the caller saw every byte of it below 0x80. Both decode paths
// convert through it, so they agree value for value.
func (d *Decoder) convert(i int, t fastjson.Type, text []byte, ascii bool, out *Value) string {
	f := &d.schema.Fields[i]
	keep := d.keep == nil || d.keep[i]
	*out = Value{}
	switch f.Type.Kind() {
	case String:
		if t != fastjson.TypeString {
			return "got " + t.String()
		}
		// Checked whether kept or not, so every decoder rejects alike:
		// invalid UTF-8 would reach Parquet (whose strings are UTF-8) and
		// every answer. \u escapes always decode to valid UTF-8.
		if !ascii && !utf8.Valid(text) {
			return "invalid UTF-8"
		}
		switch {
		case !keep:
		case d.borrow:
			out.Str = borrowString(text)
		default:
			out.Str = d.intern[i].get(text)
		}
	case Int64:
		if t != fastjson.TypeNumber {
			return "got " + t.String()
		}
		n, err := fastfloat.ParseInt64(borrowString(text))
		if err != nil {
			return "not an integer in range"
		}
		out.Int = n
	case Float64:
		if t != fastjson.TypeNumber {
			return "got " + t.String()
		}
		x, err := fastfloat.Parse(borrowString(text))
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return "not a finite number"
		}
		out.Float = x
	case Bool:
		switch t {
		case fastjson.TypeTrue:
			out.Int = 1
		case fastjson.TypeFalse:
			out.Int = 0
		default:
			return "got " + t.String()
		}
	case Timestamp:
		switch t {
		case fastjson.TypeString:
			us, err := parseTimestamp(text)
			if err != "" {
				return err
			}
			out.Int = us
		case fastjson.TypeNumber:
			ms, err := fastfloat.ParseInt64(borrowString(text))
			if err != nil {
				return "epoch milliseconds must be an integer"
			}
			if ms < minEpochMillis || ms > maxEpochMillis {
				return "epoch milliseconds out of range"
			}
			out.Int = ms * 1000
		default:
			return "got " + t.String()
		}
	case Decimal:
		// The digits themselves, never a float64: a number's text as
		// the event has it, or a string holding the same text (what
		// producers that keep money away from floats send).
		if t != fastjson.TypeNumber && t != fastjson.TypeString {
			return "got " + t.String()
		}
		n, err := ParseDecimal(text, f.Type)
		if err != nil {
			return err.Error()
		}
		out.Int = n
	default:
		return "unsupported type"
	}
	return ""
}

// parseTimestamp reads an RFC 3339 time as Unix microseconds; on failure
// it returns the reason. The common UTC form ("2026-11-27T10:30:15.123Z")
// takes a fast path: time.Parse costs more than the rest of an event's
// decoding, and producers almost always write this form.
func parseTimestamp(b []byte) (int64, string) {
	if us, ok := parseUTC(b); ok {
		return us, ""
	}
	ts, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, "not RFC 3339"
	}
	if ts.Year() < 1 || ts.Year() > 9999 {
		return 0, "out of range"
	}
	return ts.UnixMicro(), ""
}

// parseUTC parses exactly YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z with every part in
// range; anything else (offsets, 10+ fraction digits, year 0, errors) is
// left to time.Parse. FuzzParseTimestamp holds it to time.Parse's answers.
func parseUTC(b []byte) (int64, bool) {
	n := len(b)
	if n < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[n-1] != 'Z' {
		return 0, false
	}
	year, month, day := digits(b[0:4]), digits(b[5:7]), digits(b[8:10])
	hour, minute, sec := digits(b[11:13]), digits(b[14:16]), digits(b[17:19])
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return 0, false
	}
	var micros int
	if n > 20 {
		frac := b[20 : n-1]
		if b[19] != '.' || len(frac) < 1 || len(frac) > 9 {
			return 0, false
		}
		f := digits(frac)
		if f < 0 {
			return 0, false
		}
		for range 9 - len(frac) {
			f *= 10
		}
		micros = f / 1000 // nanoseconds truncated, as time.Time.UnixMicro does
	}
	secs := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return secs*1_000_000 + int64(micros), true
}

// daysSinceEpoch is the number of days from 1970-01-01 to the given date
// of the proleptic Gregorian calendar, for years 1 to 9999 (H. Hinnant's
// days_from_civil): what time.Date computes, in a fraction of its time.
func daysSinceEpoch(year, month, day int) int64 {
	if month <= 2 {
		year--
	}
	era := year / 400 // year >= 0 here
	yoe := year - era*400
	mp := (month + 9) % 12 // March is 0
	doy := (153*mp+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// digits is the decimal value of b, or -1 if b is not all ASCII digits.
func digits(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// Epoch-millisecond timestamps are accepted between 1970 and the end of 9999;
// anything else is far more likely a seconds/nanoseconds mix-up than data.
const (
	minEpochMillis = 0
	maxEpochMillis = 253402300799999
)
