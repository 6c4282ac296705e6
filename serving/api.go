package serving

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/singleflight"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// SpeedReader is what the API reads of the speed layer (speed.Reader):
// figures and sketches for [B, to), whether the hot windows are whole (else
// an empty bucket may be lost data), and the range they hold.
type SpeedReader interface {
	Query(ctx context.Context, q speed.Query) (*speed.Result, error)
	Sketches(ctx context.Context, q speed.Query) ([]speed.SketchRow, error)
	Whole(ctx context.Context, v *schemas.View) (bool, error)
	HotRange(ctx context.Context, v *schemas.View) (first, end time.Time, ok bool, err error)
}

var _ SpeedReader = (*speed.Reader)(nil)

// BatchReader is what the API reads of the batch views (views.Reader).
type BatchReader interface {
	Rows(ctx context.Context, v *schemas.View, from, to time.Time, where map[string]schemas.Value) ([]views.Row, error)
	State(ctx context.Context, view string) (*views.State, error)
	StateAtLeast(ctx context.Context, view string, b time.Time) (*views.State, error)
}

var _ BatchReader = (*views.Reader)(nil)

// ColdFunc computes one hour of a view from the raw lake
// (recompute.ComputeHourRows over a store).
type ColdFunc func(ctx context.Context, v *schemas.View, hour time.Time) ([]views.Row, error)

// MessageWriter produces to one Kafka topic and returns once the broker
// acknowledged (kafka.Writer with RequiredAcks set).
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

var _ MessageWriter = (*kafka.Writer)(nil)

// APIConfig configures the API.
type APIConfig struct {
	Views   []*schemas.View
	Schemas []*schemas.Schema
	// Redis holds the mirrored boundary (internal/boundary) and the job
	// history; the speed layer's keys are Speed's business.
	Redis redis.UniversalClient
	Speed SpeedReader
	Batch BatchReader
	// Cold fills ranges neither layer holds; nil lists them as gaps.
	Cold ColdFunc
	// ColdMaxHours bounds the hours one query may compute from raw files;
	// a larger lost range is listed under gaps instead.
	ColdMaxHours int
	// Producer opens a writer for a topic (Events API); nil disables it.
	Producer func(topic string) MessageWriter
	// DeadLetters summarises the lake's dead letters (GET /v1/deadletters,
	// deadletters.go); nil answers 503.
	DeadLetters DeadLetterCounter

	Tokens []config.Token
	// JWT accepts signed tokens besides Tokens (jwt.go); nil: none.
	JWT *JWTConfig
	// AuthDisabled serves without tokens: `lambdalake dev` only.
	AuthDisabled bool
	MaxRange     time.Duration
	MaxRows      int
	Timeout      time.Duration // per request
	MaxBody      int64         // Events API body, bytes
	// BodyTimeout is the deadline for reading a request body (default 30s).
	BodyTimeout time.Duration
	// MaxEventBytes is the longest Events API line (default
	// stream.MaxValueBytes: what one Kafka message takes).
	MaxEventBytes int
	// MaxQueries and MaxTokenQueries bound the queries served at once, in
	// all and per token (limits.go); MaxCold the raw-lake hours computed
	// at once.
	MaxQueries      int
	MaxTokenQueries int
	MaxCold         int
	// CacheTTL keeps an encoded answer this long (and only while B is
	// unchanged); 0 disables the cache.
	CacheTTL time.Duration
	// CacheBytes bounds the encoded answers kept (default 64 MiB);
	// RollupCacheBytes the batch hours kept rolled up, half of it as hour
	// cubes (default 256 MiB).
	CacheBytes       int64
	RollupCacheBytes int64
	// Jobs lists the scheduled jobs' latest runs (GET /v1/jobs); nil
	// answers 503 there.
	Jobs JobRuns

	Registerer prometheus.Registerer // default prometheus.DefaultRegisterer
	Logger     *slog.Logger
	Now        func() time.Time
}

