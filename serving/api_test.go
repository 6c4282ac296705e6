package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// Handler tests without services: fake readers, miniredis for the keys the
// API reads itself (boundary, speed offsets, job history).

type fakeBatch struct {
	boundary time.Time
	rows     []views.Row
}

func (f *fakeBatch) Rows(ctx context.Context, v *schemas.View, from, to time.Time, where map[string]schemas.Value) ([]views.Row, error) {
	var out []views.Row
	match := whereMatcher(v, where) // as views.Reader filters
	for _, r := range f.rows {
		if r.T >= from.UnixMicro() && r.T < to.UnixMicro() && r.T < f.boundary.UnixMicro() && match(r.Dims) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeBatch) State(ctx context.Context, view string) (*views.State, error) {
	st := &views.State{Boundary: f.boundary, Fingerprint: "fp", Hours: map[string]views.HourState{}}
	for _, r := range f.rows {
		k := views.HourKey(time.UnixMicro(r.T))
		h := st.Hours[k]
		h.Rows++
		h.Version = 1
		st.Hours[k] = h
	}
	return st, nil
}

func (f *fakeBatch) StateAtLeast(ctx context.Context, view string, b time.Time) (*views.State, error) {
	return f.State(ctx, view)
}

type fakeSpeed struct {
	rows  []speed.Row
	whole bool // the speed layer keeps the view (see speed.Reader.Whole)
	calls atomic.Int64
	gate  chan struct{} // if set, Query waits on it
}

func (f *fakeSpeed) Query(ctx context.Context, q speed.Query) (*speed.Result, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	var out []speed.Row
	for _, r := range f.rows {
		if !r.T.Before(q.From) && r.T.Before(q.To) {
			out = append(out, r)
		}
	}
	return &speed.Result{Rows: out}, nil
}

func (f *fakeSpeed) Sketches(ctx context.Context, q speed.Query) ([]speed.SketchRow, error) {
	return nil, nil
}

func (f *fakeSpeed) Whole(ctx context.Context, v *schemas.View) (bool, error) { return f.whole, nil }

func (f *fakeSpeed) HotRange(ctx context.Context, v *schemas.View) (first, end time.Time, ok bool, err error) {
	if len(f.rows) == 0 {
		return time.Time{}, time.Time{}, false, nil
	}
	return f.rows[0].T, f.rows[len(f.rows)-1].T.Add(v.Granularity), true, nil
}

type fakeWriter struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (w *fakeWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msgs...)
	return nil
}
func (w *fakeWriter) Close() error { return nil }

const (
	readTok  = "read-token-0123456789"
	writeTok = "write-token-0123456789"
	adminTok = "admin-token-0123456789"
)

type fixture struct {
	srv    *Server
	api    *API
	mr     *miniredis.Miniredis
	batch  *fakeBatch
	speed  *fakeSpeed
	writer *fakeWriter
	reg    *prometheus.Registry
	view   *schemas.View
	now    time.Time
	clock  atomic.Int64 // Unix ns of the API's Now, settable by a test
}

func newFixture(t *testing.T, mod func(*APIConfig)) *fixture {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := testSchema(t, "orders")
	v := testView("revenue", s)
	now := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	f := &fixture{mr: mr, view: v, now: now, reg: prometheus.NewRegistry(), writer: &fakeWriter{},
		batch: &fakeBatch{boundary: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}, speed: &fakeSpeed{}}
	cfg := APIConfig{Views: []*schemas.View{v}, Schemas: []*schemas.Schema{s}, Redis: rdb, Speed: f.speed, Batch: f.batch,
		Producer: func(string) MessageWriter { return f.writer }, Jobs: &fakeJobRuns{},
		Tokens: []config.Token{{Name: "r", Token: readTok, Scopes: []string{"read:views"}},
			{Name: "w", Token: writeTok, Scopes: []string{"write:events"}},
			{Name: "a", Token: adminTok, Scopes: []string{"admin"}}},
		MaxRange: 31 * 24 * time.Hour, MaxRows: 1000, Timeout: 5 * time.Second, MaxBody: 4096,
		Registerer: f.reg, Now: func() time.Time { return time.Unix(0, f.clock.Load()).UTC() }}
	f.clock.Store(now.UnixNano())
	if mod != nil {
		mod(&cfg)
	}
	api, err := NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.api = api
	f.srv = New(Config{Registerer: f.reg, Gatherer: f.reg})
	api.Register(f.srv)
	return f
}

