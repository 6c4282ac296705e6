// Package config reads lambdalake.yaml (DESIGN §1 and §5): connection
// settings for Kafka, Redis, the lake and HTTP, per-role tuning, and the
// schemas and views that both layers compute. Parsing is strict: an unknown
// key, a wrong type or an inconsistent view fails at start with the key path
// and line. LAMBDALAKE_* environment variables override connection settings.
package config

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/lambdalake/lambdalake/schemas"
)

// Config is a whole lambdalake.yaml.
type Config struct {
	Kafka   Kafka                 `yaml:"kafka"`
	Redis   Redis                 `yaml:"redis"`
	Lake    Lake                  `yaml:"lake"`
	HTTP    HTTP                  `yaml:"http"`
	Speed   Speed                 `yaml:"speed"`
	Compact Compact               `yaml:"compact"`
	Jobs    Jobs                  `yaml:"jobs"`
	Schemas map[string]SchemaSpec `yaml:"schemas"`
	Views   map[string]ViewSpec   `yaml:"views"`

	// Resolved definitions, built by validation, in file order.
	SchemaList []*schemas.Schema `yaml:"-"`
	ViewList   []*schemas.View   `yaml:"-"`
}

type Kafka struct {
	Brokers    []string `yaml:"brokers"`
	Partitions int      `yaml:"partitions"` // for topics lambdalake creates
	ClientID   string   `yaml:"client_id"`
}

type Redis struct {
	// Addrs: one address for a single Redis, several for a Redis Cluster.
	Addrs    []string `yaml:"addrs"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	DB       int      `yaml:"db"`
}

type Lake struct {
	URL string `yaml:"url"` // s3://bucket/prefix or file:///dir
	S3  S3     `yaml:"s3"`
}

type S3 struct {
	Endpoint        string   `yaml:"endpoint"` // empty: AWS
	Region          string   `yaml:"region"`
	PathStyle       bool     `yaml:"path_style"`
	AccessKeyID     string   `yaml:"access_key_id"` // empty: the AWS default chain
	SecretAccessKey string   `yaml:"secret_access_key"`
	MaxAttempts     int      `yaml:"max_attempts"`
	PartSize        ByteSize `yaml:"part_size"` // multipart above this size
}

type HTTP struct {
	Addr     string   `yaml:"addr"`
	Tokens   []Token  `yaml:"tokens"`
	MaxRange Duration `yaml:"max_range"`
	MaxRows  int      `yaml:"max_rows"`
	Timeout  Duration `yaml:"timeout"`
	MaxBody  ByteSize `yaml:"max_body"`
	// CacheTTL keeps an identical query's answer this long while B is
	// unchanged (0: no cache); it bounds how stale the speed part may be.
	CacheTTL Duration `yaml:"cache_ttl"`
	// ColdMaxHours: a query range Redis no longer holds is computed from
	// the raw lake when it spans at most this many hours, else listed
	// under gaps (0: always gaps).
	ColdMaxHours int `yaml:"cold_max_hours"`

	// Timeouts against slow or idle clients: ReadHeaderTimeout for a
	// request's headers, BodyTimeout for its body (from the handler's
	// start), WriteTimeout for the whole exchange after the headers,
	// IdleTimeout for a keep-alive connection between requests.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	BodyTimeout       Duration `yaml:"body_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// MaxQueries bounds the queries served at once by this server (503
	// past it); MaxTokenQueries the share one token may hold (429 past
	// it), so one client cannot take every slot.
	MaxQueries      int `yaml:"max_queries"`
	MaxTokenQueries int `yaml:"max_token_queries"`
	// MaxCold bounds the hours computed from the raw lake at once.
	MaxCold int `yaml:"max_cold"`
	// JWT: signed tokens accepted besides the static ones.
	JWT JWT `yaml:"jwt"`
	// CacheBytes bounds the encoded answers kept for cache_ttl;
	// RollupCacheBytes the batch hours kept rolled up to a query's shape
	// and, in its other half, their hour cubes.
	CacheBytes       ByteSize `yaml:"cache_bytes"`
	RollupCacheBytes ByteSize `yaml:"rollup_cache_bytes"`
	// GCPercent is the Go garbage collector's GOGC for a process that
	// serves queries (serve, all, dev), unless the environment sets GOGC:
	// its caches are large and long-lived, and the default of 100 marks
	// them all again each time the heap doubles.
	GCPercent int `yaml:"gc_percent"`
}

