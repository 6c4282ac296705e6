package serving

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// paramRule says which parameters a route takes and which of them may be
// given more than once.
type paramRule struct {
	known      []string
	repeatable []string
}

var (
	queryRule  = paramRule{known: queryParams, repeatable: []string{"group_by", "where", "metrics"}}
	eventsRule = paramRule{known: eventsParams}
	jobsRule   = paramRule{known: jobsParams}
	noParams   = paramRule{}
)

// maxParams bounds the pairs one query string may hold: no route needs
// more, and each costs a little parsing.
const maxParams = 64

// parseRawQuery reads a raw query string strictly. url.ParseQuery (behind
// r.URL.Query()) drops a pair with a bad escape or a ';' and keeps going,
// so `grup_by=%zz` or `where=tenant:a;b` used to become a silent total.
// Here every pair must be name=value with a known name, valid %-escapes,
// UTF-8 text, no ';' and a non-empty value; a parameter that is not
// repeatable appears once. Anything else is a 400 naming the parameter.
// Empty segments (a trailing '&', "&&") carry nothing and are skipped.
func parseRawQuery(raw string, rule paramRule) (url.Values, *apiError) {
	vals := url.Values{}
	n := 0
	for seg := range strings.SplitSeq(raw, "&") {
		if seg == "" {
			continue
		}
		if n++; n > maxParams {
			return nil, badParam("(query)", "more than %d parameters", maxParams)
		}
		rawName, rawVal, hasEq := strings.Cut(seg, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil || !utf8.ValidString(name) {
			return nil, badParam(paramName(rawName), "parameter name %q: bad %%-escape or not UTF-8", clip(rawName))
		}
		if name == "" {
			return nil, badParam("(empty)", "a value without a parameter name: %q", clip(seg))
		}
		if strings.Contains(seg, ";") {
			return nil, badParam(paramName(name), `%s: ";" is not a parameter separator; inside a value write it as %%3B`, clip(name))
		}
		if !slices.Contains(rule.known, name) {
			if len(rule.known) == 0 {
				return nil, badParam(paramName(name), "unknown parameter %q (this route takes none)", clip(name))
			}
			return nil, badParam(paramName(name), "unknown parameter %q (want one of %s)", clip(name), strings.Join(rule.known, ", "))
		}
		if !hasEq {
			return nil, badParam(name, "%s has no value (want %s=value)", name, name)
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return nil, badParam(name, "%s: bad %%-escape in %q", name, clip(rawVal))
		}
		if !utf8.ValidString(val) {
			return nil, badParam(name, "%s: value is not UTF-8", name)
		}
		if val == "" {
			return nil, badParam(name, "%s is empty (leave it out for the default)", name)
		}
		if _, seen := vals[name]; seen && !slices.Contains(rule.repeatable, name) {
			return nil, badParam(name, "%s given more than once", name)
		}
		vals[name] = append(vals[name], val)
	}
	return vals, nil
}

// strictParams refuses a request whose query string parseRawQuery refuses,
// before the handler runs; handlers that read parameters parse them again.
func strictParams(rule paramRule, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, perr := parseRawQuery(r.URL.RawQuery, rule); perr != nil {
			writeError(w, perr)
			return
		}
		h.ServeHTTP(w, r)
	})
}
