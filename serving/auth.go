package serving

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/lambdalake/lambdalake/internal/config"
)

// authenticator checks bearer tokens. Tokens are compared as SHA-256
// digests with crypto/subtle, against every configured token (no early
// exit), so timing says neither which token nor how much of one matched.
type authenticator struct {
	disabled bool
	tokens   []tokenEntry
}

type tokenEntry struct {
	name   string
	digest [32]byte
	scopes []string
}

func newAuthenticator(tokens []config.Token, disabled bool) *authenticator {
	a := &authenticator{disabled: disabled}
	for _, t := range tokens {
		a.tokens = append(a.tokens, tokenEntry{name: t.Name, digest: sha256.Sum256([]byte(t.Token)), scopes: t.Scopes})
	}
	return a
}

// lookup returns the token's entry, or nil.
func (a *authenticator) lookup(tok string) *tokenEntry {
	d := sha256.Sum256([]byte(tok))
	var found *tokenEntry
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(d[:], a.tokens[i].digest[:]) == 1 {
			found = &a.tokens[i]
		}
	}
	return found
}

// require wraps h: 401 without a valid bearer token, 403 when the token
// lacks scope (admin carries every scope).
func (a *authenticator) require(scope string, h http.Handler) http.Handler {
	if a.disabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(hdr, "Bearer ")
		if !ok || tok == "" {
			writeError(w, &apiError{Code: http.StatusUnauthorized, Param: "Authorization", Msg: "missing bearer token (Authorization: Bearer ...)"})
			return
		}
		t := a.lookup(strings.TrimSpace(tok))
		if t == nil {
			writeError(w, &apiError{Code: http.StatusUnauthorized, Param: "Authorization", Msg: "unknown token"})
			return
		}
		if !slices.Contains(t.scopes, scope) && !slices.Contains(t.scopes, "admin") {
			writeError(w, &apiError{Code: http.StatusForbidden, Param: "Authorization", Msg: "token " + t.name + " lacks scope " + scope})
			return
		}
		h.ServeHTTP(w, r)
	})
}