// API is the HTTP API of DESIGN §4 apart from health and metrics, which
// Server serves itself. Register it on a Server.
type API struct {
	cfg     APIConfig
	views   map[string]*schemas.View
	schemas map[string]*schemas.Schema
	auth    *authenticator
	slots   *querySlots
	m       *apiMetrics
	log     *slog.Logger

	flight  singleflight.Group
	cacheMu sync.Mutex // guards refreshing
	answers *byteCache[cacheEntry]
	rollups *byteCache[*hourRollup]
	cubes   *byteCache[*hourCube]
	cubeSF  singleflight.Group
	// boundarySF shares a view's B read among concurrent queries.
	boundarySF singleflight.Group
	noCubes    bool // BenchmarkBatchMix's reference: every hour from its view rows

	coldSF    singleflight.Group
	coldMu    sync.Mutex
	coldCache map[string]coldEntry

	refreshing map[string]bool // keys being refreshed in the background
	bg         sync.WaitGroup
	bgCtx      context.Context
	bgCancel   context.CancelFunc

	writersMu sync.Mutex
	writers   map[string]MessageWriter
}

type cacheEntry struct {
	body    []byte
	header  http.Header
	expires time.Time
}

// NewAPI checks cfg and registers the API's metrics.
func NewAPI(cfg APIConfig) (*API, error) {
	if cfg.Redis == nil || cfg.Speed == nil || cfg.Batch == nil {
		return nil, errors.New("serving: API needs Redis, a speed reader and a batch reader")
	}
	if len(cfg.Tokens) == 0 && !cfg.AuthDisabled {
		return nil, errors.New("serving: no http.tokens configured (auth is off in dev mode only)")
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 100_000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20
	}
	if cfg.ColdMaxHours < 0 {
		cfg.ColdMaxHours = 0
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 64 << 20
	}
	if cfg.RollupCacheBytes <= 0 {
		cfg.RollupCacheBytes = 256 << 20
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = stream.MaxValueBytes
	}
	cold := newColdSlots(cfg.MaxCold)
	cfg.Cold = cold.wrap(cfg.Cold)
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.DefaultRegisterer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, views: map[string]*schemas.View{}, schemas: map[string]*schemas.Schema{},
		auth:  newAuthenticator(cfg.Tokens, newJWTVerifier(cfg.JWT, cfg.Now), cfg.AuthDisabled, cfg.Now),
		slots: newQuerySlots(cfg.MaxQueries, cfg.MaxTokenQueries, cfg.Timeout/2), log: cfg.Logger.With("role", "serving"),
		answers: newByteCache[cacheEntry](cfg.CacheBytes),
		// Cubes get half the rollup budget of their own: a burst of large
		// fine-grained rollups must not evict the cubes that make the
		// next ones cheap.
		rollups:    newByteCache[*hourRollup](cfg.RollupCacheBytes - cfg.RollupCacheBytes/2),
		cubes:      newByteCache[*hourCube](cfg.RollupCacheBytes / 2),
		refreshing: map[string]bool{}, coldCache: map[string]coldEntry{}, writers: map[string]MessageWriter{}}
	a.bgCtx, a.bgCancel = context.WithCancel(context.Background())
	for _, v := range cfg.Views {
		a.views[v.Name] = v
	}
	for _, s := range cfg.Schemas {
		a.schemas[s.Name] = s
	}
	m, err := newAPIMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	a.m = m
	if err := registerCacheMetrics(cfg.Registerer, map[string]func() cacheStats{
		"answers": a.answers.stats, "rollups": a.rollups.stats, "cubes": a.cubes.stats,
	}); err != nil {
		return nil, err
	}
	refused := func(reason string) { m.refused.WithLabelValues(reason).Inc() }
	a.auth.refused, a.slots.refused, cold.refused = refused, refused, refused
	return a, nil
}

// route is one endpoint of the API: the OpenAPI document must list exactly
// these (serving/openapi_test.go).
type route struct {
	pattern string
	scope   string // "" = public
	h       http.HandlerFunc
	params  paramRule // the query parameters it takes (rawquery.go)
}

func (a *API) routes() []route {
	return []route{
		{"GET /v1/views", "read:views", a.listViews, noParams},
		{"GET /v1/views/{view}/query", "read:views", a.query, queryRule},
		{"POST /v1/events", "write:events", a.events, eventsRule},
		{"GET /v1/jobs", "admin", a.jobs, jobsRule},
		{"GET /v1/deadletters", "admin", a.deadLetters, noParams},
		{"GET /v1/openapi.yaml", "", a.openapi, noParams},
	}
}

