package serving

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// cellUniqTol bounds uniq per row when many rows are checked: Redis' HLL
// has a 0.81% standard error, so over dozens of rows a 2% bound fails by
// chance now and then; 5% is about six standard errors. The 2% bound is
// asserted on the rolled-up rows (one per day) below.
const cellUniqTol = 0.05

// TestMergeAtBoundary: batch serves [from, B), speed [B, to). Both layers
// hold every event (the speed layer ran before B was set), and Kafka holds
// duplicates: the speed layer counts every copy, batch drops them by id.
// So each range's figures prove which layer answered it (a range read from
// the wrong layer, a bucket counted twice or missed would show in the
// totals); B moves under a stream of queries and every answer must still
// add up to the reference for its own B.
func TestMergeAtBoundary(t *testing.T) { overRedisSetups(t, mergeAtBoundary) }

func mergeAtBoundary(t *testing.T, st *stack) {
	topic := testenv.Topic(t, st.brokers, 2)
	s := testSchema(t, topic)
	v := testView(uniqueView("srv"), s)
	v.Shards = st.shards
	now := time.Now().UTC()
	// H is the last hour start the wall clock lets recompute close a
	// minute past: hours close at the latest by now − lateness, so in the
	// first minutes of an hour H is the hour before (a fresh-clone run
	// failed the test at 04:03 with H = 04:00 and B held at 03:00).
	H := now.Add(-v.Lateness - time.Minute).Truncate(time.Hour)
	from, to := H.Add(-3*time.Hour), H.Add(time.Hour)
	events := genEvents(t, s, 12000, from, now.Add(-time.Second), 7, 0.01, 0.05)

	testenv.Produce(t, st.brokers, topic, events)
	stopSpeed := runSpeed(t, st, v)
	waitSpeed(t, st, v, events, from, now)

	writeRaw(t, st.store, s, events)
	group := testenv.Name("compact")
	rc, err := recompute.New(recompute.Config{Store: st.store, Group: group, Registerer: prometheus.NewRegistry(),
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			_, err := boundary.Publish(ctx, st.rdb, view, b)
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	recomputeTo(t, st, rc, group, v, H.Add(-2*time.Hour))
	hs := newStackAPI(t, st, []*schemas.View{v}, nil)

	// The reference total for an answer with boundary b.
	totalAt := func(b time.Time) int64 {
		var n int64
		for _, r := range reference(t, v, events, time.Hour, nil, nil, from, to, b) {
			n += r.orders
		}
		return n
	}
	// Duplicates on both sides of the Bs used below, or the test could not
	// tell the layers apart (after H there may be only seconds of events).
	for _, b := range []time.Time{H.Add(-2 * time.Hour), H.Add(-time.Hour), H} {
		before, beforeDeduped := reference(t, v, events, time.Hour, nil, nil, from, b, time.Time{}), reference(t, v, events, time.Hour, nil, nil, from, b, to)
		after, afterDeduped := reference(t, v, events, time.Hour, nil, nil, b, to, time.Time{}), reference(t, v, events, time.Hour, nil, nil, b, to, to)
		if sumOrders(beforeDeduped) >= sumOrders(before) || b.Before(H) && sumOrders(afterDeduped) >= sumOrders(after) {
			t.Fatalf("B=%s: no duplicates before it (%d of %d unique) or after it (%d of %d)", b,
				sumOrders(beforeDeduped), sumOrders(before), sumOrders(afterDeduped), sumOrders(after))
		}
	}

	B0 := H.Add(-2 * time.Hour)
	all := reference(t, v, events, time.Minute, nil, nil, from, to, B0)
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	a := get(t, hs.URL, v.Name, q)
	B := B0.Format(time.RFC3339)
	if a.Boundary == nil || *a.Boundary != B || len(a.Gaps) != 0 ||
		fmt.Sprint(a.Sources["batch"]) != fmt.Sprintf("[%s %s]", from.Format(time.RFC3339), B) ||
		fmt.Sprint(a.Sources["speed"]) != fmt.Sprintf("[%s %s]", B, to.Format(time.RFC3339)) {
		t.Fatalf("boundary %v sources %v gaps %v", a.Boundary, a.Sources, a.Gaps)
	}
	if !slices.Equal(a.Approximate, []string{"buyers"}) {
		t.Errorf("approximate = %v, want [buyers] (the speed rows' uniq)", a.Approximate)
	}
	checkAnswer(t, a, all, nil, cellUniqTol)
	// Batch rows at their stored grain are exact, uniq included.
	exact := get(t, hs.URL, v.Name, url.Values{"from": {from.Format(time.RFC3339)}, "to": {B}, "group_by": {"tenant,country"}})
	if len(exact.Approximate) != 0 {
		t.Errorf("batch rows at the stored grain flagged approximate: %v", exact.Approximate)
	}
	checkAnswer(t, exact, reference(t, v, events, time.Minute, []string{"tenant", "country"}, nil, from, B0, B0), []string{"tenant", "country"}, 0)

	// B moves while queries run: each answer adds up to the reference total
	// for the B it reports.
	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		mu       sync.Mutex
		seen     = map[string]int{}
		answers  int
		failures []string
	)
	totals := map[string]int64{}
	for _, b := range []time.Time{B0, H.Add(-time.Hour), H} {
		totals[b.Format(time.RFC3339)] = totalAt(b)
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, code, body := getRaw(t, hs.URL, v.Name, url.Values{"from": q["from"], "to": q["to"], "step": {"1h"}, "group_by": {"tenant"}, "metrics": {"orders"}})
				mu.Lock()
				answers++
				switch {
				case code != 200:
					failures = append(failures, fmt.Sprintf("%d %s", code, body))
				case a.Boundary == nil || totals[*a.Boundary] == 0:
					failures = append(failures, fmt.Sprintf("unexpected boundary %v", a.Boundary))
				case totalOrders(a) != totals[*a.Boundary] || len(a.Gaps) != 0:
					failures = append(failures, fmt.Sprintf("B=%v total %d, want %d, gaps %v", *a.Boundary, totalOrders(a), totals[*a.Boundary], a.Gaps))
				default:
					seen[*a.Boundary]++
				}
				mu.Unlock()
			}
		}()
	}
	// Each B is served to some queries before it moves on.
	waitAnswers := func(b time.Time) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := seen[b.Format(time.RFC3339)]
			mu.Unlock()
			if n >= 3 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("no answers with B=%s within 20s", b)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAnswers(B0)
	recomputeTo(t, st, rc, group, v, H.Add(-time.Hour))
	waitAnswers(H.Add(-time.Hour))
	recomputeTo(t, st, rc, group, v, H.Add(time.Minute))
	waitAnswers(H)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d answers inconsistent while B moved, first: %s", len(failures), answers, failures[0])
	}
	if len(seen) < 2 || seen[H.Format(time.RFC3339)] == 0 {
		t.Errorf("boundaries seen by the queries: %v, want several ending at %s", seen, H.Format(time.RFC3339))
	}

	// Roll-ups at B = H, against the reference.
	t.Run("rollups", func(t *testing.T) {
		for _, c := range []struct {
			step    time.Duration
			groupBy []string
			where   map[string]string
			uniqTol float64
		}{
			{time.Minute, nil, nil, cellUniqTol},
			{time.Hour, []string{"tenant"}, nil, cellUniqTol},
			{time.Hour, []string{"country"}, map[string]string{"tenant": "tenant-1"}, cellUniqTol},
			{7 * time.Minute, []string{"country"}, nil, cellUniqTol}, // a step straddles B
			{5 * time.Minute, nil, map[string]string{"country": "country-0"}, cellUniqTol},
			{24 * time.Hour, nil, nil, 0.02}, // batch and speed sketches unioned
		} {
			name := fmt.Sprintf("step=%s group_by=%v where=%v", formatStep(c.step), c.groupBy, c.where)
			p := url.Values{"from": q["from"], "to": q["to"], "step": {formatStep(c.step)}}
			if len(c.groupBy) > 0 {
				p.Set("group_by", strings.Join(c.groupBy, ","))
			}
			for d, val := range c.where {
				p.Add("where", d+":"+val)
			}
			a := get(t, hs.URL, v.Name, p)
			aFrom, _ := time.Parse(time.RFC3339, a.From)
			aTo, _ := time.Parse(time.RFC3339, a.To)
			ref := reference(t, v, events, c.step, c.groupBy, c.where, aFrom, aTo, H)
			if len(ref) == 0 {
				t.Fatalf("%s: empty reference (where matches nothing?)", name)
			}
			t.Run(name, func(t *testing.T) { checkAnswer(t, a, ref, c.groupBy, c.uniqTol) })
		}
	})

	// Redis loses the view's hot state: [B, to) is computed from the raw
	// lake (cold), or listed as a gap when too long — never a silent zero.
	t.Run("lost speed state", func(t *testing.T) {
		// The worker is down while Redis loses the view's keys (a worker
		// running would replay the hot window from Kafka).
		stopSpeed()
		ctx := context.Background()
		b, ok, err := boundary.Read(ctx, st.rdb, v.Name)
		if err != nil || !ok {
			t.Fatalf("B before the loss: %v %v", ok, err)
		}
		// Every shard's keys ({view} and {view:s}, on every master); B
		// is set again after.
		for _, pattern := range []string{"ll:{" + v.Name + "}:*", "ll:{" + v.Name + ":*"} {
			if err := testenv.DeleteRedisKeys(ctx, st.rdb, pattern); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := boundary.Publish(ctx, st.rdb, v.Name, b); err != nil {
			t.Fatal(err)
		}
		a := get(t, hs.URL, v.Name, q)
		if len(a.Gaps) != 0 || a.Sources["cold"] == nil {
			t.Fatalf("want the lost range computed cold: sources %v gaps %v", a.Sources, a.Gaps)
		}
		// Cold is computed from the raw lake, as batch is: duplicates dropped.
		checkAnswer(t, a, reference(t, v, events, time.Minute, nil, nil, from, to, to), nil, cellUniqTol)
		noCold := newStackAPI(t, st, []*schemas.View{v}, func(c *APIConfig) { c.ColdMaxHours = 0 })
		a = get(t, noCold.URL, v.Name, q)
		if len(a.Gaps) != 1 || a.Gaps[0][0] != H.Format(time.RFC3339) {
			t.Fatalf("want [B, now) listed as a gap: %v", a.Gaps)
		}
		for _, r := range a.Rows {
			if r["t"].(string) >= H.Format(time.RFC3339) {
				t.Errorf("row %v inside the gap", r)
			}
		}
	})
}

