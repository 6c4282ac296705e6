package serving

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/internal/config"
)

// principal is who a request is made by: a configured token or a signed
// JWT. Handlers read it from the request context (principalFrom).
type principal struct {
	name    string // the token's name, or "jwt:" + the JWT's subject
	scopes  []string
	filters map[string]string // dimension → value every query is bound to
	limit   *tokenLimit       // nil: no rate limit
}

func (p *principal) has(scope string) bool {
	return slices.Contains(p.scopes, scope) || slices.Contains(p.scopes, "admin")
}

type principalKey struct{}

// principalFrom is the request's principal; nil when auth is off (dev)
// or on a public route.
func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// authenticator checks bearer tokens: static ones, compared as SHA-256
// digests with crypto/subtle against every configured token (no early
// exit, so timing says neither which token nor how much of one matched),
// then signed JWTs when configured (jwt.go).
type authenticator struct {
	disabled bool
	tokens   []tokenEntry
	jwt      *jwtVerifier // nil: JWTs are not accepted
	limits   *rateLimits
	now      func() time.Time
	refused  func(reason string) // counts refusals (metrics); nil: none
}

type tokenEntry struct {
	digest [32]byte
	p      *principal
}

func newAuthenticator(tokens []config.Token, jv *jwtVerifier, disabled bool, now func() time.Time) *authenticator {
	a := &authenticator{disabled: disabled, jwt: jv, limits: newRateLimits(now), now: now}
	for _, t := range tokens {
		p := &principal{name: t.Name, scopes: t.Scopes, filters: maps.Clone(t.Filters)}
		if t.Rate > 0 {
			p.limit = newTokenLimit(t.Rate, t.Burst)
		}
		a.tokens = append(a.tokens, tokenEntry{digest: sha256.Sum256([]byte(t.Token)), p: p})
	}
	return a
}

// lookup returns the static token's principal, or nil.
func (a *authenticator) lookup(tok string) *principal {
	d := sha256.Sum256([]byte(tok))
	var found *principal
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(d[:], a.tokens[i].digest[:]) == 1 {
			found = a.tokens[i].p
		}
	}
	return found
}

// authenticate reads the bearer token of r: its principal, or a 401.
func (a *authenticator) authenticate(r *http.Request) (*principal, *apiError) {
	hdr := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(hdr, "Bearer ")
	if tok = strings.TrimSpace(tok); !ok || tok == "" {
		return nil, &apiError{Code: http.StatusUnauthorized, Param: "Authorization", Msg: "missing bearer token (Authorization: Bearer ...)"}
	}
	if p := a.lookup(tok); p != nil {
		return p, nil
	}
	if a.jwt != nil && looksLikeJWT(tok) {
		p, err := a.jwt.verify(tok, a.limits)
		if err != nil {
			return nil, &apiError{Code: http.StatusUnauthorized, Param: "Authorization", Msg: err.Error()}
		}
		return p, nil
	}
	return nil, &apiError{Code: http.StatusUnauthorized, Param: "Authorization", Msg: "unknown token"}
}

// isAdmin reports whether r carries a valid token with the admin scope
// (public routes show more to an operator).
func (a *authenticator) isAdmin(r *http.Request) bool {
	if a.disabled {
		return true
	}
	if r.Header.Get("Authorization") == "" {
		return false
	}
	p, err := a.authenticate(r)
	return err == nil && slices.Contains(p.scopes, "admin")
}

// require wraps h: 401 without a valid bearer token, 403 when the token
// lacks scope (admin carries every scope), 429 past the token's rate. The
// rate-limit headers go on every answer to a limited token.
func (a *authenticator) require(scope string, h http.Handler) http.Handler {
	if a.disabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, aerr := a.authenticate(r)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		if !p.has(scope) {
			writeError(w, &apiError{Code: http.StatusForbidden, Param: "Authorization", Msg: "token " + p.name + " lacks scope " + scope})
			return
		}
		if p.limit != nil && !p.limit.allow(w.Header(), a.now()) {
			a.count(refusedRate)
			writeError(w, &apiError{Code: http.StatusTooManyRequests, Param: "Authorization",
				Msg: "token " + p.name + " is over its rate limit; retry after Retry-After seconds"})
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (a *authenticator) count(reason string) {
	if a.refused != nil {
		a.refused(reason)
	}
}