// do sends a request and returns the status and body.
func (f *fixture) do(t *testing.T, method, target, token string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes(), rec.Header()
}

// speedOK says the speed layer keeps the view whole (a worker runs).
func (f *fixture) speedOK() { f.speed.whole = true }

func TestBadRequests(t *testing.T) {
	f := newFixture(t, nil)
	f.speedOK()
	q := "/v1/views/revenue/query?"
	ok := "from=2026-11-27T08:00:00Z&to=2026-11-27T10:00:00Z"
	big := bytes.Repeat([]byte(`{"order_id":"x"}`+"\n"), 400)
	tests := []struct {
		name      string
		method    string
		target    string
		token     string
		body      []byte
		wantCode  int
		wantParam string
	}{
		{"bad from", "GET", q + "from=noon&to=2026-11-27T10:00:00Z", readTok, nil, 400, "from"},
		{"bad to", "GET", q + "from=2026-11-27T08:00:00Z&to=2026-11-27T25:00:00Z", readTok, nil, 400, "to"},
		{"missing from", "GET", q + "to=2026-11-27T10:00:00Z", readTok, nil, 400, "from"},
		{"from after to", "GET", q + "from=2026-11-27T10:00:00Z&to=2026-11-27T08:00:00Z", readTok, nil, 400, "to"},
		{"from equals to", "GET", q + "from=2026-11-27T10:00:00Z&to=2026-11-27T10:00:00Z", readTok, nil, 400, "to"},
		{"step not a multiple", "GET", q + ok + "&step=90s", readTok, nil, 400, "step"},
		{"step not a duration", "GET", q + ok + "&step=hourly", readTok, nil, 400, "step"},
		{"unknown view", "GET", "/v1/views/profit/query?" + ok, readTok, nil, 404, "view"},
		{"unknown dimension", "GET", q + ok + "&group_by=region", readTok, nil, 400, "group_by"},
		{"unknown metric", "GET", q + ok + "&metrics=profit", readTok, nil, 400, "metrics"},
		{"bad where syntax", "GET", q + ok + "&where=tenant", readTok, nil, 400, "where"},
		{"where on unknown dimension", "GET", q + ok + "&where=region:eu", readTok, nil, 400, "where"},
		{"bad format", "GET", q + ok + "&format=xml", readTok, nil, 400, "format"},
		{"unknown parameter", "GET", q + ok + "&limit=5", readTok, nil, 400, "limit"},
		{"range too large", "GET", q + "from=2026-01-01T00:00:00Z&to=2026-11-27T00:00:00Z&step=1d", readTok, nil, 413, "to"},
		{"too many rows", "GET", q + "from=2026-11-20T00:00:00Z&to=2026-11-27T00:00:00Z", readTok, nil, 413, "step"},
		{"no token", "GET", q + ok, "", nil, 401, "Authorization"},
		{"bad token", "GET", q + ok, "not-a-token-at-all", nil, 401, "Authorization"},
		{"missing scope for query", "GET", q + ok, writeTok, nil, 403, "Authorization"},
		{"missing scope for events", "POST", "/v1/events?schema=orders", readTok, []byte(`{}`), 403, "Authorization"},
		{"missing scope for jobs", "GET", "/v1/jobs", readTok, nil, 403, "Authorization"},
		{"events without schema", "POST", "/v1/events", writeTok, []byte("{}\n"), 400, "schema"},
		{"events unknown schema", "POST", "/v1/events?schema=refunds", writeTok, []byte("{}\n"), 404, "schema"},
		{"events bad strict", "POST", "/v1/events?schema=orders&strict=maybe", writeTok, []byte("{}\n"), 400, "strict"},
		{"oversized body", "POST", "/v1/events?schema=orders", writeTok, big, 413, "body"},
		{"malformed NDJSON", "POST", "/v1/events?schema=orders", writeTok, []byte("{not json\n[1,2]\n"), 400, "body"},
		{"empty body", "POST", "/v1/events?schema=orders", writeTok, nil, 400, "body"},
		{"jobs bad limit", "GET", "/v1/jobs?limit=0", adminTok, nil, 400, "limit"},
		{"unknown route", "GET", "/v2/things", readTok, nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := f.do(t, tt.method, tt.target, tt.token, tt.body)
			if code >= 500 {
				t.Fatalf("%d for bad input: %s", code, body)
			}
			var e struct{ Error, Param string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("body is not a JSON error: %q", body)
			}
			if code != tt.wantCode || e.Param != tt.wantParam {
				t.Errorf("got %d param=%q (%s), want %d param=%q", code, e.Param, e.Error, tt.wantCode, tt.wantParam)
			}
		})
	}
	if len(f.writer.msgs) != 0 {
		t.Errorf("%d messages produced by refused requests", len(f.writer.msgs))
	}
}