// Register adds the API's routes to a server.
func (a *API) Register(s *Server) {
	for _, r := range a.routes() {
		var h http.Handler = r.h
		if r.pattern == "GET /v1/views/{view}/query" {
			h = a.slots.limit(h)
		}
		h = strictParams(r.params, h)
		if r.scope != "" {
			h = a.auth.require(r.scope, h)
		}
		s.Handle(r.pattern, h)
	}
	s.setAdmin(a.auth.isAdmin)
}

// Close stops background refreshes and closes the Events API's Kafka
// writers.
func (a *API) Close() error {
	a.bgCancel()
	a.bg.Wait()
	a.writersMu.Lock()
	defer a.writersMu.Unlock()
	var errs []error
	for t, w := range a.writers {
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("serving: close writer %s: %w", t, err))
		}
	}
	a.writers = map[string]MessageWriter{}
	return errors.Join(errs...)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdalake"`)
	}
	// Every 429 and 503 says when to come back (the rate limiter sets its
	// own figure first).
	if (e.Code == http.StatusTooManyRequests || e.Code == http.StatusServiceUnavailable) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Code, e)
}

// query serves GET /v1/views/{view}/query.
func (a *API) query(w http.ResponseWriter, r *http.Request) {
	v := a.views[r.PathValue("view")]
	if v == nil {
		writeError(w, &apiError{Code: 404, Param: "view", Msg: fmt.Sprintf("no view %q", clip(r.PathValue("view")))})
		return
	}
	vals, perr := parseRawQuery(r.URL.RawQuery, queryRule)
	if perr != nil {
		writeError(w, perr)
		return
	}
	p := principalFrom(r.Context())
	if vals, perr = bindQuery(p, v, vals); perr != nil {
		writeError(w, perr)
		return
	}
	q, perr := parseQuery(v, vals, limits{maxRange: a.cfg.MaxRange, maxRows: a.cfg.MaxRows})
	if perr == nil {
		perr = checkBound(p, q)
	}
	if perr != nil {
		writeError(w, perr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	b, err := a.boundary(ctx, v)
	if err != nil {
		a.depFailed(w, r, err)
		return
	}
	key := q.outputKey() + "|" + strconv.FormatInt(b.UnixMicro(), 10)
	if e, fresh, ok := a.cached(key); ok {
		if fresh {
			a.m.cacheHits.Inc()
			w.Header().Set("Server-Timing", "cache;desc=hit")
		} else {
			// Serve the previous answer while one refresh computes the next:
			// a burst of clients never waits on an expiry.
			a.m.cacheStale.Inc()
			a.refresh(key, q, b)
			w.Header().Set("Server-Timing", "cache;desc=stale")
		}
		writeBody(w, e.header, e.body)
		return
	}
	// An answer estimated too large is refused before any work.
	if perr := a.refuseTooLarge(ctx, q); perr != nil {
		writeError(w, perr)
		return
	}
	// Concurrent queries that differ at most in format or metrics (or
	// their order) share one computation: an answer holds every metric,
	// and each request prints its own. It runs on its own deadline so one
	// caller going away does not fail the others.
	ckey := q.computeKey() + "|" + strconv.FormatInt(b.UnixMicro(), 10)
	ch := a.flight.DoChan(ckey, func() (any, error) {
		return a.computeAnswer(context.WithoutCancel(ctx), ckey, q, b)
	})
	// Counted once DoChan returned: by then this request has joined the
	// flight (tests wait on it to know every request shares one).
	a.m.waiting.Inc()
	defer a.m.waiting.Dec()
	select {
	case res := <-ch:
		if res.Shared {
			a.m.shared.Inc()
		}
		if res.Err != nil {
			var ae *apiError
			if errors.As(res.Err, &ae) {
				writeError(w, ae)
				return
			}
			a.depFailed(w, r, res.Err)
			return
		}
		ans := res.Val.(*answer)
		t0 := time.Now()
		e := a.encodeEntry(key, q, ans)
		st := ans.timing.header(time.Since(t0))
		if res.Shared {
			st += ", shared"
		}
		w.Header().Set("Server-Timing", st)
		writeBody(w, e.header, e.body)
	case <-ctx.Done():
		if r.Context().Err() != nil {
			return // the client went away
		}
		writeError(w, &apiError{Code: http.StatusGatewayTimeout, Msg: fmt.Sprintf("query took longer than http.timeout %s", a.cfg.Timeout)})
	}
}

// computeAnswer computes the answer of q's computeKey (every metric, no
// format) at B.
func (a *API) computeAnswer(ctx context.Context, key string, q *query, b time.Time) (_ any, err error) {
	// Flights run on their own goroutines, out of the recover middleware's
	// reach: a panic here would end the process.
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("serving: panic in query", "query", key, "panic", p, "stack", string(debug.Stack()))
			err = &apiError{Code: http.StatusInternalServerError, Msg: "internal error"}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	start := time.Now()
	defer func() { a.m.compute.Observe(time.Since(start).Seconds()) }()
	ans, err := a.compute(ctx, q, b)
	if err != nil {
		return nil, err
	}
	if len(ans.rows) > a.cfg.MaxRows {
		param := "step"
		if len(q.groupBy) > 0 {
			param = "group_by"
		}
		return nil, &apiError{Code: 413, Param: param, Msg: fmt.Sprintf("answer has %d rows, more than http.max_rows=%d: narrow the range, raise step or group by fewer dimensions", len(ans.rows), a.cfg.MaxRows)}
	}
	return ans, nil
}

// encodeEntry prints a computed answer as q asks (format, metrics and
// their order) and caches the bytes under q's outputKey.
func (a *API) encodeEntry(key string, q *query, ans *answer) cacheEntry {
	h, body := encodeAnswer(q, ans)
	if a.cfg.CacheTTL > 0 {
		a.store(key, cacheEntry{body: body, header: h, expires: a.cfg.Now().Add(a.cfg.CacheTTL)})
	}
	return cacheEntry{body: body, header: h}
}

// refresh recomputes a cached answer in the background, once at a time
// per key; Close stops and waits for it.
func (a *API) refresh(key string, q *query, b time.Time) {
	a.cacheMu.Lock()
	if a.refreshing[key] {
		a.cacheMu.Unlock()
		return
	}
	a.refreshing[key] = true
	a.cacheMu.Unlock()
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		ckey := q.computeKey() + "|" + strconv.FormatInt(b.UnixMicro(), 10)
		ans, err, _ := a.flight.Do(ckey, func() (any, error) { return a.computeAnswer(a.bgCtx, ckey, q, b) })
		if err != nil {
			a.log.Warn("serving: background refresh failed", "err", err)
		} else {
			a.encodeEntry(key, q, ans.(*answer))
		}
		a.cacheMu.Lock()
		delete(a.refreshing, key)
		a.cacheMu.Unlock()
	}()
}

// depFailed answers 503 for a dependency failure, 504 for a timeout. The
// dependency's own error text goes to the log, and to admin callers only.
func (a *API) depFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		writeError(w, &apiError{Code: http.StatusGatewayTimeout, Msg: fmt.Sprintf("query took longer than http.timeout %s", a.cfg.Timeout)})
		return
	}
	a.log.Warn("dependency failed", "path", r.URL.Path, "err", err)
	writeError(w, &apiError{Code: http.StatusServiceUnavailable, Msg: a.detail(r, "a dependency is unavailable (see /readyz)", err)})
}

