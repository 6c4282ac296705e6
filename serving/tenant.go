package serving

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lambdalake/lambdalake/schemas"
)

// Tenant-scoped tokens. A token (static or JWT) may carry fixed filters,
// {tenant: t07}: every query made with it is bound to them, which is what
// lets a team put the endpoint in front of its own customers. The binding
// is added as where parameters before the query is parsed, so it reaches
// every path that filters (batch hours, Redis, the raw lake, the caches'
// keys) like a where the client wrote; a where asking for another value of
// a bound dimension is refused, not answered empty. Grouping by a bound
// dimension is allowed: it can only show the bound value.

// sortedFilters lists a principal's filter dimensions in a fixed order.
func sortedFilters(p *principal) []string {
	ds := make([]string, 0, len(p.filters))
	for d := range p.filters {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
}

// canQuery reports whether p may query v at all: v must have every
// dimension p is bound to, or the binding could not be applied.
func canQuery(p *principal, v *schemas.View) bool {
	if p == nil {
		return true
	}
	for d := range p.filters {
		if !v.HasDimension(d) {
			return false
		}
	}
	return true
}

// bindQuery returns vals bound to p's filters for a query on v.
func bindQuery(p *principal, v *schemas.View, vals url.Values) (url.Values, *apiError) {
	if p == nil || len(p.filters) == 0 {
		return vals, nil
	}
	ds := sortedFilters(p)
	for _, d := range ds {
		if !v.HasDimension(d) {
			return nil, &apiError{Code: http.StatusForbidden, Param: "view",
				Msg: fmt.Sprintf("token %s is bound to %s=%s, and view %s has no dimension %s", p.name, d, clip(p.filters[d]), v.Name, d)}
		}
	}
	for _, w := range vals["where"] {
		d, val, ok := strings.Cut(w, ":")
		want, bound := p.filters[d]
		if ok && bound && !sameValue(v, d, val, want) {
			return nil, &apiError{Code: http.StatusForbidden, Param: "where",
				Msg: fmt.Sprintf("token %s is bound to %s=%s: where %s:%s is not allowed", p.name, d, clip(want), d, clip(val))}
		}
	}
	out := make(url.Values, len(vals)+1)
	for k, vs := range vals {
		out[k] = slices.Clone(vs)
	}
	for _, d := range ds {
		out["where"] = append(out["where"], d+":"+p.filters[d])
	}
	return out, nil
}

// checkBound is the binding's second lock: after parsing, the query's
// where must hold every bound value, whatever the parser did.
func checkBound(p *principal, q *query) *apiError {
	if p == nil {
		return nil
	}
	for _, d := range sortedFilters(p) {
		f, _ := q.view.Schema.Field(d)
		want, err := schemas.ParseDimValue(f.Type, p.filters[d])
		if got, ok := q.where[d]; !ok || err != nil || got != want {
			return &apiError{Code: http.StatusForbidden, Param: "where", Msg: fmt.Sprintf("token %s is bound to %s=%s", p.name, d, clip(p.filters[d]))}
		}
	}
	return nil
}

// sameValue compares two texts of dimension d as values of its type
// ("007" and "7" are one int64), as the query's where is compared.
func sameValue(v *schemas.View, d, a, b string) bool {
	f, _ := v.Schema.Field(d)
	x, err1 := schemas.ParseDimValue(f.Type, a)
	y, err2 := schemas.ParseDimValue(f.Type, b)
	return err1 == nil && err2 == nil && x == y
}

// boundField checks one decoded event against p's filters (Events API): a
// token bound to tenant t07 writes only t07's events. It returns the
// reason a line is refused, or "".
func boundField(p *principal, s *schemas.Schema, row *schemas.Row) string {
	if p == nil {
		return ""
	}
	for _, d := range sortedFilters(p) {
		i := s.FieldIndex(d)
		want, err := schemas.ParseDimValue(s.Fields[i].Type, p.filters[d])
		if x := row.Values[i]; x.Null || err != nil || x != want {
			return fmt.Sprintf("field %q: token %s is bound to %s=%s", d, p.name, d, clip(p.filters[d]))
		}
	}
	return ""
}

// schemaBindable reports whether every filter of p is a field of s, so
// the Events API can check lines against it.
func schemaBindable(p *principal, s *schemas.Schema) bool {
	if p == nil {
		return true
	}
	for d := range p.filters {
		if s.FieldIndex(d) < 0 {
			return false
		}
	}
	return true
}