// queryAnswer mirrors the JSON answer of DESIGN §4.
type answerJSON struct {
	View        string           `json:"view"`
	From        string           `json:"from"`
	To          string           `json:"to"`
	Step        string           `json:"step"`
	Boundary    *string          `json:"boundary"`
	Sources     map[string]any   `json:"sources"`
	Gaps        [][2]string      `json:"gaps"`
	Approximate []string         `json:"approximate"`
	Overflow    []string         `json:"overflow"`
	Rows        []map[string]any `json:"rows"`
}

func decodeAnswer(t *testing.T, body []byte) answerJSON {
	t.Helper()
	var a answerJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("decode answer: %v\n%s", err, body)
	}
	return a
}

func TestQueryAnswerShapeAndFormats(t *testing.T) {
	f := newFixture(t, nil)
	f.speedOK()
	b := f.batch.boundary
	f.batch.rows = []views.Row{vrow(b.Add(-2*time.Minute).UnixMicro(), "a", "de", 3, 30, 20, 1, 0, 100),
		vrow(b.Add(-time.Minute).UnixMicro(), "b", "fr", 1, 2.5, 2.5, 2.5, 0, 1)}
	f.speed.rows = []speed.Row{{T: b, Values: []schemas.Value{{Int: 5}, {Float: 9}, {Float: 6}, {Float: 0.25}, {Int: 4}, {Int: 1}}}}
	f.mr.Set(boundary.Key("revenue"), fmt.Sprint(b.UnixMicro()))
	code, body, _ := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T08:58:00Z&to=2026-11-27T09:01:00Z&metrics=orders,revenue,buyers", readTok, nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	a := decodeAnswer(t, body)
	if a.View != "revenue" || a.From != "2026-11-27T08:58:00Z" || a.To != "2026-11-27T09:01:00Z" || a.Step != "1m" ||
		a.Boundary == nil || *a.Boundary != "2026-11-27T09:00:00Z" || len(a.Gaps) != 0 {
		t.Errorf("header: %s", body)
	}
	if fmt.Sprint(a.Sources["batch"]) != "[2026-11-27T08:58:00Z 2026-11-27T09:00:00Z]" || fmt.Sprint(a.Sources["speed"]) != "[2026-11-27T09:00:00Z 2026-11-27T09:01:00Z]" {
		t.Errorf("sources = %v", a.Sources)
	}
	if strings.Join(a.Approximate, ",") != "buyers" {
		t.Errorf("approximate = %v, want buyers (the speed row's uniq is an HLL)", a.Approximate)
	}
	if a.Overflow == nil || len(a.Overflow) != 0 {
		t.Errorf("overflow = %#v, want [] (no sum overflowed)", a.Overflow)
	}
	want := []map[string]any{
		{"t": "2026-11-27T08:58:00Z", "orders": 3.0, "revenue": 30.0, "buyers": 100.0},
		{"t": "2026-11-27T08:59:00Z", "orders": 1.0, "revenue": 2.5, "buyers": 1.0},
		{"t": "2026-11-27T09:00:00Z", "orders": 5.0, "revenue": 9.0, "buyers": 4.0},
	}
	if !reflect.DeepEqual(a.Rows, want) {
		t.Errorf("rows = %v\nwant   %v", a.Rows, want)
	}
	// Keys come in a fixed order: t, group_by, then metrics as requested.
	if !bytes.Contains(body, []byte(`{"t":"2026-11-27T08:58:00Z","orders":3,"revenue":30,"buyers":100}`)) {
		t.Errorf("row keys not in t, metrics order:\n%s", body)
	}

	code, body, hdr := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T08:58:00Z&to=2026-11-27T09:00:00Z&metrics=orders,smallest&group_by=tenant&format=csv", readTok, nil)
	wantCSV := "t,tenant,orders,smallest\n2026-11-27T08:58:00Z,a,3,1\n2026-11-27T08:59:00Z,b,1,2.5\n"
	if code != 200 || string(body) != wantCSV || hdr.Get("Lambdalake-Boundary") != "2026-11-27T09:00:00Z" || hdr.Get("Content-Type") != "text/csv; charset=utf-8" ||
		hdr.Get("Lambdalake-Overflow") != "[]" {
		t.Errorf("csv %d %v:\n%s", code, hdr, body)
	}
	code, body, _ = f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T08:58:00Z&to=2026-11-27T09:00:00Z&metrics=orders&format=ndjson", readTok, nil)
	if code != 200 || string(body) != "{\"t\":\"2026-11-27T08:58:00Z\",\"orders\":3}\n{\"t\":\"2026-11-27T08:59:00Z\",\"orders\":1}\n" {
		t.Errorf("ndjson %d:\n%s", code, body)
	}
}

