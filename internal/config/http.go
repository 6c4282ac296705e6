package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// validateHTTPAccess checks the http section's tokens, JWT settings, limits
// and timeouts.
func validateHTTPAccess(c *Config, at func(string, string, ...any)) {
	h := &c.HTTP
	names := map[string]int{}
	tokens := map[string]int{}
	for i, t := range h.Tokens {
		p := fmt.Sprintf("http.tokens[%d]", i)
		switch {
		case t.Name == "":
			at(p+".name", "required (it names the token in logs, errors and rate limits)")
		case !identRE.MatchString(strings.ReplaceAll(t.Name, "-", "_")):
			at(p+".name", "must be letters, digits, _ or -, starting with a letter")
		default:
			if j, dup := names[t.Name]; dup {
				at(p+".name", "name %q is already used by http.tokens[%d]", t.Name, j)
			} else {
				names[t.Name] = i
			}
		}
		if len(t.Token) < 16 {
			at(p+".token", "must be at least 16 characters")
		}
		// A token listed twice would authenticate as whichever entry the
		// lookup meets last, with its scopes and filters: refuse it. The
		// message names the other entry, never the token.
		if j, dup := tokens[t.Token]; dup && t.Token != "" {
			at(p+".token", "the same token as http.tokens[%d] (%s): every token must be unique", j, h.Tokens[j].Name)
		} else {
			tokens[t.Token] = i
		}
		if len(t.Scopes) == 0 {
			at(p+".scopes", "at least one scope is required (%s)", strings.Join(Scopes, ", "))
		}
		for j, s := range t.Scopes {
			if !slices.Contains(Scopes, s) {
				at(fmt.Sprintf("%s.scopes[%d]", p, j), "unknown scope %q (want %s)", s, strings.Join(Scopes, ", "))
			}
		}
		validateRate(p, t.Rate, t.Burst, at)
		if len(t.Filters) > 0 && slices.Contains(t.Scopes, "admin") {
			at(p+".filters", "an admin token cannot be bound to filters (admin reads everything)")
		}
		for _, k := range sortedKeys(t.Filters) {
			if t.Filters[k] == "" {
				at(p+".filters."+k, "empty value")
			}
		}
	}
	positive := map[string]Duration{
		"http.read_header_timeout": h.ReadHeaderTimeout, "http.body_timeout": h.BodyTimeout,
		"http.write_timeout": h.WriteTimeout, "http.idle_timeout": h.IdleTimeout,
	}
	for _, p := range sortedKeys(positive) {
		if positive[p] <= 0 {
			at(p, "must be positive")
		}
	}
	if h.WriteTimeout > 0 && h.Timeout > 0 && h.WriteTimeout < 2*h.Timeout {
		at("http.write_timeout", "%s must be at least twice http.timeout (%s): a query may wait half of it for a slot, then compute for all of it, and must still be sent", h.WriteTimeout, h.Timeout)
	}
	if h.MaxQueries < 1 {
		at("http.max_queries", "must be at least 1")
	}
	if h.MaxTokenQueries < 1 || h.MaxTokenQueries > h.MaxQueries {
		at("http.max_token_queries", "must be between 1 and http.max_queries (%d)", h.MaxQueries)
	}
	if h.MaxCold < 1 {
		at("http.max_cold", "must be at least 1")
	}
	if h.CacheBytes < 1<<20 {
		at("http.cache_bytes", "must be at least 1MiB")
	}
	if h.RollupCacheBytes < 1<<20 {
		at("http.rollup_cache_bytes", "must be at least 1MiB")
	}
	if h.GCPercent < 50 || h.GCPercent > 10000 {
		at("http.gc_percent", "must be between 50 and 10000")
	}
	j := h.JWT
	if j.Secret != "" && len(j.Secret) < 32 {
		at("http.jwt.secret", "must be at least 32 bytes (HS256 wants a key as long as its hash)")
	}
	if j.PublicKeyFile != "" {
		if _, _, err := j.PublicKey(); err != nil {
			at("http.jwt.public_key_file", "%v", err)
		}
	}
	if !j.Enabled() && (j.Issuer != "" || j.Audience != "") {
		at("http.jwt", "issuer or audience set, but neither secret nor public_key_file")
	}
	if j.MaxTTL <= 0 {
		at("http.jwt.max_ttl", "must be positive")
	}
	validateRate("http.jwt", j.Rate, j.Burst, at)
}

func validateRate(p string, rate float64, burst int, at func(string, string, ...any)) {
	if rate < 0 || rate > 1e6 {
		at(p+".rate", "must be between 0 (no limit) and 1e6 requests/s")
	}
	if burst < 0 || burst > 1e6 {
		at(p+".burst", "must be between 0 and 1e6")
	}
	if burst > 0 && rate == 0 {
		at(p+".burst", "a burst needs a rate")
	}
}

// validateTokenFilters checks, once views are known, that every filter of
// a token names a dimension some view has: a typo would otherwise bind the
// token to nothing and lock it out of every view.
func validateTokenFilters(d *decoder, c *Config, at func(string, string, ...any)) {
	for i, t := range c.HTTP.Tokens {
		for _, k := range sortedKeys(t.Filters) {
			found := false
			for _, v := range c.ViewList {
				if v.HasDimension(k) {
					found = true
				}
			}
			if !found && len(c.ViewList) > 0 {
				at(fmt.Sprintf("http.tokens[%d].filters.%s", i, k), "%q is not a dimension of any view", k)
			}
		}
	}
}

// PublicKey reads PublicKeyFile: a PEM "PUBLIC KEY" (PKIX: RSA, ECDSA
// P-256 or Ed25519) or "RSA PUBLIC KEY" (PKCS #1). It returns the key and
// the one JWT algorithm it verifies, so a token cannot pick another one.
func (j JWT) PublicKey() (crypto.PublicKey, string, error) {
	b, err := os.ReadFile(j.PublicKeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, "", errors.New("config: no PEM block in the public key file")
	}
	var key any
	switch blk.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	default:
		return nil, "", fmt.Errorf("config: PEM block %q, want PUBLIC KEY", blk.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("config: public key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("config: RSA key of %d bits, want at least 2048", k.N.BitLen())
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", errors.New("config: ECDSA key not on P-256 (ES256)")
		}
		return k, "ES256", nil
	case ed25519.PublicKey:
		return k, "EdDSA", nil
	}
	return nil, "", fmt.Errorf("config: unsupported public key type %T", key)
}
