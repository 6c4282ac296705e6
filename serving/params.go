package serving

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// apiError is an answer to a request the API refuses: the HTTP status, a
// message, and the parameter at fault (DESIGN §4: {"error", "param"}).
type apiError struct {
	Code  int    `json:"-"`
	Msg   string `json:"error"`
	Param string `json:"param,omitempty"`
}

func (e *apiError) Error() string { return e.Msg }

func badParam(param, format string, args ...any) *apiError {
	return &apiError{Code: 400, Msg: fmt.Sprintf(format, args...), Param: param}
}

// QueryParams are the parameters GET /v1/views/{view}/query accepts; any
// other is refused, so a typo (grup_by) is an error, not a silent total.
// The OpenAPI document lists exactly these (checked by a test).
var QueryParams = []string{"from", "to", "step", "group_by", "where", "metrics", "format"}

// Formats of a query answer.
var Formats = []string{"json", "csv", "ndjson"}

// query is a parsed, validated query. from and to are aligned on the step
// (from floored, to ceiled) so every output bucket is whole.
type query struct {
	view    *schemas.View
	from    time.Time
	to      time.Time
	step    time.Duration
	groupBy []string          // dimensions, in request order
	where   map[string]string // dimension → value as text
	metrics []int             // indexes into view.Metrics, in request order
	format  string
}

// limits bound what one query may ask for.
type limits struct {
	maxRange time.Duration
	maxRows  int
}

// Times must stay where Unix microseconds do not overflow and where
// RFC 3339 has four-digit years.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseTime reads RFC 3339 (any offset; the answer is UTC) or epoch
// milliseconds.
func parseTime(param, s string) (time.Time, *apiError) {
	if s == "" {
		return time.Time{}, badParam(param, "%s is required (RFC 3339 or epoch milliseconds)", param)
	}
	var t time.Time
	if isDigits(s) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms > maxTime.UnixMilli() {
			return time.Time{}, badParam(param, "%s: epoch milliseconds out of range: %q", param, s)
		}
		t = time.UnixMilli(ms).UTC()
	} else {
		var err error
		t, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, badParam(param, "%s: want RFC 3339 (2026-11-27T09:00:00Z) or epoch milliseconds, got %q", param, clip(s))
		}
		t = t.UTC()
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return time.Time{}, badParam(param, "%s: %s is outside 1970..2200", param, t.Format(time.RFC3339))
	}
	return t, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// clip keeps error messages short whatever a client sends.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// parseStep reads a Go duration ("5m", "1h30m") or whole days ("1d").