// Without speed offsets in Redis, [B, now) is lost: listed as gaps when no
// cold fallback is configured, computed from the lake when it is.
func TestGapsAndCold(t *testing.T) {
	f := newFixture(t, nil) // no Cold
	code, body, _ := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T08:00:00Z&to=2026-11-27T12:00:00Z&step=1h", readTok, nil)
	a := decodeAnswer(t, body)
	if code != 200 || len(a.Gaps) != 1 || a.Gaps[0] != [2]string{"2026-11-27T09:00:00Z", "2026-11-27T10:31:00Z"} {
		t.Errorf("gaps %d: %s", code, body)
	}

	var asked []time.Time
	fc := newFixture(t, func(c *APIConfig) {
		c.ColdMaxHours = 6
		c.Cold = func(ctx context.Context, v *schemas.View, hour time.Time) ([]views.Row, error) {
			asked = append(asked, hour)
			return []views.Row{vrow(hour.Add(5*time.Minute).UnixMicro(), "a", "de", 2, 1, 1, 1, 0, 2)}, nil
		}
	})
	code, body, _ = fc.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T08:00:00Z&to=2026-11-27T12:00:00Z&step=1h&metrics=orders", readTok, nil)
	a = decodeAnswer(t, body)
	if code != 200 || len(a.Gaps) != 0 || len(asked) != 2 || fmt.Sprint(a.Sources["cold"]) != "[[2026-11-27T09:00:00Z 2026-11-27T10:31:00Z]]" {
		t.Fatalf("cold %d asked=%v: %s", code, asked, body)
	}
	if len(a.Rows) != 2 || a.Rows[0]["orders"] != 2.0 || a.Rows[1]["t"] != "2026-11-27T10:00:00Z" {
		t.Errorf("cold rows: %v", a.Rows)
	}

	// Expired buckets of a healthy speed layer are gaps too.
	f2 := newFixture(t, nil)
	f2.speedOK()
	f2.batch.boundary = time.Time{}
	_, body, _ = f2.do(t, "GET", "/v1/views/revenue/query?from=2026-11-24T00:00:00Z&to=2026-11-27T00:00:00Z&step=1h", readTok, nil)
	a = decodeAnswer(t, body)
	if len(a.Gaps) != 1 || a.Gaps[0] != [2]string{"2026-11-24T00:00:00Z", "2026-11-25T10:31:00Z"} || a.Boundary != nil {
		t.Errorf("expired gaps: %s", body)
	}
}

