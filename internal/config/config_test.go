package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/schemas"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func minimal(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExampleConfigParses(t *testing.T) {
	cfg, err := Parse(lambdalake.ExampleConfig, noEnv)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if len(cfg.SchemaList) != 2 || len(cfg.ViewList) != 2 {
		t.Fatalf("schemas=%d views=%d, want 2 and 2", len(cfg.SchemaList), len(cfg.ViewList))
	}
	orders := cfg.Schema("orders")
	var names []string
	for _, f := range orders.Fields {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "order_id,ts,tenant,country,user_id,amount,coupon" {
		t.Errorf("orders fields in file order = %s", got)
	}
	if f, _ := orders.Field("coupon"); !f.Optional || f.Type != schemas.String {
		t.Errorf("coupon = %+v, want optional string", f)
	}
	rev := cfg.View("revenue")
	if rev.Granularity != time.Minute || rev.HotRetention != 48*time.Hour || rev.Lateness != 5*time.Minute {
		t.Errorf("revenue = %+v", rev)
	}
	var ms []string
	for _, m := range rev.Metrics {
		ms = append(ms, m.Name+"="+m.Agg.String())
	}
	if got := strings.Join(ms, ","); got != "orders=count,revenue=sum,biggest=max,smallest=min,buyers=uniq" {
		t.Errorf("revenue metrics = %s", got)
	}
	if cfg.Compact.Budget != 256<<20 || cfg.Speed.FlushInterval.D() != 200*time.Millisecond {
		t.Errorf("compact.budget=%d speed.flush_interval=%v", cfg.Compact.Budget, cfg.Speed.FlushInterval)
	}
}

