package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

const tenantWriteTok = "tenant-write-token-0123456789"

func event(i int, tenant string) string {
	return fmt.Sprintf(`{"order_id":"o%d","ts":"2026-11-27T10:00:00Z","tenant":"%s","country":"de","user_id":"u1","amount":1.5,"qty":2}`, i, tenant)
}

// The Events API says what is wrong with each line it refuses: too long
// for Kafka, invalid UTF-8, another tenant's event.
func TestEventsLimits(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) {
		c.MaxBody = 1 << 20
		c.MaxEventBytes = 300
		c.Tokens = append(c.Tokens, config.Token{Name: "acme-ingest", Token: tenantWriteTok, Scopes: []string{"write:events"}, Filters: map[string]string{"tenant": "t07"}})
	})
	long := strings.Replace(event(9, "a"), `"qty":2`, `"qty":2,"pad":"`+strings.Repeat("x", 300)+`"`, 1)
	tests := []struct {
		name         string
		token        string
		lines        []string
		wantCode     int
		wantAccepted int
		wantRejected map[int]string // line → part of the reason
	}{
		{"valid", writeTok, []string{event(1, "a"), event(2, "b")}, 200, 2, nil},
		{"line longer than Kafka takes", writeTok, []string{event(1, "a"), long, event(3, "a")}, 200, 2,
			map[int]string{2: fmt.Sprintf("line is %d bytes, more than the 300 bytes one event may have", len(long))}},
		{"only a long line", writeTok, []string{long}, 400, 0, map[int]string{1: "more than the 300 bytes"}},
		{"invalid UTF-8", writeTok, []string{event(1, "a"), event(2, "t\xff07")}, 200, 1,
			map[int]string{2: `field "tenant": invalid UTF-8, want string`}},
		{"invalid UTF-8 in an unknown field is ignored", writeTok, []string{strings.Replace(event(1, "a"), `"qty":2`, `"qty":2,"note":"\xfe"`, 1)}, 200, 1, nil},
		{"tenant token writes its tenant", tenantWriteTok, []string{event(1, "t07")}, 200, 1, nil},
		{"tenant token refused another tenant", tenantWriteTok, []string{event(1, "t07"), event(2, "t08")}, 200, 1,
			map[int]string{2: `field "tenant": token acme-ingest is bound to tenant=t07`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.writer.msgs)
			code, body, _ := f.do(t, "POST", "/v1/events?schema=orders", tt.token, []byte(strings.Join(tt.lines, "\n")))
			var ans eventsAnswer
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatalf("%d %s", code, body)
			}
			if code != tt.wantCode || ans.Accepted != tt.wantAccepted || ans.RejectedTotal != len(tt.wantRejected) {
				t.Fatalf("%d %s", code, body)
			}
			for _, r := range ans.Rejected {
				if want, ok := tt.wantRejected[r.Line]; !ok || !strings.Contains(r.Error, want) {
					t.Errorf("line %d rejected with %q, want %q", r.Line, r.Error, want)
				}
			}
			if got := len(f.writer.msgs) - before; got != tt.wantAccepted {
				t.Errorf("%d produced, want %d", got, tt.wantAccepted)
			}
		})
	}
	// The default line limit is what one Kafka message takes.
	if d := newFixture(t, nil); d.api.cfg.MaxEventBytes != stream.MaxValueBytes {
		t.Errorf("default MaxEventBytes = %d, want %d", d.api.cfg.MaxEventBytes, stream.MaxValueBytes)
	}
}

type failingWriter struct{}

func (failingWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return errors.New("dial tcp 10.1.2.3:9092: connect: connection refused")
}
func (failingWriter) Close() error { return nil }