func TestAuthAndPublicRoutes(t *testing.T) {
	f := newFixture(t, nil)
	f.speedOK()
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/v1/views", readTok, 200},
		{"/v1/views", adminTok, 200},
		{"/v1/views", writeTok, 403},
		{"/v1/jobs", adminTok, 200},
		{"/v1/openapi.yaml", "", 200},
		{"/healthz", "", 200},
		{"/metrics", "", 200},
	} {
		code, body, _ := f.do(t, "GET", c.path, c.token, nil)
		if code != c.want {
			t.Errorf("GET %s: %d, want %d: %s", c.path, code, c.want, body)
		}
	}
	_, body, _ := f.do(t, "GET", "/v1/views", readTok, nil)
	var vs struct {
		Views []map[string]any `json:"views"`
	}
	if err := json.Unmarshal(body, &vs); err != nil || len(vs.Views) != 1 || vs.Views[0]["fingerprint"] != f.view.Fingerprint() ||
		vs.Views[0]["boundary"] != "2026-11-27T09:00:00Z" || vs.Views[0]["granularity"] != "1m" {
		t.Errorf("views: %s", body)
	}
	_, body, _ = f.do(t, "GET", "/v1/jobs", adminTok, nil)
	if strings.TrimSpace(string(body)) != `{"runs":[]}` {
		t.Errorf("jobs: %s", body)
	}

	dev := newFixture(t, func(c *APIConfig) { c.Tokens, c.AuthDisabled = nil, true })
	if code, body, _ := dev.do(t, "GET", "/v1/views", "", nil); code != 200 {
		t.Errorf("auth disabled: %d %s", code, body)
	}
	if _, err := NewAPI(APIConfig{Redis: redis.NewClient(&redis.Options{}), Speed: &fakeSpeed{}, Batch: &fakeBatch{}}); err == nil {
		t.Error("an API without tokens and with auth on must be refused")
	}
}

func TestEventsAcceptAndReject(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.MaxBody = 1 << 20 })
	good := func(i int) string {
		return fmt.Sprintf(`{"order_id":"o%d","ts":"2026-11-27T10:00:00Z","tenant":"a","country":"de","user_id":"u1","amount":1.5,"qty":2}`, i)
	}
	body := strings.Join([]string{good(1), `{"order_id":"o2"}`, "", good(3), `not json`, good(5)}, "\n") + "\n"
	code, resp, _ := f.do(t, "POST", "/v1/events?schema=orders", writeTok, []byte(body))
	var ans eventsAnswer
	if err := json.Unmarshal(resp, &ans); err != nil || code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	if ans.Accepted != 3 || ans.RejectedTotal != 2 || len(ans.Rejected) != 2 || ans.Rejected[0].Line != 2 || ans.Rejected[1].Line != 5 ||
		!strings.Contains(ans.Rejected[0].Error, `"ts"`) || !strings.Contains(ans.Rejected[1].Error, "invalid JSON") {
		t.Errorf("answer: %s", resp)
	}
	if len(f.writer.msgs) != 3 || string(f.writer.msgs[1].Value) != good(3) {
		t.Errorf("produced %d messages", len(f.writer.msgs))
	}
	code, resp, _ = f.do(t, "POST", "/v1/events?schema=orders&strict=true", writeTok, []byte(body))
	if code != 400 || len(f.writer.msgs) != 3 || !strings.Contains(string(resp), `"line":2`) {
		t.Errorf("strict: %d, %d produced: %s", code, len(f.writer.msgs), resp)
	}
	code, _, _ = f.do(t, "POST", "/v1/events?schema=orders&strict=true", writeTok, []byte(good(7)+"\n"+good(8)))
	if code != 200 || len(f.writer.msgs) != 5 {
		t.Errorf("strict, all good: %d, %d produced", code, len(f.writer.msgs))
	}
	if got := testutil.ToFloat64(f.api.m.accepted); got != 5 {
		t.Errorf("accepted metric = %v", got)
	}
}