// TestEventsReachKafkaAndViews: accepted lines are in Kafka once the
// answer comes, then in the view (a speed worker applies them); rejected
// lines are reported by number; strict mode produces nothing on a bad line.
func TestEventsReachKafkaAndViews(t *testing.T) { overRedisSetups(t, eventsReachKafkaAndViews) }

func eventsReachKafkaAndViews(t *testing.T, st *stack) {
	topic := testenv.Topic(t, st.brokers, 2)
	s := testSchema(t, topic)
	v := testView(uniqueView("events"), s)
	v.Shards = st.shards
	hs := newStackAPI(t, st, []*schemas.View{v}, nil)
	runSpeed(t, st, v)

	now := time.Now().UTC()
	events := genEvents(t, s, 500, now.Add(-10*time.Minute), now, 3, 0.05, 0)
	var body strings.Builder
	var wantRejected []int
	var wantValues []string
	for i, e := range events {
		body.Write(e.Value)
		body.WriteByte('\n')
		if e.Kind == gen.Malformed {
			wantRejected = append(wantRejected, i+1)
		} else {
			wantValues = append(wantValues, string(e.Value))
		}
	}
	if len(wantRejected) == 0 {
		t.Fatal("generator made no malformed line")
	}
	post := func(target, body string) (int, eventsAnswer) {
		req, _ := http.NewRequest("POST", hs.URL+target, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a eventsAnswer
		if err := decodeJSON(resp, &a); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, a
	}

	code, a := post("/v1/events?schema=orders&strict=true", body.String())
	if code != 400 || a.RejectedTotal != len(wantRejected) || a.Accepted != 0 {
		t.Fatalf("strict: %d %+v", code, a)
	}
	if end := testenv.EndOffsets(t, st.brokers, topic); end[0]+end[1] != 0 {
		t.Fatalf("strict refusal produced %v", end)
	}

	code, a = post("/v1/events?schema=orders", body.String())
	var lines []int
	for _, r := range a.Rejected {
		lines = append(lines, r.Line)
	}
	if code != 200 || a.Accepted != len(wantValues) || !slices.Equal(lines, wantRejected) {
		t.Fatalf("%d accepted=%d (want %d) rejected lines %v (want %v)", code, a.Accepted, len(wantValues), lines, wantRejected)
	}
	// In Kafka as soon as the answer came: read them back.
	end := testenv.EndOffsets(t, st.brokers, topic)
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p, e := range end {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: st.brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for off := int64(0); off < e; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read back partition %d: %v", p, err)
			}
			got = append(got, string(m.Value))
		}
		r.Close()
	}
	slices.Sort(got)
	slices.Sort(wantValues)
	if !slices.Equal(got, wantValues) {
		t.Fatalf("Kafka holds %d messages, want the %d accepted lines", len(got), len(wantValues))
	}
	// And then in the view.
	waitSpeed(t, st, v, events, now.Add(-time.Hour), now.Add(time.Minute))
	ans := get(t, hs.URL, v.Name, url.Values{"from": {now.Add(-time.Hour).Format(time.RFC3339)}, "to": {now.Add(time.Minute).Format(time.RFC3339)}, "step": {"1h"}})
	if n := totalOrders(ans); n != int64(len(wantValues)) || len(ans.Gaps) != 0 {
		t.Errorf("view counts %d orders (gaps %v), want %d", n, ans.Gaps, len(wantValues))
	}
}