type Token struct {
	Name   string   `yaml:"name"`
	Token  string   `yaml:"token"`
	Scopes []string `yaml:"scopes"`
	// Rate limits the token's requests (requests/s, token bucket of
	// Burst); 0 is no limit.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// Filters bind every query made with the token to these dimension
	// values ({tenant: t07}).
	Filters map[string]string `yaml:"filters"`
}

// JWT configures signed bearer tokens (claims: scopes, filters, rate,
// burst, exp). Secret verifies HS256; PublicKeyFile (PEM) verifies RS256,
// ES256 or EdDSA, whichever its key type is. Either or both.
type JWT struct {
	Secret        string   `yaml:"secret"`
	PublicKeyFile string   `yaml:"public_key_file"`
	Issuer        string   `yaml:"issuer"`   // required iss claim, if set
	Audience      string   `yaml:"audience"` // required aud claim, if set
	MaxTTL        Duration `yaml:"max_ttl"`  // longest exp - iat accepted
	// Rate and Burst apply to a JWT that carries no rate claim, and
	// bound one that does.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// Enabled reports whether JWTs are accepted.
func (j JWT) Enabled() bool { return j.Secret != "" || j.PublicKeyFile != "" }

// Scopes a token may carry (DESIGN §4).
var Scopes = []string{"read:views", "write:events", "admin"}

type Speed struct {
	Group         string   `yaml:"group"`
	FlushInterval Duration `yaml:"flush_interval"`
	// MaxPending: a partition flushes early once it holds this many
	// (bucket, dimensions) cells plus distinct uniq values, which bounds
	// memory whatever the traffic.
	MaxPending int `yaml:"max_pending"`
	// SessionTimeout: a speed worker that stops heartbeating loses its
	// partitions after this long.
	SessionTimeout Duration `yaml:"session_timeout"`
	// MetricsAddr serves /metrics for the `speed` role ("" = none).
	MetricsAddr string `yaml:"metrics_addr"`
	// ReadCache bounds the memory a serving process keeps of decoded hot
	// buckets and their rollups (speed.Reader), so a query reads from
	// Redis only the buckets that changed since; 0: keep nothing.
	ReadCache ByteSize `yaml:"read_cache"`
	// DedupMaxBytes bounds the memory a speed process keeps of the ids of
	// its partitions' dedup windows (schemas.NAME.dedup_window); past it a
	// window drops its oldest hour.
	DedupMaxBytes ByteSize `yaml:"dedup_max_bytes"`
}

type Compact struct {
	Group        string   `yaml:"group"`
	Budget       ByteSize `yaml:"budget"` // memory budget per process
	MaxFileRows  int      `yaml:"max_file_rows"`
	MaxFileBytes ByteSize `yaml:"max_file_bytes"`
	MaxFileAge   Duration `yaml:"max_file_age"`
	// SessionTimeout: a compactor that stops heartbeating loses its
	// partitions after this long (Kafka accepts 6s and up by default).
	SessionTimeout Duration `yaml:"session_timeout"`
}

type Jobs struct {
	Recompute string   `yaml:"recompute"` // cron expressions; seconds field optional
	Merge     string   `yaml:"merge"`
	Retention string   `yaml:"retention"`
	Lease     Duration `yaml:"lease"`
	// Namespace is the Redis hash tag of the job locks and history, so
	// separate deployments (or tests) sharing a Redis do not meet.
	Namespace string `yaml:"namespace"`
}

type SchemaSpec struct {
	Topic     string               `yaml:"topic"`
	Time      string               `yaml:"time"`
	ID        string               `yaml:"id"`
	Fields    map[string]FieldSpec `yaml:"fields"`
	Retention Duration             `yaml:"retention"` // raw lake and dead letters; 0 = keep
	// MaxFuture: how far ahead of the wall clock an event time may be;
	// later events are dead-lettered (future) by both layers. 0 = 15m.
	MaxFuture Duration `yaml:"max_future"`
	// DedupWindow: how long (event time, whole UTC hours) the speed layer
	// remembers the ids it applied, to skip their copies; 0 = off. Needs
	// id.
	DedupWindow Duration `yaml:"dedup_window"`
}

// FieldSpec is written either as a bare type ("string") or as
// {type: string, optional: true}.
type FieldSpec struct {
	Type     string `yaml:"type"`
	Optional bool   `yaml:"optional"`
}

func (f *FieldSpec) fromScalar(s string) error { f.Type = s; return nil }

type ViewSpec struct {
	Schema       string                `yaml:"schema"`
	Granularity  Duration              `yaml:"granularity"`
	Dimensions   []string              `yaml:"dimensions"`
	Metrics      map[string]MetricSpec `yaml:"metrics"`
	HotRetention Duration              `yaml:"hot_retention"`
	Lateness     Duration              `yaml:"lateness"`
	Retention    Duration              `yaml:"retention"` // batch view hours; 0 = keep
	// Shards: how many Redis hash tags the speed layer spreads the view's
	// hot data over (partition % shards); default 1, at most 64.
	Shards int `yaml:"shards"`
}

type MetricSpec struct {
	Agg   string `yaml:"agg"`
	Field string `yaml:"field"`
}

// Defaults returns a Config with every setting at its default and no schemas.
// The defaults point at the local stack of DESIGN §6.
func Defaults() Config {
	return Config{
		Kafka: Kafka{Brokers: []string{"127.0.0.1:9092"}, Partitions: 4, ClientID: "lambdalake"},
		Redis: Redis{Addrs: []string{"127.0.0.1:6379"}},
		Lake: Lake{URL: "s3://lambdalake/lake", S3: S3{
			Endpoint: "http://127.0.0.1:4566", Region: "us-east-1", PathStyle: true,
			AccessKeyID: "test", SecretAccessKey: "test", MaxAttempts: 10, PartSize: 16 << 20,
		}},
		HTTP: HTTP{Addr: "127.0.0.1:8080", MaxRange: Duration(31 * 24 * time.Hour), MaxRows: 100000,
			Timeout: Duration(10 * time.Second), MaxBody: 10 << 20, CacheTTL: Duration(time.Second), ColdMaxHours: 6,
			ReadHeaderTimeout: Duration(5 * time.Second), BodyTimeout: Duration(30 * time.Second),
			WriteTimeout: Duration(time.Minute), IdleTimeout: Duration(time.Minute),
			MaxQueries: 32, MaxTokenQueries: 16, MaxCold: 2, JWT: JWT{MaxTTL: Duration(24 * time.Hour)},
			CacheBytes: 64 << 20, RollupCacheBytes: 256 << 20, GCPercent: 300},
		Speed: Speed{Group: "lambdalake-speed", FlushInterval: Duration(200 * time.Millisecond),
			MaxPending: 100_000, SessionTimeout: Duration(10 * time.Second), MetricsAddr: "127.0.0.1:9464", ReadCache: 256 << 20,
			DedupMaxBytes: 256 << 20},
		Compact: Compact{Group: "lambdalake-compact", Budget: 256 << 20, MaxFileRows: 1_000_000,
			MaxFileBytes: 64 << 20, MaxFileAge: Duration(time.Minute), SessionTimeout: Duration(10 * time.Second)},
		Jobs: Jobs{Recompute: "0 */2 * * * *", Merge: "0 */15 * * * *", Retention: "0 0 * * * *",
			Lease: Duration(30 * time.Second), Namespace: "jobs"},
	}
}

// Load reads, overrides from the environment, and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, os.LookupEnv)
}