// Identical concurrent queries run once; the others share the answer. The
// one computation is held at the speed read until every request has
// joined it, so nothing but singleflight can make them share.
func TestSingleflight(t *testing.T) {
	f := newFixture(t, nil) // CacheTTL 0: every request reaches the flight group
	f.speedOK()
	f.speed.gate = make(chan struct{})
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z", readTok, nil)
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(f.api.m.waiting) < n || f.speed.calls.Load() == 0 {
		if time.Now().After(deadline) {
			close(f.speed.gate)
			t.Fatalf("after 10s %v of %d requests wait, %d computations started", testutil.ToFloat64(f.api.m.waiting), n, f.speed.calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(f.speed.gate)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: %d", i, c)
		}
	}
	if calls := f.speed.calls.Load(); calls != 1 {
		t.Errorf("%d speed reads for %d identical concurrent queries, want 1", calls, n)
	}
	if shared := testutil.ToFloat64(f.api.m.shared); shared != n {
		t.Errorf("shared metric = %v, want %d (every request got the shared answer)", shared, n)
	}
	if w := testutil.ToFloat64(f.api.m.waiting); w != 0 {
		t.Errorf("waiting gauge = %v after every answer", w)
	}
}

// The answer cache serves an identical query again only while B is unchanged.
func TestAnswerCache(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.CacheTTL = time.Minute })
	f.speedOK()
	url := "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T11:00:00Z"
	f.do(t, "GET", url, readTok, nil)
	f.do(t, "GET", url, readTok, nil)
	if c := f.speed.calls.Load(); c != 1 {
		t.Errorf("%d speed reads, want 1 (second answer cached)", c)
	}
	f.mr.Set(boundary.Key("revenue"), fmt.Sprint(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMicro()))
	f.do(t, "GET", url, readTok, nil)
	if c := f.speed.calls.Load(); c != 2 {
		t.Errorf("%d speed reads after B was set, want 2", c)
	}
	if hits := testutil.ToFloat64(f.api.m.cacheHits); hits != 1 {
		t.Errorf("cache hits = %v", hits)
	}
	// Past cache_ttl the old answer is served at once while one background
	// refresh computes the next; past ttl + timeout it is not served.
	f.clock.Add(int64(62 * time.Second))
	hitsBefore := testutil.ToFloat64(f.api.m.cacheHits)
	for range 3 {
		if code, _, _ := f.do(t, "GET", url, readTok, nil); code != 200 {
			t.Fatalf("stale answer: %d", code)
		}
	}
	// The first is stale; the next ones are stale too unless the refresh
	// already stored its answer (then fresh hits) — never a computation.
	stale := testutil.ToFloat64(f.api.m.cacheStale)
	hits := testutil.ToFloat64(f.api.m.cacheHits) - hitsBefore
	if stale < 1 || stale+hits != 3 {
		t.Errorf("stale answers = %v, fresh hits = %v; want 3 cached answers, the first stale", stale, hits)
	}
	for deadline := time.Now().Add(5 * time.Second); f.speed.calls.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	f.api.Close() // waits for the refresh to finish
	if c := f.speed.calls.Load(); c != 3 {
		t.Errorf("%d speed reads after the refresh, want 3 (one refresh for three stale hits)", c)
	}
	f.clock.Add(int64(time.Hour))
	f.do(t, "GET", url, readTok, nil)
	if c := f.speed.calls.Load(); c != 4 {
		t.Errorf("%d speed reads for a long-expired answer, want 4", c)
	}
}

// A computed answer says where its time went in Server-Timing (each part
// in ms); an answer from the cache says so instead.
func TestServerTiming(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.CacheTTL = time.Minute })
	f.speedOK()
	url := "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T11:00:00Z"
	code, body, h := f.do(t, "GET", url, readTok, nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	parts := strings.Split(h.Get("Server-Timing"), ", ")
	var names []string
	for _, p := range parts {
		name, dur, ok := strings.Cut(p, ";dur=")
		if _, err := strconv.ParseFloat(dur, 64); !ok || err != nil {
			t.Errorf("Server-Timing part %q: want name;dur=<ms>", p)
		}
		names = append(names, name)
	}
	if want := []string{"batch", "speed", "cold", "merge", "encode"}; !slices.Equal(names, want) {
		t.Errorf("Server-Timing parts %v, want %v", names, want)
	}
	if _, _, h := f.do(t, "GET", url, readTok, nil); h.Get("Server-Timing") != "cache;desc=hit" {
		t.Errorf("cached answer: Server-Timing %q, want cache;desc=hit", h.Get("Server-Timing"))
	}
}