func TestDefaultsForViews(t *testing.T) {
	cfg, err := Parse([]byte(minimal(t)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.View("revenue")
	if v.HotRetention != 48*time.Hour || v.Lateness != 5*time.Minute {
		t.Errorf("defaults: hot_retention=%v lateness=%v", v.HotRetention, v.Lateness)
	}
	if v.Shards != 1 {
		t.Errorf("default shards = %d, want 1", v.Shards)
	}
	if got := cfg.Schema("orders").MaxFuture; got != schemas.DefaultMaxFuture {
		t.Errorf("default max_future = %v, want %v", got, schemas.DefaultMaxFuture)
	}
	if got := cfg.Schema("orders").DedupWindow; got != 0 {
		t.Errorf("default dedup_window = %v, want 0 (off)", got)
	}
	if cfg.Speed.DedupMaxBytes != 256<<20 {
		t.Errorf("default speed.dedup_max_bytes = %d, want 256MiB", cfg.Speed.DedupMaxBytes)
	}
	on, err := Parse([]byte(strings.Replace(minimal(t), "time: ts", "time: ts\n    dedup_window: 90m", 1)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := on.Schema("orders").DedupWindow; got != 90*time.Minute {
		t.Errorf("dedup_window: 90m parsed as %v", got)
	}
}

// Each broken config must fail, and the error must name the offending key
// path and, where the problem is in the file, its line.
func TestBrokenConfigsNameTheKey(t *testing.T) {
	base := minimal(t)
	tests := []struct {
		name     string
		yaml     string
		env      map[string]string
		wantPath string
		wantLine int // 0: do not check
		wantMsg  string
	}{
		{"unknown top-level key", "kafak:\n  brokers: [a:1]\n" + base, nil, "kafak", 1, "unknown key"},
		{"unknown nested key", "redis:\n  adress: x\n" + base, nil, "redis.adress", 2, "unknown key"},
		{"wrong type for int", "kafka:\n  partitions: many\n" + base, nil, "kafka.partitions", 2, "want a int"},
		{"list where scalar wanted", "http:\n  addr: [a, b]\n" + base, nil, "http.addr", 2, "want a string"},
		{"bad duration", "speed:\n  flush_interval: soon\n" + base, nil, "speed.flush_interval", 2, "bad duration"},
		{"bad byte size", "compact:\n  budget: lots\n" + base, nil, "compact.budget", 2, "bad size"},
		{"speed max pending too small", "speed:\n  max_pending: 10\n" + base, nil, "speed.max_pending", 2, "at least 1000"},
		{"speed session timeout too long", "speed:\n  session_timeout: 1h\n" + base, nil, "speed.session_timeout", 2, "between 1s and 5m"},
		{"compact session timeout too short", "compact:\n  session_timeout: 100ms\n" + base, nil, "compact.session_timeout", 2, "between 1s and 5m"},
		{"bad lake scheme", "lake:\n  url: gs://b/p\n" + base, nil, "lake.url", 2, "not supported"},
		{"unknown field type", strings.Replace(base, "qty: int64", "qty: integer", 1), nil, "schemas.orders.fields.qty", 12, "unknown type"},
		{"decimal precision too large", strings.Replace(base, "qty: int64", "qty: decimal(19,2)", 1), nil, "schemas.orders.fields.qty", 12, "precision 19 is more than 18"},
		{"decimal scale above precision", strings.Replace(base, "qty: int64", "qty: decimal(4,5)", 1), nil, "schemas.orders.fields.qty", 12, "scale 5 is more than the precision 4"},
		{"decimal precision zero", strings.Replace(base, "qty: int64", "qty: decimal(0,0)", 1), nil, "schemas.orders.fields.qty", 12, "precision must be at least 1"},
		{"decimal negative scale", strings.Replace(base, "qty: int64", "qty: {type: \"decimal(10,-1)\"}", 1), nil, "schemas.orders.fields.qty", 12, "scale must not be negative"},
		{"decimal without P and S", strings.Replace(base, "qty: int64", "qty: decimal", 1), nil, "schemas.orders.fields.qty", 12, "want decimal(P,S)"},
		{"decimal with one argument", strings.Replace(base, "qty: int64", "qty: decimal(18)", 1), nil, "schemas.orders.fields.qty", 12, "want decimal(P,S)"},
		{"decimal unquoted in a flow mapping", strings.Replace(base, "qty: int64", "qty: {type: decimal(10,2), optional: true}", 1), nil, "schemas.orders.fields.qty", 12, `quote the type: {type: "decimal(18,2)"}`},
		{"decimal with words", strings.Replace(base, "qty: int64", "qty: decimal(p,s)", 1), nil, "schemas.orders.fields.qty", 12, "must be integers"},
		{"decimal dimension", strings.Replace(strings.Replace(base, "qty: int64", "qty: decimal(10,2)", 1), "dimensions: [tenant]", "dimensions: [qty]", 1), nil, "views.revenue.dimensions[0]", 17, "a decimal(10,2) field cannot be a dimension"},
		{"max_future negative", strings.Replace(base, "time: ts", "time: ts\n    max_future: -1m", 1), nil, "schemas.orders.max_future", 0, "must not be negative"},
		{"dedup_window negative", strings.Replace(base, "time: ts", "time: ts\n    dedup_window: -1m", 1), nil, "schemas.orders.dedup_window", 0, "must not be negative"},
		{"dedup_window too long", strings.Replace(base, "time: ts", "time: ts\n    dedup_window: 8d", 1), nil, "schemas.orders.dedup_window", 0, "too long: at most 168h"},
		{"dedup_window not a duration", strings.Replace(base, "time: ts", "time: ts\n    dedup_window: soon", 1), nil, "schemas.orders.dedup_window", 5, "bad duration"},
		{"dedup_window without id", strings.Replace(base, "id: order_id", "dedup_window: 2h", 1), nil, "schemas.orders.dedup_window", 0, "needs the schema's id field"},
		{"speed dedup_max_bytes too small", "speed:\n  dedup_max_bytes: 64KiB\n" + base, nil, "speed.dedup_max_bytes", 2, "at least 1MiB"},
		{"max_future too long", strings.Replace(base, "time: ts", "time: ts\n    max_future: 2d", 1), nil, "schemas.orders.max_future", 0, "too long"},
		{"time field missing", strings.Replace(base, "time: ts", "time: when", 1), nil, "schemas.orders.time", 4, `no field "when"`},
		{"time field not a timestamp", strings.Replace(base, "time: ts", "time: tenant", 1), nil, "schemas.orders.time", 4, "required timestamp"},
		{"id field missing", strings.Replace(base, "id: order_id", "id: oid", 1), nil, "schemas.orders.id", 5, `no field "oid"`},
		{"view names missing schema", strings.Replace(base, "schema: orders", "schema: order", 1), nil, "views.revenue.schema", 15, `no schema "order"`},
		{"view names missing field", strings.Replace(base, "field: amount", "field: amt", 1), nil, "views.revenue.metrics.revenue.field", 20, `no field "amt"`},
		{"sum over a string", strings.Replace(base, "field: amount", "field: tenant", 1), nil, "views.revenue.metrics.revenue.field", 20, "sum over string"},
		{"granularity does not divide an hour", strings.Replace(base, "granularity: 1m", "granularity: 7m", 1), nil, "views.revenue.granularity", 16, "does not divide an hour"},
		{"unknown dimension", strings.Replace(base, "dimensions: [tenant]", "dimensions: [tenant, region]", 1), nil, "views.revenue.dimensions[1]", 17, `no field "region"`},
		{"float dimension", strings.Replace(base, "dimensions: [tenant]", "dimensions: [amount]", 1), nil, "views.revenue.dimensions[0]", 17, "cannot be a dimension"},
		{"unknown agg", strings.Replace(base, "agg: count", "agg: avg", 1), nil, "views.revenue.metrics.orders.agg", 19, "unknown agg"},
		{"count with field", strings.Replace(base, "{agg: count}", "{agg: count, field: amount}", 1), nil, "views.revenue.metrics.orders.field", 19, "count takes no field"},
		{"metric clashes with dimension", strings.Replace(base, "buyers:", "tenant:", 1), nil, "views.revenue.metrics.tenant", 21, "clashes"},
		{"hot retention too short", base + "    hot_retention: 30m\n", nil, "views.revenue.hot_retention", 22, "too short"},
		{"shards zero", base + "    shards: 0\n", nil, "views.revenue.shards", 22, "between 1 and 64"},
		{"shards negative", base + "    shards: -2\n", nil, "views.revenue.shards", 22, "between 1 and 64"},
		{"shards too many", base + "    shards: 65\n", nil, "views.revenue.shards", 22, "between 1 and 64"},
		{"shards not a number", base + "    shards: three\n", nil, "views.revenue.shards", 22, "want a int"},
		{"unknown metric key", strings.Replace(base, "{agg: count}", "{agg: count, filed: x}", 1), nil, "views.revenue.metrics.orders.filed", 19, "unknown key"},
		{"bad scope", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:all]}\n" + base, nil, "http.tokens[0].scopes[0]", 3, "unknown scope"},
		{"duplicate token", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views]}\n    - {name: b, token: 0123456789abcdef0, scopes: [admin]}\n" + base, nil, "http.tokens[1].token", 4, "same token as http.tokens[0] (a)"},
		{"duplicate token name", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views]}\n    - {name: a, token: 0123456789abcdef1, scopes: [admin]}\n" + base, nil, "http.tokens[1].name", 4, "already used"},
		{"token without name", "http:\n  tokens:\n    - {token: 0123456789abcdef0, scopes: [read:views]}\n" + base, nil, "http.tokens[0].name", 0, "required"},
		{"token negative rate", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views], rate: -1}\n" + base, nil, "http.tokens[0].rate", 0, "between 0"},
		{"token burst without rate", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views], burst: 5}\n" + base, nil, "http.tokens[0].burst", 0, "needs a rate"},
		{"token rate not a number", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views], rate: fast}\n" + base, nil, "http.tokens[0].rate", 3, "want a float64"},
		{"token filter on no dimension", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views], filters: {region: eu}}\n" + base, nil, "http.tokens[0].filters.region", 3, "not a dimension of any view"},
		{"token filter empty", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [read:views], filters: {tenant: \"\"}}\n" + base, nil, "http.tokens[0].filters.tenant", 3, "empty value"},
		{"admin token with filters", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [admin], filters: {tenant: t1}}\n" + base, nil, "http.tokens[0].filters", 3, "admin token cannot"},
		{"token unknown key", "http:\n  tokens:\n    - {name: a, token: 0123456789abcdef0, scopes: [admin], rps: 3}\n" + base, nil, "http.tokens[0].rps", 3, "unknown key"},
		{"write timeout not above timeout", "http:\n  timeout: 10s\n  write_timeout: 5s\n" + base, nil, "http.write_timeout", 3, "at least twice http.timeout"},
		{"idle timeout zero", "http:\n  idle_timeout: 0s\n" + base, nil, "http.idle_timeout", 2, "must be positive"},
		{"body timeout bad", "http:\n  body_timeout: slow\n" + base, nil, "http.body_timeout", 2, "bad duration"},
		{"token queries above max queries", "http:\n  max_queries: 4\n  max_token_queries: 8\n" + base, nil, "http.max_token_queries", 3, "between 1 and http.max_queries"},
		{"cache bytes too small", "http:\n  cache_bytes: 1KiB\n" + base, nil, "http.cache_bytes", 2, "at least 1MiB"},
		{"rollup cache bytes not a size", "http:\n  rollup_cache_bytes: lots\n" + base, nil, "http.rollup_cache_bytes", 2, "bad size"},
		{"max cold zero", "http:\n  max_cold: 0\n" + base, nil, "http.max_cold", 2, "at least 1"},
		{"gc percent too low", "http:\n  gc_percent: 10\n" + base, nil, "http.gc_percent", 2, "between 50 and 10000"},
		{"jwt secret too short", "http:\n  jwt:\n    secret: short\n" + base, nil, "http.jwt.secret", 3, "at least 32 bytes"},
		{"jwt public key missing", "http:\n  jwt:\n    public_key_file: /nonexistent/key.pem\n" + base, nil, "http.jwt.public_key_file", 3, "no such file"},
		{"jwt public key not PEM", "http:\n  jwt:\n    public_key_file: testdata/minimal.yaml\n" + base, nil, "http.jwt.public_key_file", 3, "no PEM block"},
		{"jwt issuer without key", "http:\n  jwt:\n    issuer: me\n" + base, nil, "http.jwt", 3, "neither secret nor public_key_file"},
		{"jwt unknown key", "http:\n  jwt:\n    algorithm: none\n" + base, nil, "http.jwt.algorithm", 3, "unknown key"},
		{"bad env jwt rate", base, map[string]string{"LAMBDALAKE_HTTP_JWT_RATE": "-3"}, "http.jwt.rate", 0, "between 0"},
		{"http cache ttl too long", "http:\n  cache_ttl: 5m\n" + base, nil, "http.cache_ttl", 2, "between 0 and 1m"},
		{"http cold hours negative", "http:\n  cold_max_hours: -1\n" + base, nil, "http.cold_max_hours", 2, "between 0 and 168"},
		{"bad cron", "jobs:\n  merge: every hour\n" + base, nil, "jobs.merge", 2, "bad cron"},
		{"bad jobs namespace", "jobs:\n  namespace: \"a}b\"\n" + base, nil, "jobs.namespace", 2, "hash tag"},
		{"no schemas", "kafka:\n  partitions: 2\n", nil, "schemas", 0, "at least one schema"},
		{"bad env override", base, map[string]string{"LAMBDALAKE_KAFKA_PARTITIONS": "x"}, "LAMBDALAKE_KAFKA_PARTITIONS", 0, "from environment"},
		{"bad env duration", base, map[string]string{"LAMBDALAKE_SPEED_FLUSH_INTERVAL": "-"}, "LAMBDALAKE_SPEED_FLUSH_INTERVAL", 0, "bad duration"},
		{"invalid yaml", "kafka: [\n", nil, "(file)", 0, "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), envOf(tt.env))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T, want Errors", err)
			}
			for _, e := range errs {
				if e.Path == tt.wantPath && strings.Contains(e.Msg, tt.wantMsg) {
					if tt.wantLine != 0 && e.Line != tt.wantLine {
						t.Errorf("%s: line %d, want %d", e.Path, e.Line, tt.wantLine)
					}
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%v", tt.wantPath, tt.wantMsg, err)
		})
	}
}