// detail appends err's text to msg for an admin caller only.
func (a *API) detail(r *http.Request, msg string, err error) string {
	if p := principalFrom(r.Context()); a.cfg.AuthDisabled || p != nil && p.has("admin") {
		return msg + ": " + err.Error()
	}
	return msg
}

func (a *API) cached(key string) (e cacheEntry, fresh, ok bool) {
	if a.cfg.CacheTTL <= 0 {
		return cacheEntry{}, false, false
	}
	e, ok = a.answers.get(key)
	if !ok {
		return cacheEntry{}, false, false
	}
	now := a.cfg.Now()
	// An expired answer is still served while a refresh runs, for at most
	// one more http.timeout: then it is dropped and callers wait.
	if !now.Before(e.expires.Add(a.cfg.Timeout)) {
		a.answers.delete(key)
		return cacheEntry{}, false, false
	}
	return e, now.Before(e.expires), true
}

// store keeps an encoded answer; the cache is bounded by http.cache_bytes
// (least recently used answers go first).
func (a *API) store(key string, e cacheEntry) {
	size := int64(len(e.body))
	for k, vs := range e.header {
		size += int64(len(k))
		for _, v := range vs {
			size += int64(len(v))
		}
	}
	a.answers.put(key, e, size)
}

func writeBody(w http.ResponseWriter, h http.Header, body []byte) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// viewInfo is one entry of GET /v1/views.
type viewInfo struct {
	Name         string       `json:"name"`
	Schema       string       `json:"schema"`
	Granularity  string       `json:"granularity"`
	Dimensions   []string     `json:"dimensions"`
	Metrics      []metricInfo `json:"metrics"`
	Fingerprint  string       `json:"fingerprint"`
	Boundary     *time.Time   `json:"boundary"`
	BatchVersion string       `json:"batch_fingerprint,omitempty"`
	HotRetention string       `json:"hot_retention"`
	Hot          *[2]string   `json:"hot"` // first bucket and end of the last bucket Redis holds
}

