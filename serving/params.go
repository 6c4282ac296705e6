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

var _ error = (*apiError)(nil)

func (e *apiError) Error() string { return e.Msg }

func badParam(param, format string, args ...any) *apiError {
	return &apiError{Code: 400, Msg: fmt.Sprintf(format, args...), Param: param}
}

// queryParams are the parameters GET /v1/views/{view}/query accepts; any
// other is refused, so a typo (grup_by) is an error, not a silent total.
// The OpenAPI document lists exactly these (checked by a test).
var queryParams = []string{"from", "to", "step", "group_by", "where", "metrics", "format"}

// formats of a query answer.
var formats = []string{"json", "csv", "ndjson"}

// query is a parsed, validated query. from and to are aligned on the step
// (from floored, to ceiled) so every output bucket is whole.
type query struct {
	view    *schemas.View
	from    time.Time
	to      time.Time
	step    time.Duration
	groupBy []string // dimensions, in request order
	// where: dimension → the value it must equal, parsed once
	// (schemas.ParseDimValue) and handed to both layers as it is.
	where   map[string]schemas.Value
	metrics []int // indexes into view.Metrics, in request order
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
		if !slices.Contains(queryParams, k) {
			return nil, badParam(paramName(k), "unknown parameter %q (want one of %s)", clip(k), strings.Join(queryParams, ", "))
		}
	}
	for _, k := range []string{"from", "to", "step", "format"} {
		if len(vals[k]) > 1 {
			return nil, badParam(k, "%s given %d times", k, len(vals[k]))
		}
	}
	q := &query{view: v, format: "json"}
	var err *apiError
	if q.from, q.to, q.step, err = parseRange(v, vals, lim); err != nil {
		return nil, err
	}
	if q.groupBy, err = parseGroupBy(v, vals["group_by"]); err != nil {
		return nil, err
	}
	if q.where, err = parseWhere(v, vals["where"]); err != nil {
		return nil, err
	}
	if q.metrics, err = parseMetrics(v, list(vals["metrics"])); err != nil {
		return nil, err
	}
	if f := vals.Get("format"); f != "" {
		if !slices.Contains(formats, f) {
			return nil, badParam("format", "format: want one of %s, got %q", strings.Join(formats, ", "), clip(f))
		}
		q.format = f
	}
	return q, nil
}

// parseRange reads from, to and step, aligns the range on the step grid
// (from floored, to ceiled; epoch-aligned, as the speed layer rolls up) and
// holds it to the limits.
func parseRange(v *schemas.View, vals url.Values, lim limits) (from, to time.Time, step time.Duration, _ *apiError) {
	from, err := parseTime("from", vals.Get("from"))
	if err != nil {
		return from, to, 0, err
	}
	if to, err = parseTime("to", vals.Get("to")); err != nil {
		return from, to, 0, err
	}
	if !from.Before(to) {
		return from, to, 0, badParam("to", "to (%s) must be after from (%s)", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	}
	step = v.Granularity
	if s := vals.Get("step"); s != "" {
		d, perr := parseStep(s)
		if perr != nil || d <= 0 {
			return from, to, 0, badParam("step", "step: want a duration such as 1m, 1h or 1d, got %q", clip(s))
		}
		if d%v.Granularity != 0 {
			return from, to, 0, badParam("step", "step %s is not a multiple of the view's granularity %s", formatStep(d), formatStep(v.Granularity))
		}
		step = d
	}
	st := step.Microseconds()
	fu, tu := schemas.Floor(from.UnixMicro(), st), to.UnixMicro()
	if r := tu - schemas.Floor(tu, st); r != 0 {
		if tu > math.MaxInt64-st {
			return from, to, 0, badParam("to", "to out of range")
		}
		tu += st - r
	}
	from, to = time.UnixMicro(fu).UTC(), time.UnixMicro(tu).UTC()
	if lim.maxRange > 0 && to.Sub(from) > lim.maxRange {
		return from, to, 0, &apiError{Code: 413, Param: "to", Msg: fmt.Sprintf("range %s is longer than http.max_range %s", to.Sub(from), lim.maxRange)}
	}
	if lim.maxRows > 0 && (tu-fu)/st > int64(lim.maxRows) {
		return from, to, 0, &apiError{Code: 413, Param: "step", Msg: fmt.Sprintf("%d steps of %s are more than http.max_rows=%d: raise step or narrow the range", (tu-fu)/st, formatStep(step), lim.maxRows)}
	}
	return from, to, step, nil
}

// parseGroupBy reads group_by: dimensions of the view, each once.
func parseGroupBy(v *schemas.View, vals []string) ([]string, *apiError) {
	var out []string
	for _, d := range list(vals) {
		if !v.HasDimension(d) {
			return nil, badParam("group_by", "group_by: %q is not a dimension of view %s (dimensions: %s)", clip(d), v.Name, strings.Join(v.Dimensions, ", "))
		}
		if slices.Contains(out, d) {
			return nil, badParam("group_by", "group_by: %q given twice", d)
		}
		out = append(out, d)
	}
	return out, nil
}

// parseWhere reads where=dim:value clauses into typed values, with the rule
// both layers share (schemas.ParseDimValue); one dimension may be given
// twice only with the same value.
func parseWhere(v *schemas.View, vals []string) (map[string]schemas.Value, *apiError) {
	out := map[string]schemas.Value{}
	text := map[string]string{}
	for _, w := range vals {
		d, val, ok := strings.Cut(w, ":")
		if !ok || d == "" {
			return nil, badParam("where", "where: want dimension:value, got %q", clip(w))
		}
		if !v.HasDimension(d) {
			return nil, badParam("where", "where: %q is not a dimension of view %s (dimensions: %s)", clip(d), v.Name, strings.Join(v.Dimensions, ", "))
		}
		f, _ := v.Schema.Field(d)
		x, err := schemas.ParseDimValue(f.Type, val)
		if err != nil {
			return nil, badParam("where", "where %s: %v, got %q", d, err, clip(val))
		}
		if prev, dup := out[d]; dup && prev != x {
			return nil, badParam("where", "where: %s given two values (%q, %q); where is equality only", d, clip(text[d]), clip(val))
		}
		out[d], text[d] = x, val
	}
	return out, nil
}

// parseMetrics reads metrics: names of the view's metrics, each once; none
// means all, in the view's order.
func parseMetrics(v *schemas.View, names []string) ([]int, *apiError) {
	var out []int
	for _, name := range names {
		i := slices.IndexFunc(v.Metrics, func(m schemas.Metric) bool { return m.Name == name })
		if i < 0 {
			all := make([]string, len(v.Metrics))
			for j, m := range v.Metrics {
				all[j] = m.Name
			}
			return nil, badParam("metrics", "metrics: %q is not a metric of view %s (metrics: %s)", clip(name), v.Name, strings.Join(all, ", "))
		}
		if slices.Contains(out, i) {
			return nil, badParam("metrics", "metrics: %q given twice", name)
		}
		out = append(out, i)
	}
	if len(names) == 0 {
		for i := range v.Metrics {
			out = append(out, i)
		}
	}
	return out, nil
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
		f, _ := q.view.Schema.Field(k)
		b.WriteString("|")
		b.WriteString(strconv.Quote(k + ":" + schemas.FormatDimValue(f.Type, q.where[k])))
	}
	return b.String()
}

// allMetrics reports whether q shows every metric of its view in the
// view's order (what it does when it names none).
func (q *query) allMetrics() bool {
	if len(q.metrics) != len(q.view.Metrics) {
		return false
	}
	for i, mi := range q.metrics {
		if mi != i {
			return false
		}
	}
	return true
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