// A batch hour's rollup used again keeps its rows printed, and answers copy
// them: the bodies are the ones a server that never saw the query prints,
// byte for byte, for whole and partial hours, JSON and NDJSON; a query
// showing fewer metrics prints its own.
func TestPrintedHoursAsFresh(t *testing.T) {
	var rows []views.Row
	for m := range 180 {
		for _, c := range []string{"de", "fr", "b\"<"} {
			rows = append(rows, vrow(time.Date(2026, 11, 27, 6, m, 0, 0, time.UTC).UnixMicro(), "a", c, 1, float64(m)/7, 1, 1, m, m+2))
		}
	}
	warm := newFixture(t, nil) // CacheTTL 0: every request is computed
	warm.speedOK()
	warm.batch.rows = rows
	base := "/v1/views/revenue/query?from=2026-11-27T06:00:00Z&to=2026-11-27T09:00:00Z&step=5m&group_by=country"
	for range 2 {
		if code, body, _ := warm.do(t, "GET", base, readTok, nil); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	for _, q := range []string{
		base,
		base + "&format=ndjson",
		"/v1/views/revenue/query?from=2026-11-27T06:35:00Z&to=2026-11-27T08:10:00Z&step=5m&group_by=country",
		base + "&metrics=orders",
	} {
		fresh := newFixture(t, nil)
		fresh.speedOK()
		fresh.batch.rows = rows
		_, want, _ := fresh.do(t, "GET", q, readTok, nil)
		code, got, _ := warm.do(t, "GET", q, readTok, nil)
		if code != 200 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d\n got %.400s\nwant %.400s", q, code, got, want)
		}
	}
	printed := 0
	warm.api.rollups.mu.Lock()
	for e := warm.api.rollups.order.Front(); e != nil; e = e.Next() {
		if e.Value.(*cacheItem[*hourRollup]).val.enc.Load() != nil {
			printed++
		}
	}
	warm.api.rollups.mu.Unlock()
	if printed != 3 {
		t.Errorf("%d hours kept printed, want 3 (each used more than once)", printed)
	}
}

// Batch hours rolled up once are reused while their version holds.
func TestHourRollupCache(t *testing.T) {
	f := newFixture(t, nil)
	f.speedOK()
	var rows []views.Row
	for m := range 180 {
		rows = append(rows, vrow(time.Date(2026, 11, 27, 6, m, 0, 0, time.UTC).UnixMicro(), "a", "de", 1, 1, 1, 1, m, m+2))
	}
	f.batch.rows = rows
	counting := &countingBatch{fakeBatch: f.batch}
	f.api.cfg.Batch = counting
	for i, from := range []string{"06:00", "06:30", "06:31", "06:00"} {
		q := "/v1/views/revenue/query?from=2026-11-27T" + from + ":00Z&to=2026-11-27T09:00:00Z&step=5m"
		code, body, _ := f.do(t, "GET", q, readTok, nil)
		a := decodeAnswer(t, body)
		if code != 200 || a.Rows[len(a.Rows)-1]["t"] != "2026-11-27T08:55:00Z" {
			t.Fatalf("query %d: %d %s", i, code, body)
		}
	}
	// 3 hours, then nothing new: a partial first hour (06:30, 06:31
	// flooring to 06:30 on the 5m grid) is a slice of the whole hour's
	// rollup.
	if got := counting.calls.Load(); got != 3 {
		t.Errorf("%d batch reads, want 3", got)
	}
}

// A slice of an hour's rollup carries the flags of its own rows: an
// estimate or an overflow elsewhere in the hour is not reported.
func TestHourSlicesKeepTheirFlags(t *testing.T) {
	f := newFixture(t, nil)
	f.speedOK()
	var rows []views.Row
	for m := range 60 {
		tm := time.Date(2026, 11, 27, 6, m, 0, 0, time.UTC).UnixMicro()
		if m < 30 {
			// One row per 5m step: its uniq is exact.
			if m%5 == 0 {
				rows = append(rows, vrow(tm, "a", "de", 1, 1, 1, 1, m, m+2))
			}
			continue
		}
		// Two rows per minute, one with an overflowed qty.
		r := vrow(tm, "b", "de", 1, 1, 1, 1, m, m+2)
		r.Values[5], r.Overflow = schemas.Value{Null: true}, []bool{5: true}
		rows = append(rows, vrow(tm, "a", "de", 1, 1, 1, 1, m, m+3), r)
	}
	f.batch.rows = rows
	for _, tt := range []struct {
		from, to       string
		approx, overfl string
	}{
		{"06:00", "06:30", "", ""},
		{"06:30", "07:00", "buyers", "qty"},
		{"06:00", "07:00", "buyers", "qty"},
		{"06:10", "06:20", "", ""},
	} {
		q := "/v1/views/revenue/query?from=2026-11-27T" + tt.from + ":00Z&to=2026-11-27T" + tt.to + ":00Z&step=5m"
		code, body, _ := f.do(t, "GET", q, readTok, nil)
		a := decodeAnswer(t, body)
		if code != 200 || strings.Join(a.Approximate, ",") != tt.approx || strings.Join(a.Overflow, ",") != tt.overfl {
			t.Errorf("%s-%s: %d approximate %v overflow %v, want %q %q", tt.from, tt.to, code, a.Approximate, a.Overflow, tt.approx, tt.overfl)
		}
	}
}

