package serving

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// Times in answers are RFC 3339 in UTC, to the second when whole (buckets
// always are), so they sort as text and parse everywhere.
func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // escapes like encoding/json everywhere else
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendValue appends a dimension or metric value as JSON. A decimal(P,S)
// metric is a JSON number with its exact digits and S decimals
// (25209252.48, 12.50): its text is exact; a client that must keep it
// exact reads it as a decimal (json.Number, Python's parse_float=Decimal),
// not as a double.
func appendValue(b []byte, t schemas.Type, x schemas.Value) []byte {
	if x.Null {
		return append(b, "null"...)
	}
	if t.Kind() == schemas.Decimal {
		return schemas.AppendDecimal(b, x.Int, t.Scale())
	}
	switch t {
	case schemas.String:
		return appendJSONString(b, x.Str)
	case schemas.Bool:
		return strconv.AppendBool(b, x.Int != 0)
	case schemas.Float64:
		if !finite(x.Float) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x.Float, 'g', -1, 64)
	case schemas.Timestamp:
		b = append(b, '"')
		b = appendTime(b, time.UnixMicro(x.Int))
		return append(b, '"')
	}
	return strconv.AppendInt(b, x.Int, 10)
}

// textValue is a value as CSV text ("" for null); a decimal as in JSON.
func textValue(t schemas.Type, x schemas.Value) string {
	if x.Null {
		return ""
	}
	if t.Kind() == schemas.Decimal {
		return schemas.FormatDecimal(x.Int, t.Scale())
	}
	switch t {
	case schemas.String:
		return csvSafe(x.Str)
	case schemas.Bool:
		return strconv.FormatBool(x.Int != 0)
	case schemas.Float64:
		return strconv.FormatFloat(x.Float, 'g', -1, 64)
	case schemas.Timestamp:
		return time.UnixMicro(x.Int).UTC().Format(time.RFC3339Nano)
	}
	return strconv.FormatInt(x.Int, 10)
}

type columns struct {
	dimTypes    []schemas.Type
	metricTypes []schemas.Type
	// ,"name": of each column, encoded once per answer.
	dimKeys, metricKeys [][]byte
	// the last row's time as text: grouped rows of one step share it
	lastT    int64
	lastTime []byte
}

// appendRowTime appends the time of a row, formatted once per step.
func (c *columns) appendRowTime(b []byte, t int64) []byte {
	if c.lastTime == nil || t != c.lastT {
		c.lastT, c.lastTime = t, appendTime(c.lastTime[:0], time.UnixMicro(t))
	}
	return append(b, c.lastTime...)
}

func columnsOf(q *query) columns {
	var c columns
	key := func(name string) []byte { return append(appendJSONString([]byte{','}, name), ':') }
	for _, d := range q.groupBy {
		f, _ := q.view.Schema.Field(d)
		c.dimTypes = append(c.dimTypes, f.Type)
		c.dimKeys = append(c.dimKeys, key(d))
	}
	for _, mi := range q.metrics {
		c.metricTypes = append(c.metricTypes, q.view.MetricType(q.view.Metrics[mi]))
		c.metricKeys = append(c.metricKeys, key(q.view.Metrics[mi].Name))
	}
	return c
}

// appendRowJSON appends one row object: {"t":…, dims…, metrics…}.
func appendRowJSON(b []byte, q *query, c *columns, r *outRow) []byte {
	b = append(b, `{"t":"`...)
	b = c.appendRowTime(b, r.t)
	b = append(b, '"')
	for k := range q.groupBy {
		b = append(b, c.dimKeys[k]...)
		b = appendValue(b, c.dimTypes[k], r.dims[k])
	}
	for k, mi := range q.metrics {
		b = append(b, c.metricKeys[k]...)
		b = appendValue(b, c.metricTypes[k], r.vals[mi])
	}
	return append(b, '}')
}

func spanJSON(s *span) any {
	if s == nil {
		return nil
	}
	return [2]string{s.from.Format(time.RFC3339Nano), s.to.Format(time.RFC3339Nano)}
}

func spansJSON(s []span) [][2]string {
	out := make([][2]string, 0, len(s))
	for i := range s {
		out = append(out, spanJSON(&s[i]).([2]string))
	}
	return out
}

// approximate lists the selected uniq metrics some figure of which is an
// HLL estimate.
func approximate(q *query, ans *answer) []string {
	out := []string{}
	for _, mi := range q.metrics {
		if ans.approx[mi] {
			out = append(out, q.view.Metrics[mi].Name)
		}
	}
	return out
}

// overflowed lists the selected sum metrics some figure of which
// overflowed (schemas.IntSum, FloatSum): that figure is null.
func overflowed(q *query, ans *answer) []string {
	out := []string{}
	for _, mi := range q.metrics {
		if ans.overflow != nil && ans.overflow[mi] {
			out = append(out, q.view.Metrics[mi].Name)
		}
	}
	return out
}

// answerMeta is the answer's header object (everything but rows).
type answerMeta struct {
	View        string         `json:"view"`
	From        string         `json:"from"`
	To          string         `json:"to"`
	Step        string         `json:"step"`
	Boundary    *string        `json:"boundary"`
	Sources     map[string]any `json:"sources"`
	Gaps        [][2]string    `json:"gaps"`
	Approximate []string       `json:"approximate"`
	Overflow    []string       `json:"overflow"`
}

func metaOf(q *query, ans *answer) answerMeta {
	m := answerMeta{View: q.view.Name, From: q.from.Format(time.RFC3339Nano), To: q.to.Format(time.RFC3339Nano),
		Step: formatStep(q.step), Gaps: spansJSON(ans.gaps), Approximate: approximate(q, ans),
		Overflow: overflowed(q, ans),
		Sources:  map[string]any{"batch": spanJSON(ans.batch), "speed": spanJSON(ans.speed)}}
	if len(ans.cold) > 0 {
		m.Sources["cold"] = spansJSON(ans.cold)
	}
	if !ans.boundary.IsZero() {
		b := ans.boundary.Format(time.RFC3339Nano)
		m.Boundary = &b
	}
	return m
}

