package serving

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// Helpers of the integration tests: real Kafka, Redis and LocalStack S3.

type stack struct {
	brokers []string
	rdb     redis.UniversalClient
	store   lake.Store
	// shards is what the tests run over both Redis set-ups give their
	// views: 1 on the single Redis, 2 on the cluster, so that a view's
	// hot keys take two hash tags and the reader fans out over them.
	shards int
}

// newStack is the stack with the single Redis.
func newStack(t *testing.T) *stack {
	t.Helper()
	testenv.Integration(t)
	return newStackOn(t, testenv.RedisSetups(t)[0])
}

// newStackOn is the stack with one of testenv.RedisSetups.
func newStackOn(t *testing.T, rs testenv.RedisSetup) *stack {
	t.Helper()
	st := &stack{brokers: testenv.KafkaBrokers(t), rdb: rs.Client(t), shards: 1}
	if rs.Name == "cluster" {
		st.shards = 2
	}
	st.store, _ = testenv.S3Lake(t)
	return st
}

// overRedisSetups runs test on a stack over each Redis set-up.
func overRedisSetups(t *testing.T, test func(t *testing.T, st *stack)) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) { test(t, newStackOn(t, rs)) })
	}
}

// uniqueView is a view name no other test run shares (Redis is shared).
func uniqueView(prefix string) string {
	return strings.ReplaceAll(testenv.Name(prefix), "-", "_")
}

// genEvents makes n events of s with event times in [from, to), a share of
// them malformed and a share exact duplicates of earlier ones.
func genEvents(t testing.TB, s *schemas.Schema, n int, from, to time.Time, seed uint64, malformed, duplicates float64) []gen.Event {
	t.Helper()
	g, err := gen.New(gen.Config{Schema: s, From: from, To: to, Count: int64(n), Seed: seed, Malformed: malformed, Duplicates: duplicates,
		Cardinality: map[string]int{"tenant": 5, "country": 4, "user_id": 3000}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]gen.Event, n)
	for i := range out {
		out[i] = g.Next(to)
	}
	return out
}