// A 503 names what failed, not how: the dependency's error text is for
// admin callers (and the log).
func TestQuietFailures(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) {
		c.Producer = func(string) MessageWriter { return failingWriter{} }
		c.Tokens = append(c.Tokens, config.Token{Name: "w-admin", Token: "admin-writer-0123456789", Scopes: []string{"admin"}})
	})
	f.srv.cfg.Checks = map[string]Check{
		"kafka": func(context.Context) error { return errors.New("dial tcp 10.1.2.3:9092: connect: connection refused") },
		"redis": func(context.Context) error { return nil },
	}
	tests := []struct {
		name, method, target, token string
		wantCode                    int
		want, notWant               string
	}{
		{"readyz public", "GET", "/readyz", "", 503, `{"kafka":"down","redis":"ok"}`, "10.1.2.3"},
		{"readyz with a read token", "GET", "/readyz", readTok, 503, `"kafka":"down"`, "10.1.2.3"},
		{"readyz with a bad token", "GET", "/readyz", "nope-nope-nope-nope", 503, `"kafka":"down"`, "10.1.2.3"},
		{"readyz admin", "GET", "/readyz", adminTok, 503, `"kafka":"down: dial tcp 10.1.2.3:9092`, ""},
		{"events 503", "POST", "/v1/events?schema=orders", writeTok, 503, `"error":"Kafka did not acknowledge the events"`, "10.1.2.3"},
		{"events 503 admin", "POST", "/v1/events?schema=orders", adminTok, 503, "10.1.2.3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := f.do(t, tt.method, tt.target, tt.token, []byte(event(1, "a")))
			if code != tt.wantCode || !strings.Contains(string(body), tt.want) || tt.notWant != "" && strings.Contains(string(body), tt.notWant) {
				t.Errorf("%d %s; want %d with %s and without %q", code, body, tt.wantCode, tt.want, tt.notWant)
			}
			if code == 503 && strings.HasPrefix(tt.target, "/v1/") && hdr.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	// A query whose dependency fails: same rule.
	down := newFixture(t, nil)
	down.mr.Close()
	for tok, leak := range map[string]bool{readTok: false, adminTok: true} {
		code, body, hdr := down.do(t, "GET", "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z", tok, nil)
		if code != 503 || hdr.Get("Retry-After") == "" || strings.Contains(string(body), "dial tcp") != leak {
			t.Errorf("Redis down, token %s: %d %s (Retry-After %q)", tok, code, body, hdr.Get("Retry-After"))
		}
	}
}

// Invalid UTF-8 is refused alike by the Events API, the compactor (dead
// letter) and the speed layer (skipped as malformed), with one reason; and
// a line too long for Kafka is a rejected line, not a 503.
func TestEventsLimitsOnStack(t *testing.T) {
	st := newStack(t)
	topic := testenv.Topic(t, st.brokers, 1)
	s := testSchema(t, topic)
	v := testView(uniqueView("utf8"), s)
	hs := newStackAPI(t, st, []*schemas.View{v}, nil)

	now := time.Now().UTC().Truncate(time.Second)
	ev := func(i int, tenant string) string {
		return fmt.Sprintf(`{"order_id":"o%d","ts":"%s","tenant":"%s","country":"de","user_id":"u1","amount":1.5,"qty":2}`, i, now.Format(time.RFC3339), tenant)
	}
	bad := ev(2, "t\xff07")
	long := strings.Replace(ev(3, "a"), `"qty":2`, `"qty":2,"pad":"`+strings.Repeat("x", 2<<20)+`"`, 1)
	body := strings.Join([]string{ev(1, "a"), bad, long, ev(4, "b")}, "\n")
	req, _ := http.NewRequest("POST", hs.URL+"/v1/events?schema=orders", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans eventsAnswer
	if err := decodeJSON(resp, &ans); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v %+v", resp.StatusCode, err, ans)
	}
	if ans.Accepted != 2 || len(ans.Rejected) != 2 || ans.Rejected[0].Line != 2 || ans.Rejected[1].Line != 3 ||
		!strings.Contains(ans.Rejected[1].Error, fmt.Sprintf("line is %d bytes, more than the %d bytes", len(long), stream.MaxValueBytes)) {
		t.Fatalf("answer %+v", ans)
	}
	apiReason := ans.Rejected[0].Error
	if !strings.Contains(apiReason, `field "tenant": invalid UTF-8`) {
		t.Fatalf("Events API reason %q", apiReason)
	}

	// The same bytes straight into Kafka, as a producer without the API.
	produceRaw(t, st.brokers, topic, bad)

	reg := prometheus.NewRegistry()
	w, err := speed.New(speed.Config{Brokers: st.brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: st.rdb,
		FlushInterval: 50 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c, err := compact.New(compact.Config{Brokers: st.brokers, Group: testenv.Name("compact"), Store: st.store,
		Schemas: []*schemas.Schema{s}, MaxFileAge: 200 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { errc <- w.Run(ctx) }()
	go func() { errc <- c.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-errc; err != nil {
				t.Errorf("worker: %v", err)
			}
		}
	}()
	accepted := []gen.Event{{Value: []byte(ev(1, "a"))}, {Value: []byte(ev(4, "b"))}}
	waitSpeed(t, st, v, accepted, now.Add(-time.Hour), now.Add(time.Hour))
	var dead []raw.DeadLetter
	for deadline := time.Now().Add(60 * time.Second); len(dead) == 0; time.Sleep(200 * time.Millisecond) {
		if dead, err = raw.ReadDeadLetters(context.Background(), st.store, s.Name); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter")
		}
	}
	if len(dead) != 1 || string(dead[0].Raw) != bad || dead[0].Error != apiReason {
		t.Errorf("dead letters %d: %q, reason %q; want the raw event with the Events API's reason %q", len(dead), dead[0].Raw, dead[0].Error, apiReason)
	}
	n := -1.0
	for deadline := time.Now().Add(60 * time.Second); n != 1 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		n = skippedMalformed(t, reg, v.Name)
	}
	if n != 1 {
		t.Errorf("speed skipped %v events as malformed, want 1", n)
	}
}

// skippedMalformed reads lambdalake_speed_skipped_total{view, reason=malformed}.
func skippedMalformed(t *testing.T, reg *prometheus.Registry, view string) float64 {
	t.Helper()
	skipped, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := -1.0
	for _, mf := range skipped {
		if mf.GetName() != "lambdalake_speed_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["view"] == view && labels["reason"] == speed.SkipMalformed {
				n = m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func produceRaw(t *testing.T, brokers []string, topic string, values ...string) {
	t.Helper()
	w := stream.NewWriter(brokers, topic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for _, v := range values {
		msgs = append(msgs, kafka.Message{Value: []byte(v)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}