// decimal(P,S) is read by the strict parser into a Type carrying P and S,
// in either field form; uniq, sum, min and max over it are accepted.
func TestDecimalFields(t *testing.T) {
	base := minimal(t)
	y := strings.Replace(base, "amount: float64", "amount: decimal(18,2)", 1)
	y = strings.Replace(y, "qty: int64", "qty: {type: \"decimal( 9 , 0 )\", optional: true}", 1)
	y = strings.Replace(y, "buyers: {agg: uniq, field: user_id}", "buyers: {agg: uniq, field: user_id}\n      amounts: {agg: uniq, field: amount}", 1)
	y = strings.Replace(y, "      revenue: {agg: sum, field: amount}\n", "      revenue: {agg: sum, field: amount}\n      biggest: {agg: max, field: amount}\n      smallest: {agg: min, field: qty}\n", 1)
	cfg, err := Parse([]byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Schema("orders")
	amount, _ := s.Field("amount")
	qty, _ := s.Field("qty")
	want18, _ := schemas.DecimalType(18, 2)
	want9, _ := schemas.DecimalType(9, 0)
	if amount.Type != want18 || amount.Type.String() != "decimal(18,2)" {
		t.Errorf("amount = %v, want decimal(18,2)", amount.Type)
	}
	if qty.Type != want9 || !qty.Optional {
		t.Errorf("qty = %+v, want optional decimal(9,0)", qty)
	}
	if m, ok := cfg.View("revenue").Metric("amounts"); !ok || m.Agg != schemas.Uniq {
		t.Errorf("uniq over a decimal: %+v", m)
	}
	// sum, min and max over decimals: their values are the field's
	// decimal type (scaled integers, printed with its scale).
	v := cfg.View("revenue")
	for name, want := range map[string]schemas.Type{"revenue": want18, "biggest": want18, "smallest": want9} {
		m, ok := v.Metric(name)
		if !ok {
			t.Fatalf("no metric %s", name)
		}
		if got := v.MetricType(m); got != want {
			t.Errorf("%s over a decimal: metric type %v, want %v", name, got, want)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := Parse([]byte(minimal(t)), envOf(map[string]string{
		"LAMBDALAKE_KAFKA_BROKERS":        "k1:9092, k2:9092",
		"LAMBDALAKE_S3_ENDPOINT":          "http://s3.local:4566",
		"LAMBDALAKE_LAKE_URL":             "file:///tmp/lake",
		"LAMBDALAKE_SPEED_FLUSH_INTERVAL": "50ms",
		"LAMBDALAKE_LAKE_S3_PATH_STYLE":   "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "k1:9092,k2:9092" {
		t.Errorf("brokers = %s", got)
	}
	if cfg.Lake.S3.Endpoint != "http://s3.local:4566" || cfg.Lake.URL != "file:///tmp/lake" || cfg.Lake.S3.PathStyle {
		t.Errorf("lake = %+v", cfg.Lake)
	}
	if cfg.Speed.FlushInterval.D() != 50*time.Millisecond {
		t.Errorf("flush_interval = %v", cfg.Speed.FlushInterval)
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	y := "kafak: 1\nredis:\n  adress: x\n" + strings.Replace(minimal(t), "granularity: 1m", "granularity: 7m", 1)
	_, err := Parse([]byte(y), noEnv)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Errorf("errors not in line order: %v", err)
		}
	}
}

func TestParseByteSizeAndDuration(t *testing.T) {
	sizes := map[string]int64{"256MiB": 256 << 20, "64MB": 64e6, "1024": 1024, "1GiB": 1 << 30, "10KiB": 10240}
	for s, want := range sizes {
		if got, err := ParseByteSize(s); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	durs := map[string]time.Duration{"30d": 30 * 24 * time.Hour, "48h": 48 * time.Hour, "200ms": 200 * time.Millisecond}
	for s, want := range durs {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

func TestHTTPTokensAndLimits(t *testing.T) {
	y := `http:
  timeout: 5s
  body_timeout: 20s
  tokens:
    - name: acme-dash
      token: 0123456789abcdef0
      scopes: [read:views]
      rate: 20
      burst: 40
      filters: {tenant: t07}
    - {name: ops, token: 0123456789abcdef1, scopes: [admin]}
  jwt:
    secret: 0123456789abcdef0123456789abcdef
    issuer: acme
    rate: 5
` + minimal(t)
	cfg, err := Parse([]byte(y), envOf(map[string]string{"LAMBDALAKE_HTTP_IDLE_TIMEOUT": "30s"}))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.HTTP
	tok := h.Tokens[0]
	if tok.Rate != 20 || tok.Burst != 40 || tok.Filters["tenant"] != "t07" || h.Tokens[1].Rate != 0 {
		t.Errorf("tokens = %+v", h.Tokens)
	}
	if h.BodyTimeout.D() != 20*time.Second || h.IdleTimeout.D() != 30*time.Second || h.ReadHeaderTimeout.D() != 5*time.Second ||
		h.WriteTimeout.D() != time.Minute || h.MaxQueries != 32 || h.MaxTokenQueries != 16 || h.MaxCold != 2 ||
		h.CacheBytes != 64<<20 || h.RollupCacheBytes != 256<<20 {
		t.Errorf("http = %+v", h)
	}
	if !h.JWT.Enabled() || h.JWT.Issuer != "acme" || h.JWT.Rate != 5 || h.JWT.MaxTTL.D() != 24*time.Hour {
		t.Errorf("jwt = %+v", h.JWT)
	}
}

func TestJWTPublicKey(t *testing.T) {
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	pkix := func(k any) []byte {
		b, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b})
	}
	tests := []struct {
		name    string
		pem     []byte
		wantAlg string // "" = refused
		wantErr string
	}{
		{"rsa pkix", pkix(&rsa2048.PublicKey), "RS256", ""},
		{"rsa pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsa2048.PublicKey)}), "RS256", ""},
		{"ecdsa p256", pkix(&p256.PublicKey), "ES256", ""},
		{"ed25519", pkix(edPub), "EdDSA", ""},
		{"rsa too short", pkix(&rsa1024.PublicKey), "", "at least 2048"},
		{"ecdsa p384", pkix(&p384.PublicKey), "", "P-256"},
		{"private key block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "", "want PUBLIC KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, tt.pem, 0o600); err != nil {
				t.Fatal(err)
			}
			_, alg, err := JWT{PublicKeyFile: path}.PublicKey()
			if tt.wantAlg != "" {
				if err != nil || alg != tt.wantAlg {
					t.Errorf("alg %q, err %v; want %s", alg, err, tt.wantAlg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// views.NAME.shards is read as given (the speed layer spreads the view's
// hot data over that many hash tags).
func TestViewShards(t *testing.T) {
	for _, n := range []int{1, 3, 64} {
		cfg, err := Parse([]byte(minimal(t)+"    shards: "+strconv.Itoa(n)+"\n"), noEnv)
		if err != nil {
			t.Fatalf("shards: %d: %v", n, err)
		}
		if got := cfg.View("revenue").Shards; got != n {
			t.Errorf("shards: %d read as %d", n, got)
		}
	}
}