type countingBatch struct {
	*fakeBatch
	calls atomic.Int64
}

func (c *countingBatch) Rows(ctx context.Context, v *schemas.View, from, to time.Time, where map[string]schemas.Value) ([]views.Row, error) {
	c.calls.Add(1)
	return c.fakeBatch.Rows(ctx, v, from, to, where)
}

func TestPanicIsA500JSON(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	code, body, _ := f.do(t, "GET", "/boom", "", nil)
	if code != 500 || !strings.Contains(string(body), `"error":"internal error"`) {
		t.Errorf("%d %s", code, body)
	}
	_, metrics, _ := f.do(t, "GET", "/metrics", "", nil)
	if !bytes.Contains(metrics, []byte(`lambdalake_http_requests_total{code="500",route="GET /boom"} 1`)) {
		t.Errorf("request metric missing:\n%s", metrics)
	}
}

// A query slower than http.timeout is a 504 with a JSON error; a failing
// dependency is a 503.
func TestTimeoutAndDependencyDown(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.Timeout = 50 * time.Millisecond })
	f.speedOK()
	f.speed.gate = make(chan struct{})
	t.Cleanup(func() { close(f.speed.gate) })
	code, body, _ := f.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z", readTok, nil)
	if code != 504 || !strings.Contains(string(body), "http.timeout") {
		t.Errorf("slow query: %d %s", code, body)
	}
	down := newFixture(t, nil)
	down.mr.Close() // Redis down
	code, body, _ = down.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z", readTok, nil)
	if code != 503 || !strings.Contains(string(body), `"error":"a dependency is unavailable`) {
		t.Errorf("Redis down: %d %s", code, body)
	}
}

// boundaryGets counts (and slows) the GETs of a view's B.
type boundaryGets struct {
	key   string
	delay time.Duration
	n     atomic.Int64
}

func (h *boundaryGets) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *boundaryGets) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *boundaryGets) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "get" && len(cmd.Args()) == 2 && cmd.Args()[1] == h.key {
			h.n.Add(1)
			time.Sleep(h.delay)
		}
		return next(ctx, cmd)
	}
}

// Concurrent queries of a view share one read of B; a query that starts
// after B moved reads the new one.
func TestBoundaryReadShared(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	rdb := f.api.cfg.Redis
	b0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if _, err := boundary.PublishAt(ctx, rdb, f.view.Name, b0, f.now); err != nil {
		t.Fatal(err)
	}
	gets := &boundaryGets{key: boundary.Key(f.view.Name), delay: 100 * time.Millisecond}
	rdb.(*redis.Client).AddHook(gets)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if b, err := f.api.boundary(ctx, f.view); err != nil || !b.Equal(b0) {
				t.Errorf("boundary %v, %v; want %v", b, err, b0)
			}
		})
	}
	wg.Wait()
	if got := gets.n.Load(); got < 1 || got > 3 {
		t.Errorf("%d concurrent reads of B made %d GETs, want 1 (a few at most)", n, got)
	}
	b1 := b0.Add(time.Hour)
	if _, err := boundary.PublishAt(ctx, rdb, f.view.Name, b1, f.now); err != nil {
		t.Fatal(err)
	}
	if b, err := f.api.boundary(ctx, f.view); err != nil || !b.Equal(b1) {
		t.Errorf("after B moved: boundary %v, %v; want %v", b, err, b1)
	}
	// A caller that goes away does not wait for the read.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := f.api.boundary(short, f.view); err == nil {
		t.Error("a read past the caller's deadline returned no error")
	}
}
