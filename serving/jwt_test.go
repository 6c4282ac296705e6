package serving

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const jwtSecret = "0123456789abcdef0123456789abcdef-test-secret"

// claims builds a lambdalake JWT's claims around the fixture's clock.
func claims(now time.Time, mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "acme", "iss": "lambdalake-test", "scopes": []string{"read:views"},
		"filters": map[string]string{"tenant": "t07"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Signed JWTs: HS256 with the configured secret, ES256 with the
// configured public key; scopes, filters and rate from the claims; every
// way a token can be wrong is a 401 saying which.
func TestJWT(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	f := newFixture(t, func(c *APIConfig) {
		c.JWT = &JWTConfig{Secret: []byte(jwtSecret), PublicKey: &ecKey.PublicKey, KeyAlg: "ES256",
			Issuer: "lambdalake-test", MaxTTL: 24 * time.Hour, Rate: 10, Burst: 20}
	})
	f.speedOK()
	now := f.now
	hs := func(mod func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), claims(now, mod))
	}
	q := "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z"
	tests := []struct {
		name      string
		token     string
		target    string
		wantCode  int
		wantInMsg string
		wantLimit string // X-RateLimit-Limit of an accepted token
	}{
		{"HS256", hs(nil), q, 200, "", "20"},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, claims(now, nil)), q, 200, "", "20"},
		{"bound tenant", hs(nil), q + "&where=tenant:t08", 403, "bound to tenant=t07", ""},
		{"rate claim below the cap", hs(func(c jwt.MapClaims) { c["rate"], c["burst"] = 1, 3 }), q, 200, "", "3"},
		{"rate claim above the cap", hs(func(c jwt.MapClaims) { c["rate"], c["burst"] = 1000, 1000 }), q, 200, "", "20"},
		{"write scope only", hs(func(c jwt.MapClaims) { c["scopes"] = []string{"write:events"} }), q, 403, "lacks scope read:views", ""},
		{"expired", hs(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }), q, 401, "token is expired", ""},
		{"not valid yet", hs(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), q, 401, "token is not valid yet", ""},
		{"issued in the future", hs(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }), q, 401, "used before issued", ""},
		{"no exp", hs(func(c jwt.MapClaims) { delete(c, "exp") }), q, 401, "missing required claim", ""},
		{"lives too long", hs(func(c jwt.MapClaims) { c["exp"] = now.Add(30 * 24 * time.Hour).Unix() }), q, 401, "longer than http.jwt.max_ttl", ""},
		{"no sub", hs(func(c jwt.MapClaims) { delete(c, "sub") }), q, 401, "no sub claim", ""},
		{"no scopes", hs(func(c jwt.MapClaims) { delete(c, "scopes") }), q, 401, "no scopes claim", ""},
		{"admin scope", hs(func(c jwt.MapClaims) { c["scopes"] = []string{"admin"} }), "/v1/jobs", 401, "(a JWT may carry read:views, write:events)", ""},
		{"wrong issuer", hs(func(c jwt.MapClaims) { c["iss"] = "someone-else" }), q, 401, "invalid issuer", ""},
		{"unknown claim type", hs(func(c jwt.MapClaims) { c["filters"] = []int{1} }), q, 401, "invalid JWT", ""},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0000"), claims(now, nil)), q, 401, "signature is invalid", ""},
		{"wrong EC key", sign(t, jwt.SigningMethodES256, otherEC, claims(now, nil)), q, 401, "signature is invalid", ""},
		{"HS384", sign(t, jwt.SigningMethodHS384, []byte(jwtSecret), claims(now, nil)), q, 401, "invalid JWT", ""},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(now, nil)), q, 401, "invalid JWT", ""},
		// The classic confusion: the public key (which anyone may hold) as
		// an HS256 secret. The HS256 key is the configured secret only.
		{"public key as HS256 secret", sign(t, jwt.SigningMethodHS256, pubPEM, claims(now, nil)), q, 401, "signature is invalid", ""},
		{"garbage JWT", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig", q, 401, "invalid JWT", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := f.do(t, "GET", tt.target, tt.token, nil)
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantInMsg) {
				t.Fatalf("%d %s; want %d with %q", code, body, tt.wantCode, tt.wantInMsg)
			}
			if got := hdr.Get("X-RateLimit-Limit"); code == 200 && got != tt.wantLimit {
				t.Errorf("X-RateLimit-Limit %q, want %q", got, tt.wantLimit)
			}
			if code == 401 && strings.Contains(string(body), jwtSecret) {
				t.Errorf("the secret in an answer: %s", body)
			}
		})
	}
	// Only the public key configured: an HS256 token is not even tried.
	pk := newFixture(t, func(c *APIConfig) {
		c.JWT = &JWTConfig{PublicKey: &ecKey.PublicKey, KeyAlg: "ES256", MaxTTL: time.Hour}
	})
	pk.speedOK()
	if code, body, _ := pk.do(t, "GET", q, sign(t, jwt.SigningMethodHS256, pubDER, claims(now, func(c jwt.MapClaims) { delete(c, "iss") })), nil); code != 401 || !strings.Contains(string(body), "signature is invalid") {
		t.Errorf("HS256 with only a public key configured: %d %s", code, body)
	}
	if code, body, _ := pk.do(t, "GET", q, sign(t, jwt.SigningMethodES256, ecKey, claims(now, func(c jwt.MapClaims) { delete(c, "iss") })), nil); code != 200 {
		t.Errorf("ES256: %d %s", code, body)
	}
	// JWTs off: a JWT is an unknown token.
	if code, body, _ := newFixture(t, nil).do(t, "GET", q, hs(nil), nil); code != 401 || !strings.Contains(string(body), "unknown token") {
		t.Errorf("JWTs off: %d %s", code, body)
	}
}