type metricInfo struct {
	Name  string `json:"name"`
	Agg   string `json:"agg"`
	Field string `json:"field,omitempty"`
	// Type of the metric's values (View.MetricType): int64, float64 or
	// decimal(P,S), so a client knows which figures are exact decimals.
	Type string `json:"type"`
}

func (a *API) listViews(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	out := make([]viewInfo, 0, len(a.cfg.Views))
	for _, v := range a.cfg.Views {
		if !canQuery(principalFrom(r.Context()), v) {
			continue // a tenant-scoped token sees the views it can query
		}
		vi := viewInfo{Name: v.Name, Schema: v.Schema.Name, Granularity: formatStep(v.Granularity), Dimensions: v.Dimensions,
			Fingerprint: v.Fingerprint(), HotRetention: formatStep(v.HotRetention)}
		if vi.Dimensions == nil {
			vi.Dimensions = []string{}
		}
		for _, m := range v.Metrics {
			vi.Metrics = append(vi.Metrics, metricInfo{m.Name, m.Agg.String(), m.Field, v.MetricType(m).String()})
		}
		b, err := a.boundary(ctx, v)
		if err != nil {
			a.depFailed(w, r, err)
			return
		}
		if !b.IsZero() {
			vi.Boundary = &b
		}
		st, err := a.cfg.Batch.State(ctx, v.Name)
		if err != nil {
			a.depFailed(w, r, err)
			return
		}
		vi.BatchVersion = st.Fingerprint
		first, end, ok, err := a.cfg.Speed.HotRange(ctx, v)
		if err != nil {
			a.depFailed(w, r, err)
			return
		}
		if ok {
			vi.Hot = &[2]string{first.Format(time.RFC3339), end.Format(time.RFC3339)}
		}
		out = append(out, vi)
	}
	writeJSON(w, http.StatusOK, map[string]any{"views": out})
}

// jobsParams are the parameters GET /v1/jobs accepts.
var jobsParams = []string{"limit"}

func (a *API) jobs(w http.ResponseWriter, r *http.Request) {
	vals, perr := parseRawQuery(r.URL.RawQuery, jobsRule)
	if perr != nil {
		writeError(w, perr)
		return
	}
	if a.cfg.Jobs == nil {
		writeError(w, &apiError{Code: http.StatusServiceUnavailable, Msg: "job runs are not available: this server reads no jobs history"})
		return
	}
	n, most := 100, a.cfg.Jobs.Capacity()
	if s := vals.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > most {
			writeError(w, badParam("limit", "limit: want an integer in 1..%d, got %q", most, clip(s)))
			return
		}
		n = v
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	runs, err := a.cfg.Jobs.Latest(ctx, min(n, most))
	if err != nil {
		a.depFailed(w, r, fmt.Errorf("serving: job runs: %w", err))
		return
	}
	if runs == nil {
		runs = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

//go:embed openapi.yaml
var openapiDoc []byte

func (a *API) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openapiDoc)
}