// runSpeed runs a speed worker for the views until the test ends.
func runSpeed(t *testing.T, st *stack, views ...*schemas.View) (stop func()) {
	t.Helper()
	w, err := speed.New(speed.Config{Brokers: st.brokers, Group: testenv.Name("speed"), Views: views, Redis: st.rdb,
		FlushInterval: 50 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("speed worker: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitSpeed waits until the speed layer counts every valid event with an
// event time in [from, to) (duplicates included: it counts what arrives),
// read through the speed layer's own API.
func waitSpeed(t *testing.T, st *stack, v *schemas.View, events []gen.Event, from, to time.Time) {
	t.Helper()
	dec := schemas.NewDecoder(v.Schema)
	var want int64
	for _, e := range events {
		var row schemas.Row
		if dec.Decode(e.Value, &row) == nil && !v.Schema.EventTime(&row).Before(from) && v.Schema.EventTime(&row).Before(to) {
			want++
		}
	}
	r := speed.NewReader(speed.ReaderConfig{Redis: st.rdb})
	q := speed.Query{View: v, From: from.Truncate(time.Hour), To: to.Add(time.Hour).Truncate(time.Hour), Step: time.Hour}
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := r.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, row := range res.Rows {
			got += row.Values[0].Int // orders: count
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("speed layer did not catch up: counts %d of %d events", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeRaw writes the events' valid rows into the raw lake as the
// compactor would: one file per event hour, partition 0, offsets = index.
func writeRaw(t *testing.T, store lake.Store, s *schemas.Schema, events []gen.Event) {
	t.Helper()
	dec := schemas.NewDecoder(s)
	layout := s.RawLayout()
	type hrow struct {
		t   int64
		off int64
		row parquet.Row
	}
	hours := map[time.Time][]hrow{}
	for i, e := range events {
		var row schemas.Row
		if dec.Decode(e.Value, &row) != nil {
			continue
		}
		ts := s.TimeMicros(&row)
		h := time.UnixMicro(ts).UTC().Truncate(time.Hour)
		hours[h] = append(hours[h], hrow{ts, int64(i), layout.AppendRow(nil, &row, 0, int64(i), ts)})
	}
	for h, rows := range hours {
		slices.SortFunc(rows, func(a, b hrow) int { return cmp.Compare(a.t, b.t) })
		first, last := int64(math.MaxInt64), int64(-1)
		prows := make([]parquet.Row, len(rows))
		for i, r := range rows {
			first, last = min(first, r.off), max(last, r.off)
			prows[i] = r.row
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema)
		if _, err := w.WriteRows(prows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		key := lake.RawFile{Schema: s.Name, Hour: h, Topic: s.Topic, Partition: 0, First: first, Last: last}.Key()
		if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// recomputeTo publishes watermark wm for the compactor group and runs
// recompute, which advances B to wm's hour and mirrors it into Redis.
func recomputeTo(t *testing.T, st *stack, rc *recompute.Recomputer, group string, v *schemas.View, wm time.Time) {
	t.Helper()
	b, _ := json.Marshal(raw.Checkpoint{NextOffset: 1, Watermark: wm})
	if err := lake.PutBytes(context.Background(), st.store, lake.CheckpointKey(group, v.Schema.Topic, 0), b); err != nil {
		t.Fatal(err)
	}
	res, err := rc.Recompute(context.Background(), v, recompute.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := wm.Truncate(time.Hour); !res.Boundary.Equal(want) {
		t.Fatalf("recompute: B = %s, want %s", res.Boundary, want)
	}
}

// newStackAPI serves the real readers over HTTP.
func newStackAPI(t *testing.T, st *stack, vs []*schemas.View, mod func(*APIConfig)) *httptest.Server {
	t.Helper()
	vr, err := views.NewReader(views.ReaderConfig{Store: st.store})
	if err != nil {
		t.Fatal(err)
	}
	var ss []*schemas.Schema
	for _, v := range vs {
		ss = append(ss, v.Schema)
	}
	cfg := APIConfig{Views: vs, Schemas: ss, Redis: st.rdb, Speed: speed.NewReader(speed.ReaderConfig{Redis: st.rdb}), Batch: vr,
		Cold: func(ctx context.Context, v *schemas.View, hour time.Time) ([]views.Row, error) {
			return recompute.ComputeHourRows(ctx, st.store, v, hour)
		},
		ColdMaxHours: 6,
		Producer:     func(topic string) MessageWriter { return stream.NewWriter(st.brokers, topic) },
		Tokens:       []config.Token{{Name: "t", Token: adminTok, Scopes: []string{"admin"}}},
		MaxRange:     31 * 24 * time.Hour, MaxRows: 100000, Timeout: 20 * time.Second, MaxBody: 10 << 20,
		Registerer: prometheus.NewRegistry()}
	if mod != nil {
		mod(&cfg)
	}
	api, err := NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	srv := New(Config{Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	api.Register(srv)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs
}

// get queries the API and decodes a 200 answer.
func get(t *testing.T, base, view string, params url.Values) answerJSON {
	t.Helper()
	a, code, body := getRaw(t, base, view, params)
	if code != 200 {
		t.Fatalf("query %s: %d %s", params.Encode(), code, body)
	}
	return a
}

func getRaw(t *testing.T, base, view string, params url.Values) (answerJSON, int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/views/"+view+"/query?"+params.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		return answerJSON{}, resp.StatusCode, buf.Bytes()
	}
	var a answerJSON
	if err := json.Unmarshal(buf.Bytes(), &a); err != nil {
		t.Fatalf("decode: %v: %s", err, buf.Bytes())
	}
	return a, 200, buf.Bytes()
}

// refRow is the exact reference of one (step, group).
type refRow struct {
	orders, qty   int64
	revenue       float64
	biggest, lo   float64
	buyers        map[string]bool
	hasBig, hasLo bool
}

// reference aggregates the valid events independently of the code under
// test, keyed "t|dim|dim" with t RFC 3339. Events before dedupBefore count
// once per id, as batch counts them; from it on every copy counts, as the
// speed layer counts them (a zero dedupBefore: every copy everywhere).
func reference(t *testing.T, v *schemas.View, events []gen.Event, step time.Duration, groupBy []string, where map[string]string, from, to, dedupBefore time.Time) map[string]*refRow {
	t.Helper()
	s := v.Schema
	dec := schemas.NewDecoder(s)
	out := map[string]*refRow{}
	seen := map[string]bool{}
	for _, e := range events {
		var row schemas.Row
		if dec.Decode(e.Value, &row) != nil {
			continue
		}
		ts := s.TimeMicros(&row)
		id := row.Values[s.FieldIndex(s.ID)].Str
		dup := seen[id]
		seen[id] = true
		if ts < from.UnixMicro() || ts >= to.UnixMicro() || dup && ts < dedupBefore.UnixMicro() {
			continue
		}
		str := func(f string) string { return row.Values[s.FieldIndex(f)].Str }
		skip := false
		for d, val := range where {
			if str(d) != val {
				skip = true
			}
		}
		if skip {
			continue
		}
		key := time.UnixMicro(ts - (ts%step.Microseconds()+step.Microseconds())%step.Microseconds()).UTC().Format(time.RFC3339)
		for _, d := range groupBy {
			key += "|" + str(d)
		}
		r := out[key]
		if r == nil {
			r = &refRow{buyers: map[string]bool{}}
			out[key] = r
		}
		amt := row.Values[s.FieldIndex("amount")].Float
		r.orders++
		r.qty += row.Values[s.FieldIndex("qty")].Int
		r.revenue += amt
		if !r.hasBig || amt > r.biggest {
			r.biggest, r.hasBig = amt, true
		}
		if !r.hasLo || amt < r.lo {
			r.lo, r.hasLo = amt, true
		}
		r.buyers[str("user_id")] = true
	}
	return out
}

func num(x any) float64 {
	f, _ := x.(float64)
	return f
}

// checkAnswer compares every row with the reference: count, int sum, min
// and max exactly, float sums to 1e-9 (Redis' HINCRBYFLOAT, see the speed
// package doc), uniq within uniqTol; and that no reference row is missing.
func checkAnswer(t *testing.T, a answerJSON, ref map[string]*refRow, groupBy []string, uniqTol float64) {
	t.Helper()
	seen := map[string]bool{}
	bad := 0
	for _, r := range a.Rows {
		key, _ := r["t"].(string)
		for _, d := range groupBy {
			key += "|" + fmt.Sprint(r[d])
		}
		if seen[key] {
			t.Errorf("row %s twice", key)
		}
		seen[key] = true
		w := ref[key]
		if w == nil {
			t.Errorf("row %s not in the reference: %v", key, r)
			bad++
			continue
		}
		buyers := float64(len(w.buyers))
		if int64(num(r["orders"])) != w.orders || int64(num(r["qty"])) != w.qty || num(r["biggest"]) != w.biggest || num(r["smallest"]) != w.lo ||
			math.Abs(num(r["revenue"])-w.revenue) > 1e-9*math.Abs(w.revenue) || math.Abs(num(r["buyers"])-buyers) > uniqTol*buyers {
			bad++
			if bad <= 5 {
				t.Errorf("row %s = %v, want orders=%d qty=%d revenue=%v biggest=%v smallest=%v buyers=%v", key, r, w.orders, w.qty, w.revenue, w.biggest, w.lo, buyers)
			}
		}
	}
	for k := range ref {
		if !seen[k] {
			bad++
			if bad <= 5 {
				t.Errorf("row %s missing from the answer", k)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rows differ from the reference", bad, len(ref))
	}
}

func sumOrders(ref map[string]*refRow) int64 {
	var n int64
	for _, r := range ref {
		n += r.orders
	}
	return n
}

func totalOrders(a answerJSON) int64 {
	var n int64
	for _, r := range a.Rows {
		n += int64(num(r["orders"]))
	}
	return n
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