// encodeAnswer prints an answer in the query's format. csv and ndjson carry
// the metadata in headers (Lambdalake-Boundary, -Gaps, -Approximate,
// -Overflow).
func encodeAnswer(q *query, ans *answer) (http.Header, []byte) {
	h := http.Header{}
	meta := metaOf(q, ans)
	c := columnsOf(q)
	switch q.format {
	case "csv", "ndjson":
		if meta.Boundary != nil {
			h.Set("Lambdalake-Boundary", *meta.Boundary)
		}
		gaps, _ := json.Marshal(meta.Gaps)
		h.Set("Lambdalake-Gaps", string(gaps))
		appx, _ := json.Marshal(meta.Approximate)
		h.Set("Lambdalake-Approximate", string(appx))
		ovf, _ := json.Marshal(meta.Overflow)
		h.Set("Lambdalake-Overflow", string(ovf))
		src, _ := json.Marshal(meta.Sources)
		h.Set("Lambdalake-Sources", string(src))
	}
	switch q.format {
	case "csv":
		h.Set("Content-Type", "text/csv; charset=utf-8")
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		rec := append([]string{"t"}, q.groupBy...)
		for _, mi := range q.metrics {
			rec = append(rec, q.view.Metrics[mi].Name)
		}
		w.Write(rec)
		for i := range ans.rows {
			r := &ans.rows[i]
			rec = rec[:0]
			rec = append(rec, time.UnixMicro(r.t).UTC().Format(time.RFC3339Nano))
			for k := range q.groupBy {
				rec = append(rec, textValue(c.dimTypes[k], r.dims[k]))
			}
			for k, mi := range q.metrics {
				rec = append(rec, textValue(c.metricTypes[k], r.vals[mi]))
			}
			w.Write(rec)
		}
		w.Flush()
		return h, buf.Bytes()
	case "ndjson":
		h.Set("Content-Type", "application/x-ndjson")
		b := make([]byte, 0, 64+len(ans.rows)*rowSize(q, &c, ans.rows))
		return h, appendRows(b, q, &c, ans, '\n')
	}
	h.Set("Content-Type", "application/json")
	head, _ := json.Marshal(meta)
	b := make([]byte, 0, len(head)+64+len(ans.rows)*rowSize(q, &c, ans.rows))
	b = append(b, head[:len(head)-1]...) // reopen the object for rows
	b = append(b, `,"rows":[`...)
	b = appendRows(b, q, &c, ans, ',')
	if len(ans.rows) > 0 {
		b = b[:len(b)-1] // the last row's ','
	}
	b = append(b, "]}\n"...)
	return h, b
}

// rowsJSON is rows printed as JSON objects, one after the other with no
// separator, row i being b[off[i]:off[i+1]], for a query showing every
// metric in the view's order (the default): a batch hour's rollup keeps
// them, so an answer copies its hours' rows instead of printing them
// again. JSON and NDJSON rows are the same objects.
type rowsJSON struct {
	b   []byte
	off []int32
}

// encodeRows prints rows as q shows them (q.allMetrics must hold).
func encodeRows(q *query, rows []outRow) *rowsJSON {
	c := columnsOf(q)
	e := &rowsJSON{off: make([]int32, 0, len(rows)+1)}
	e.b = make([]byte, 0, len(rows)*rowSize(q, &c, rows))
	for i := range rows {
		e.off = append(e.off, int32(len(e.b)))
		e.b = appendRowJSON(e.b, q, &c, &rows[i])
	}
	e.off = append(e.off, int32(len(e.b)))
	return e
}

func (e *rowsJSON) bytes() int64 { return int64(cap(e.b)) + 4*int64(cap(e.off)) }

// encodedRun is rows [i, j) of an hour's rowsJSON: the next j - i rows of
// an answer.
type encodedRun struct {
	enc  *rowsJSON
	i, j int
}

// appendRows appends ans.rows, each followed by sep: the leading rows
// covered by ans.encoded copied, the rest printed.
func appendRows(b []byte, q *query, c *columns, ans *answer, sep byte) []byte {
	k := 0
	if q.allMetrics() {
		for _, run := range ans.encoded {
			for i := run.i; i < run.j; i++ {
				b = append(b, run.enc.b[run.enc.off[i]:run.enc.off[i+1]]...)
				b = append(b, sep)
			}
			k += run.j - run.i
		}
	}
	for i := k; i < len(ans.rows); i++ {
		b = appendRowJSON(b, q, c, &ans.rows[i])
		b = append(b, sep)
	}
	return b
}

// rowSize guesses the bytes of one row in JSON from the first, middle and
// last rows, with room for longer numbers, so that a large answer's buffer
// is allocated once rather than grown (and copied) a few times.
func rowSize(q *query, c *columns, rows []outRow) int {
	var most int
	var scratch []byte
	for _, i := range []int{0, len(rows) / 2, len(rows) - 1} {
		if i >= 0 && i < len(rows) {
			scratch = appendRowJSON(scratch[:0], q, c, &rows[i])
			most = max(most, len(scratch))
		}
	}
	return most + most/8 + 2
}

// csvSafe defuses formula injection: a spreadsheet opening the CSV runs a
// cell that starts with =, +, - or @ (or a tab or CR before one) as a
// formula, and event values are whatever producers sent. Such a cell gets
// a leading apostrophe (OWASP's advice), which spreadsheets hide. Only
// string values are touched: numbers stay numbers.
func csvSafe(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}