func parseStep(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok && isDigits(d) {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n > 366*10 {
			return 0, fmt.Errorf("too many days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// formatStep is the inverse of parseStep, without Go's trailing zero units
// ("1m", not "1m0s").
func formatStep(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// list splits comma-separated values of a repeatable parameter.
func list(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// paramName names an unknown parameter in an error: clipped, and never
// empty (a bare "=" in a query string).
func paramName(k string) string {
	if k == "" {
		return "(empty)"
	}
	return clip(k)
}

// parseQuery validates a query's parameters against its view. Every refusal
// is a 400 (413 for a range or answer too large) naming the parameter.
func parseQuery(v *schemas.View, vals url.Values, lim limits) (*query, *apiError) {
	for k := range vals {
		if !slices.Contains(QueryParams, k) {
			return nil, badParam(paramName(k), "unknown parameter %q (want one of %s)", clip(k), strings.Join(QueryParams, ", "))
		}
	}
	for _, k := range []string{"from", "to", "step", "format"} {
		if len(vals[k]) > 1 {
			return nil, badParam(k, "%s given %d times", k, len(vals[k]))
		}
	}
	q := &query{view: v, step: v.Granularity, where: map[string]string{}, format: "json"}
	from, err := parseTime("from", vals.Get("from"))
	if err != nil {
		return nil, err
	}
	to, err := parseTime("to", vals.Get("to"))
	if err != nil {
		return nil, err
	}
	if !from.Before(to) {
		return nil, badParam("to", "to (%s) must be after from (%s)", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	}
	if s := vals.Get("step"); s != "" {
		d, perr := parseStep(s)
		if perr != nil || d <= 0 {
			return nil, badParam("step", "step: want a duration such as 1m, 1h or 1d, got %q", clip(s))
		}
		if d%v.Granularity != 0 {
			return nil, badParam("step", "step %s is not a multiple of the view's granularity %s", formatStep(d), formatStep(v.Granularity))
		}
		q.step = d
	}
	// Align on the step grid (epoch-aligned, as the speed layer rolls up).
	st := q.step.Microseconds()
	fu, tu := from.UnixMicro(), to.UnixMicro()
	fu -= fu % st
	if r := tu % st; r != 0 {
		if tu > math.MaxInt64-st {
			return nil, badParam("to", "to out of range")
		}
		tu += st - r
	}
	q.from, q.to = time.UnixMicro(fu).UTC(), time.UnixMicro(tu).UTC()
	if lim.maxRange > 0 && q.to.Sub(q.from) > lim.maxRange {
		return nil, &apiError{Code: 413, Param: "to", Msg: fmt.Sprintf("range %s is longer than http.max_range %s", q.to.Sub(q.from), lim.maxRange)}
	}
	if lim.maxRows > 0 && (tu-fu)/st > int64(lim.maxRows) {
		return nil, &apiError{Code: 413, Param: "step", Msg: fmt.Sprintf("%d steps of %s are more than http.max_rows=%d: raise step or narrow the range", (tu-fu)/st, formatStep(q.step), lim.maxRows)}
	}
	for _, d := range list(vals["group_by"]) {
		if !v.HasDimension(d) {
			return nil, badParam("group_by", "group_by: %q is not a dimension of view %s (dimensions: %s)", clip(d), v.Name, strings.Join(v.Dimensions, ", "))
		}
		if slices.Contains(q.groupBy, d) {
			return nil, badParam("group_by", "group_by: %q given twice", d)
		}
		q.groupBy = append(q.groupBy, d)
	}
	for _, w := range vals["where"] {
		d, val, ok := strings.Cut(w, ":")
		if !ok || d == "" {
			return nil, badParam("where", "where: want dimension:value, got %q", clip(w))
		}
		if !v.HasDimension(d) {
			return nil, badParam("where", "where: %q is not a dimension of view %s (dimensions: %s)", clip(d), v.Name, strings.Join(v.Dimensions, ", "))
		}
		f, _ := v.Schema.Field(d)
		switch f.Type {
		case schemas.Int64:
			n, perr := strconv.ParseInt(val, 10, 64)
			if perr != nil {
				return nil, badParam("where", "where %s: want an integer, got %q", d, clip(val))
			}
			val = strconv.FormatInt(n, 10)
		case schemas.Bool:
			b, perr := strconv.ParseBool(val)
			if perr != nil {
				return nil, badParam("where", "where %s: want true or false, got %q", d, clip(val))
			}
			val = strconv.FormatBool(b)
		}
		if prev, dup := q.where[d]; dup && prev != val {
			return nil, badParam("where", "where: %s given two values (%q, %q); where is equality only", d, clip(prev), clip(val))
		}
		q.where[d] = val
	}
	if ms := list(vals["metrics"]); len(ms) > 0 {
		for _, name := range ms {
			i := slices.IndexFunc(v.Metrics, func(m schemas.Metric) bool { return m.Name == name })
			if i < 0 {
				names := make([]string, len(v.Metrics))
				for j, m := range v.Metrics {
					names[j] = m.Name
				}
				return nil, badParam("metrics", "metrics: %q is not a metric of view %s (metrics: %s)", clip(name), v.Name, strings.Join(names, ", "))
			}
			if slices.Contains(q.metrics, i) {
				return nil, badParam("metrics", "metrics: %q given twice", name)
			}
			q.metrics = append(q.metrics, i)
		}
	} else {
		for i := range v.Metrics {
			q.metrics = append(q.metrics, i)
		}
	}
	if f := vals.Get("format"); f != "" {
		if !slices.Contains(Formats, f) {
			return nil, badParam("format", "format: want one of %s, got %q", strings.Join(Formats, ", "), clip(f))
		}
		q.format = f
	}
	return q, nil
}

// computeKey identifies what a query computes (not how it is printed):
// identical keys share one computation.
func (q *query) computeKey() string {
	return fmt.Sprintf("%d|%d|", q.from.UnixMicro(), q.to.UnixMicro()) + q.shapeKey()
}

// shapeKey is computeKey without the range: how rows are rolled up.
func (q *query) shapeKey() string {
	var b strings.Builder
	b.WriteString(q.view.Name)
	fmt.Fprintf(&b, "|%d|", int64(q.step))
	b.WriteString(strings.Join(q.groupBy, ","))
	keys := make([]string, 0, len(q.where))
	for k := range q.where {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString("|")
		b.WriteString(strconv.Quote(k + ":" + q.where[k]))
	}
	return b.String()
}

// outputKey extends computeKey with what the answer shows.
func (q *query) outputKey() string {
	var b strings.Builder
	b.WriteString(q.computeKey())
	b.WriteString("|m")
	for _, m := range q.metrics {
		b.WriteString(strconv.Itoa(m))
		b.WriteByte(',')
	}
	b.WriteString("|" + q.format)
	return b.String()
}