// Parse is Load on bytes, with the environment given as a lookup function
// so tests need not touch the process environment.
func Parse(data []byte, env func(string) (string, bool)) (*Config, error) {
	cfg := Defaults()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{{Path: "(file)", Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	d := &decoder{lines: map[string]int{}, order: map[string][]string{}}
	d.decode(&root, reflect.ValueOf(&cfg).Elem(), "")
	if env != nil {
		applyEnv(d, &cfg, env)
	}
	validate(d, &cfg)
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return &cfg, nil
}

// Schema returns a resolved schema by name.
func (c *Config) Schema(name string) *schemas.Schema {
	for _, s := range c.SchemaList {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// View returns a resolved view by name.
func (c *Config) View(name string) *schemas.View {
	for _, v := range c.ViewList {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// ViewsOf returns the views computed over a schema.
func (c *Config) ViewsOf(schema string) []*schemas.View {
	var vs []*schemas.View
	for _, v := range c.ViewList {
		if v.Schema.Name == schema {
			vs = append(vs, v)
		}
	}
	return vs
}

var identRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

func validate(d *decoder, c *Config) {
	at := func(path, format string, args ...any) {
		d.errs = append(d.errs, &Error{Path: path, Line: d.lines[path], Msg: fmt.Sprintf(format, args...)})
	}
	validateServices(c, at)
	validateHTTP(c, at)
	validateRoles(c, at)
	validateSchemas(d, c, at)
	validateViews(d, c, at)
	validateTokenFilters(d, c, at)
	sortErrors(d.errs)
}

// validateServices checks where Kafka, Redis and the lake are.
func validateServices(c *Config, at func(string, string, ...any)) {
	if len(c.Kafka.Brokers) == 0 {
		at("kafka.brokers", "at least one broker is required")
	}
	if c.Kafka.Partitions < 1 {
		at("kafka.partitions", "must be at least 1, got %d", c.Kafka.Partitions)
	}
	if len(c.Redis.Addrs) == 0 {
		at("redis.addrs", "at least one address is required")
	}
	if u, err := url.Parse(c.Lake.URL); err != nil {
		at("lake.url", "not a URL: %v", err)
	} else {
		switch u.Scheme {
		case "s3":
			if u.Host == "" {
				at("lake.url", "s3 URL needs a bucket: s3://bucket/prefix")
			}
		case "file":
			if u.Path == "" {
				at("lake.url", "file URL needs a path: file:///dir")
			}
		default:
			at("lake.url", "scheme %q not supported (want s3:// or file://)", u.Scheme)
		}
	}
	if c.Lake.S3.MaxAttempts < 1 {
		at("lake.s3.max_attempts", "must be at least 1")
	}
	if c.Lake.S3.PartSize < 5<<20 {
		at("lake.s3.part_size", "must be at least 5MiB (the S3 minimum part size)")
	}
}

// validateHTTP checks the serving role's settings.
func validateHTTP(c *Config, at func(string, string, ...any)) {
	if c.HTTP.Addr == "" {
		at("http.addr", "required")
	}
	validateHTTPAccess(c, at)
	if c.HTTP.MaxRows < 1 {
		at("http.max_rows", "must be at least 1")
	}
	if c.HTTP.MaxBody < 1 {
		at("http.max_body", "must be at least 1 byte")
	}
	if c.HTTP.CacheTTL < 0 || c.HTTP.CacheTTL.D() > time.Minute {
		at("http.cache_ttl", "must be between 0 and 1m")
	}
	if c.HTTP.ColdMaxHours < 0 || c.HTTP.ColdMaxHours > 168 {
		at("http.cold_max_hours", "must be between 0 and 168")
	}
}

// validateRoles checks the speed, compact and jobs roles' settings.
func validateRoles(c *Config, at func(string, string, ...any)) {
	positive := map[string]Duration{
		"http.max_range": c.HTTP.MaxRange, "http.timeout": c.HTTP.Timeout,
		"speed.flush_interval": c.Speed.FlushInterval, "compact.max_file_age": c.Compact.MaxFileAge,
		"jobs.lease": c.Jobs.Lease,
	}
	for _, p := range sortedKeys(positive) {
		if positive[p] <= 0 {
			at(p, "must be positive")
		}
	}
	if c.Compact.Budget < 16<<20 {
		at("compact.budget", "must be at least 16MiB")
	}
	if c.Compact.MaxFileRows < 1 {
		at("compact.max_file_rows", "must be at least 1")
	}
	if c.Compact.MaxFileBytes < 1<<20 {
		at("compact.max_file_bytes", "must be at least 1MiB")
	}
	if c.Compact.SessionTimeout.D() < time.Second || c.Compact.SessionTimeout.D() > 5*time.Minute {
		at("compact.session_timeout", "must be between 1s and 5m")
	}
	cronParser := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	for p, expr := range map[string]string{"jobs.recompute": c.Jobs.Recompute, "jobs.merge": c.Jobs.Merge, "jobs.retention": c.Jobs.Retention} {
		if _, err := cronParser.Parse(expr); err != nil {
			at(p, "bad cron expression %q: %v", expr, err)
		}
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(c.Jobs.Namespace) {
		at("jobs.namespace", "must be letters, digits, _ or - (it becomes a Redis hash tag)")
	}
	if c.Speed.Group == "" {
		at("speed.group", "required")
	}
	if c.Speed.MaxPending < 1000 {
		at("speed.max_pending", "must be at least 1000")
	}
	if c.Speed.DedupMaxBytes < 1<<20 {
		at("speed.dedup_max_bytes", "must be at least 1MiB")
	}
	if c.Speed.ReadCache < 0 {
		at("speed.read_cache", "must not be negative")
	}
	if c.Speed.SessionTimeout.D() < time.Second || c.Speed.SessionTimeout.D() > 5*time.Minute {
		at("speed.session_timeout", "must be between 1s and 5m")
	}
	if c.Compact.Group == "" {
		at("compact.group", "required")
	}

}

func validateSchemas(d *decoder, c *Config, at func(string, string, ...any)) {
	if len(c.Schemas) == 0 {
		at("schemas", "at least one schema is required")
	}
	topics := map[string]string{}
	for _, name := range d.order["schemas"] {
		spec := c.Schemas[name]
		p := "schemas." + name
		if !identRE.MatchString(name) {
			at(p, "schema name must be a letter followed by letters, digits or _")
		}
		if spec.Topic == "" {
			at(p+".topic", "required")
		} else if other, dup := topics[spec.Topic]; dup {
			at(p+".topic", "topic %q is already used by schema %s", spec.Topic, other)
		}
		topics[spec.Topic] = name
		if len(spec.Fields) == 0 {
			at(p+".fields", "at least one field is required")
			continue
		}
		var fields []schemas.Field
		ok := true
		for _, fname := range d.order[p+".fields"] {
			fs := spec.Fields[fname]
			fp := p + ".fields." + fname
			if !identRE.MatchString(fname) {
				at(fp, "field name must be a letter followed by letters, digits or _ (names starting with _ are reserved)")
				ok = false
			}
			t, err := schemas.ParseType(fs.Type)
			if err != nil {
				if strings.HasPrefix(fs.Type, "decimal(") && !strings.Contains(fs.Type, ")") {
					// In a YAML flow mapping the comma ends the value.
					err = fmt.Errorf(`%w; inside {…} quote the type: {type: "decimal(18,2)"}`, err)
				}
				at(fp, "%v", err)
				ok = false
				continue
			}
			fields = append(fields, schemas.Field{Name: fname, Type: t, Optional: fs.Optional})
		}
		if spec.Time == "" {
			at(p+".time", "required: the event-time field")
			ok = false
		} else if f, found := spec.Fields[spec.Time]; !found {
			at(p+".time", "no field %q in this schema", spec.Time)
			ok = false
		} else if f.Type != "timestamp" || f.Optional {
			at(p+".time", "field %q must be a required timestamp, is %s", spec.Time, describe(f))
			ok = false
		}
		if spec.ID != "" {
			if f, found := spec.Fields[spec.ID]; !found {
				at(p+".id", "no field %q in this schema", spec.ID)
				ok = false
			} else if f.Optional {
				at(p+".id", "id field %q must not be optional", spec.ID)
				ok = false
			}
		}
		if spec.Retention < 0 {
			at(p+".retention", "must not be negative")
		}
		if spec.MaxFuture < 0 {
			at(p+".max_future", "must not be negative")
		} else if spec.MaxFuture.D() > 24*time.Hour {
			at(p+".max_future", "%s is too long: at most 24h (an event further ahead is a wrong clock, and would hold hours open)", spec.MaxFuture)
		}
		if !ok {
			continue
		}
		s, err := schemas.NewSchema(name, spec.Topic, spec.Time, spec.ID, fields)
		if err != nil {
			at(p, "%v", err)
			continue
		}
		if err := s.CheckDedupWindow(spec.DedupWindow.D()); err != nil {
			at(p+".dedup_window", "%v", err)
			continue
		}
		s.DedupWindow = spec.DedupWindow.D()
		s.Retention = spec.Retention.D()
		s.MaxFuture = spec.MaxFuture.D()
		if s.MaxFuture == 0 {
			s.MaxFuture = schemas.DefaultMaxFuture
		}
		c.SchemaList = append(c.SchemaList, s)
	}
}

func describe(f FieldSpec) string {
	if f.Optional {
		return "optional " + f.Type
	}
	return f.Type
}

func validateViews(d *decoder, c *Config, at func(string, string, ...any)) {
	for _, name := range d.order["views"] {
		if v := validateView(d, c, name, at); v != nil {
			c.ViewList = append(c.ViewList, v)
		}
	}
}

// validateView checks one view and returns its definition, or nil after
// reporting what is wrong with it.
func validateView(d *decoder, c *Config, name string, at func(string, string, ...any)) *schemas.View {
	spec := c.Views[name] // a copy: defaults fill it, not the parsed config
	p := "views." + name
	if !identRE.MatchString(name) {
		at(p, "view name must be a letter followed by letters, digits or _")
	}
	if spec.Schema == "" {
		at(p+".schema", "required")
		return nil
	}
	s := c.Schema(spec.Schema)
	if s == nil {
		if _, declared := c.Schemas[spec.Schema]; !declared {
			at(p+".schema", "no schema %q (have: %s)", spec.Schema, strings.Join(d.order["schemas"], ", "))
		} // else the schema's own errors were reported
		return nil
	}
	g, gOK := viewGranularity(p, &spec, at)
	names := map[string]string{"t": "reserved"}
	dimsOK := viewDimensions(p, s, spec.Dimensions, names, at)
	metrics, metricsOK := viewMetrics(d, p, s, &spec, names, at)
	timesOK := viewTimes(d, p, &spec, at)
	shardsOK := viewShards(d, p, &spec, at)
	if !gOK || !dimsOK || !metricsOK || !timesOK || !shardsOK {
		return nil
	}
	return &schemas.View{
		Name: name, Schema: s, Granularity: g, Dimensions: spec.Dimensions, Metrics: metrics,
		HotRetention: spec.HotRetention.D(), Lateness: spec.Lateness.D(), Retention: spec.Retention.D(),
		Shards: spec.Shards,
	}
}

// maxShards bounds views.NAME.shards (speed.MaxShards; config does not
// import the speed layer).
const maxShards = 64

// viewShards defaults the shard count to 1 and checks it is 1..64 (given
// as 0 it is an error, not the default: a shard count is a layout choice).
func viewShards(d *decoder, p string, spec *ViewSpec, at func(string, string, ...any)) bool {
	if spec.Shards == 0 && d.lines[p+".shards"] == 0 {
		spec.Shards = 1
	}
	if spec.Shards < 1 || spec.Shards > maxShards {
		at(p+".shards", "must be between 1 and %d, got %d", maxShards, spec.Shards)
		return false
	}
	return true
}

// viewGranularity defaults the granularity to 1m and checks it is whole
// seconds dividing an hour.
func viewGranularity(p string, spec *ViewSpec, at func(string, string, ...any)) (time.Duration, bool) {
	if spec.Granularity == 0 {
		spec.Granularity = Duration(time.Minute)
	}
	g := spec.Granularity.D()
	switch {
	case g < time.Second:
		at(p+".granularity", "must be at least 1s, got %s", g)
		return g, false
	case g%time.Second != 0 || time.Hour%g != 0:
		at(p+".granularity", "%s does not divide an hour evenly", g)
		return g, false
	}
	return g, true
}

// viewDimensions checks the dimensions are distinct string, int64 or bool
// fields of s, and records their names in names.
func viewDimensions(p string, s *schemas.Schema, dims []string, names map[string]string, at func(string, string, ...any)) bool {
	ok := true
	for i, dim := range dims {
		dp := fmt.Sprintf("%s.dimensions[%d]", p, i)
		f, found := s.Field(dim)
		switch {
		case !found:
			at(dp, "no field %q in schema %s", dim, s.Name)
			ok = false
		case f.Type == schemas.Float64 || f.Type == schemas.Timestamp || f.Type.Kind() == schemas.Decimal:
			at(dp, "a %s field cannot be a dimension (use string, int64 or bool)", f.Type)
			ok = false
		case names[dim] != "":
			at(dp, "%q is listed twice", dim)
			ok = false
		}
		names[dim] = "dimension"
	}
	return ok
}

// viewMetrics checks each metric: a name free of the dimensions' and t, a
// known aggregation, and a field it can aggregate (none for count).
func viewMetrics(d *decoder, p string, s *schemas.Schema, spec *ViewSpec, names map[string]string, at func(string, string, ...any)) ([]schemas.Metric, bool) {
	ok := true
	if len(spec.Metrics) == 0 {
		at(p+".metrics", "at least one metric is required")
		ok = false
	}
	var metrics []schemas.Metric
	for _, mname := range d.order[p+".metrics"] {
		m := spec.Metrics[mname]
		mp := p + ".metrics." + mname
		if !identRE.MatchString(mname) {
			at(mp, "metric name must be a letter followed by letters, digits or _")
			ok = false
		}
		if names[mname] != "" {
			at(mp, "name %q clashes with a dimension or the time column", mname)
			ok = false
		}
		names[mname] = "metric"
		agg, err := schemas.ParseAgg(m.Agg)
		if err != nil {
			at(mp+".agg", "%v", err)
			ok = false
			continue
		}
		switch {
		case agg == schemas.Count && m.Field != "":
			at(mp+".field", "count takes no field")
			ok = false
		case agg != schemas.Count && m.Field == "":
			at(mp+".field", "%s needs a field", agg)
			ok = false
		case agg != schemas.Count:
			f, found := s.Field(m.Field)
			if !found {
				at(mp+".field", "no field %q in schema %s", m.Field, s.Name)
				ok = false
			} else if agg != schemas.Uniq && !f.Type.Numeric() {
				at(mp+".field", "%s over %s field %q: want int64, float64 or decimal(P,S)", agg, f.Type, m.Field)
				ok = false
			}
		}
		metrics = append(metrics, schemas.Metric{Name: mname, Agg: agg, Field: m.Field})
	}
	return metrics, ok
}

// viewTimes defaults hot_retention (48h) and lateness (5m, unless given,
// even as 0) and checks them and retention.
func viewTimes(d *decoder, p string, spec *ViewSpec, at func(string, string, ...any)) bool {
	ok := true
	if spec.HotRetention == 0 {
		spec.HotRetention = Duration(48 * time.Hour)
	}
	if spec.Lateness == 0 && d.lines[p+".lateness"] == 0 {
		spec.Lateness = Duration(5 * time.Minute)
	}
	if spec.Lateness < 0 {
		at(p+".lateness", "must not be negative")
		ok = false
	}
	// Speed must cover [B, now); B trails now by up to an hour plus the
	// lateness plus a recompute period, so hot windows must outlive that.
	if min := time.Hour + spec.Lateness.D() + 15*time.Minute; spec.HotRetention.D() < min {
		at(p+".hot_retention", "%s is too short: must be at least 1h + lateness + 15m (%s) so the speed layer covers everything batch has not closed", spec.HotRetention, min)
		ok = false
	}
	if spec.Retention < 0 {
		at(p+".retention", "must not be negative")
	}
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Line != b.Line {
			if a.Line == 0 {
				return 1
			}
			if b.Line == 0 {
				return -1
			}
			return a.Line - b.Line
		}
		return strings.Compare(a.Path, b.Path)
	})
}
