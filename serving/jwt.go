package serving

import (
	"crypto"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lambdalake/lambdalake/internal/config"
)

// JWTConfig configures signed bearer tokens (github.com/golang-jwt/jwt/v5).
// Secret verifies HS256: simple to run, but whoever can verify can also
// mint. PublicKey verifies the one asymmetric algorithm of its type
// (RS256, ES256 or EdDSA): the issuer keeps the private key and a server
// that is read or leaked cannot mint tokens. Either or both.
type JWTConfig struct {
	Secret    []byte
	PublicKey crypto.PublicKey
	KeyAlg    string // the algorithm PublicKey verifies
	Issuer    string // required iss, if set
	Audience  string // required aud, if set
	MaxTTL    time.Duration
	// Rate and Burst apply to a JWT without a rate claim and cap one
	// with it; 0 is no limit.
	Rate  float64
	Burst int
}

// JWTFromConfig reads the http.jwt settings; nil when JWTs are off.
func JWTFromConfig(c config.JWT) (*JWTConfig, error) {
	if !c.Enabled() {
		return nil, nil
	}
	jc := &JWTConfig{Secret: []byte(c.Secret), Issuer: c.Issuer, Audience: c.Audience, MaxTTL: c.MaxTTL.D(), Rate: c.Rate, Burst: c.Burst}
	if c.PublicKeyFile != "" {
		k, alg, err := c.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("serving: %w", err)
		}
		jc.PublicKey, jc.KeyAlg = k, alg
	}
	return jc, nil
}

// jwtClaims are what a lambdalake JWT carries besides the registered
// claims: exp and sub are required; iat, nbf, iss and aud are checked when
// present (iss and aud are required when configured).
type jwtClaims struct {
	jwt.RegisteredClaims
	Scopes  []string          `json:"scopes"`
	Filters map[string]string `json:"filters"`
	Rate    float64           `json:"rate"`
	Burst   int               `json:"burst"`
}

// jwtScopes are the scopes a JWT may carry: tokens handed to customers
// never administer the deployment.
var jwtScopes = []string{"read:views", "write:events"}

type jwtVerifier struct {
	cfg    JWTConfig
	parser *jwt.Parser
	now    func() time.Time
}

func newJWTVerifier(c *JWTConfig, now func() time.Time) *jwtVerifier {
	if c == nil {
		return nil
	}
	var methods []string
	if len(c.Secret) > 0 {
		methods = append(methods, "HS256")
	}
	if c.PublicKey != nil {
		methods = append(methods, c.KeyAlg)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(30 * time.Second), jwt.WithTimeFunc(now), jwt.WithStrictDecoding()}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = 24 * time.Hour
	}
	return &jwtVerifier{cfg: *c, parser: jwt.NewParser(opts...), now: now}
}

// looksLikeJWT: three base64url parts, so a mistyped static token is
// "unknown token" rather than a JWT parse error.
func looksLikeJWT(tok string) bool {
	return strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ")
}

// verify checks a JWT and returns its principal. Errors are safe to show
// the caller: they say what is wrong with the token, not with the server.
func (v *jwtVerifier) verify(tok string, limits *rateLimits) (*principal, error) {
	var c jwtClaims
	_, err := v.parser.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused any other algorithm; each key
		// answers only for its own, so an RS256 public key can never be
		// used as an HS256 secret.
		if t.Method.Alg() == "HS256" {
			return v.cfg.Secret, nil
		}
		return v.cfg.PublicKey, nil
	})
	if err != nil {
		return nil, fmt.Errorf("invalid JWT: %w", jwtReason(err))
	}
	if c.Subject == "" {
		return nil, errors.New("invalid JWT: no sub claim (it names the token in logs and rate limits)")
	}
	issued := v.now()
	if c.IssuedAt != nil {
		issued = c.IssuedAt.Time
	}
	if ttl := c.ExpiresAt.Sub(issued); ttl > v.cfg.MaxTTL+time.Minute {
		return nil, fmt.Errorf("invalid JWT: lives %s, longer than http.jwt.max_ttl %s", ttl.Round(time.Second), v.cfg.MaxTTL)
	}
	if len(c.Scopes) == 0 {
		return nil, errors.New("invalid JWT: no scopes claim")
	}
	for _, s := range c.Scopes {
		if !slices.Contains(jwtScopes, s) {
			return nil, fmt.Errorf("invalid JWT: scope %q (a JWT may carry %s)", clip(s), strings.Join(jwtScopes, ", "))
		}
	}
	for d, val := range c.Filters {
		if d == "" || val == "" {
			return nil, errors.New("invalid JWT: empty filter")
		}
	}
	if c.Rate < 0 || c.Burst < 0 {
		return nil, errors.New("invalid JWT: negative rate or burst")
	}
	p := &principal{name: "jwt:" + clip(c.Subject), scopes: c.Scopes, filters: maps.Clone(c.Filters)}
	r, burst := c.Rate, c.Burst
	if v.cfg.Rate > 0 && (r == 0 || r > v.cfg.Rate) {
		r = v.cfg.Rate
	}
	if v.cfg.Burst > 0 && (burst == 0 || burst > v.cfg.Burst) {
		burst = v.cfg.Burst
	}
	if r > 0 {
		p.limit = limits.get(p.name, r, burst)
	}
	return p, nil
}

// jwtReason keeps the library's reason for a refusal (expired, bad
// signature, wrong issuer) without its wrapping.
func jwtReason(err error) error {
	for _, e := range []error{jwt.ErrTokenExpired, jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenSignatureInvalid, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenUnverifiable, jwt.ErrTokenMalformed} {
		if errors.Is(err, e) {
			return e
		}
	}
	return errors.New("not verifiable")
}
