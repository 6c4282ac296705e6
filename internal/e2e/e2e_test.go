package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

type key struct {
	t               int64 // bucket start, µs
	tenant, country string
}

type figures struct {
	count         int64
	sum, min, max float64
	users         map[string]bool
	// A decimal(18,2) amount (the example config's): exact cents, and
	// answers must print them with exactly these digits.
	cents            bool
	csum, cmin, cmax int64
}

func (f *figures) add(amount float64, user string) {
	if f.users == nil {
		f.users, f.min, f.max = map[string]bool{}, math.Inf(1), math.Inf(-1)
	}
	f.count++
	f.sum += amount
	f.min, f.max = min(f.min, amount), max(f.max, amount)
	f.users[user] = true
}

// addCents adds an order of a decimal(18,2) amount, in cents.
func (f *figures) addCents(cents int64, user string) {
	if f.users == nil {
		f.users, f.cmin, f.cmax, f.cents = map[string]bool{}, math.MaxInt64, math.MinInt64, true
	}
	f.count++
	f.csum += cents
	f.cmin, f.cmax = min(f.cmin, cents), max(f.cmax, cents)
	f.users[user] = true
}

// centsMatch compares a row's revenue, smallest and biggest with a
// decimal(P,2) reference: the JSON number's text must be the reference's
// exact cents with two decimals. want is that text.
func centsMatch(r map[string]any, ref *figures) (want [3]string, ok bool) {
	text := func(name string) string { n, _ := r[name].(json.Number); return string(n) }
	want = [3]string{schemas.FormatDecimal(ref.csum, 2), schemas.FormatDecimal(ref.cmin, 2), schemas.FormatDecimal(ref.cmax, 2)}
	return want, text("revenue") == want[0] && text("smallest") == want[1] && text("biggest") == want[2]
}

// num is a number of an answer row (decoded with UseNumber) as a float64.
func num(r map[string]any, name string) float64 {
	n, _ := r[name].(json.Number)
	f, _ := n.Float64()
	return f
}

// The acceptance test: `lambdalake all` on the real stack, six hours of
// history and live traffic with out-of-order, duplicate and malformed
// events, the process killed with SIGKILL twice and restarted. Then,
// through the HTTP API: every bucket equals the exact reference
// (de-duplicated by id) — before B from batch, from B on from the speed
// layer, which de-duplicates live (the example's dedup_window; uniq there
// within HyperLogLog's error) — there are no gaps, and the dead-letter
// area holds every malformed record. The example's amount is a
// decimal(18,2): revenue, smallest and biggest must print the reference's
// exact cents in both layers, digit for digit.
func TestAllOnTheRealStack(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	redisAddr := testenv.RedisAddr(t)
	store, lakeURL := testenv.S3Lake(t)
	bin := testenv.Binary(t)
	ctx := context.Background()

	// Fresh names for everything shared with other tests.
	id := strings.ReplaceAll(testenv.Name("e2e"), "-", "_")
	view := "rev_" + id
	httpAddr := testenv.FreeAddr(t)
	text := string(lambdalake.ExampleConfig)
	for old, new := range map[string]string{
		"topic: orders":        "topic: orders_" + id,
		"topic: pageviews":     "topic: pageviews_" + id,
		"  revenue:\n":         "  " + view + ":\n",
		"  traffic:\n":         "  trf_" + id + ":\n",
		"compact:\n":           "compact:\n  group: compact_" + id + "\n  session_timeout: 6s\n",
		"speed:\n":             "speed:\n  group: speed_" + id + "\n  session_timeout: 6s\n  metrics_addr: \"\"\n",
		"jobs:\n":              "jobs:\n  namespace: " + id + "\n  lease: 4s\n",
		"max_file_age: 1m":     "max_file_age: 3s",
		`"0 */2 * * * *"`:      `"*/3 * * * * *"`,
		"addr: 127.0.0.1:8080": "addr: " + httpAddr,
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("example config has no %q", old)
		}
		text = strings.Replace(text, old, new, 1)
	}
	cfg, err := config.Parse([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	path := testenv.WriteConfig(t, text)
	env := append(os.Environ(), "LAMBDALAKE_LAKE_URL="+lakeURL, "LAMBDALAKE_REDIS_ADDRS="+redisAddr,
		"LAMBDALAKE_KAFKA_BROKERS="+strings.Join(brokers, ","))
	s, v := cfg.Schema("orders"), cfg.View(view)
	for _, sc := range cfg.SchemaList {
		if err := stream.EnsureTopic(ctx, brokers, sc.Topic, 4); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lambdalake %v: %v\n%s", args, err, out)
		}
	}
	// Six hours of history.
	run("gen", "--config", path, "--schema", "orders", "--span", "6h", "--count", "60000",
		"--keys", "tenant=3,country=4,user_id=3000", "--out-of-order", "0.05", "--duplicates", "0.02",
		"--malformed", "0.01", "--seed", "11")

	var logs testenv.SyncBuffer
	var all *exec.Cmd
	exited := make(chan error, 1)
	startAll := func() {
		all = exec.Command(bin, "all", "--config", path, "--runner", "e2e")
		all.Env = env
		all.Stdout, all.Stderr = &logs, &logs
		if err := all.Start(); err != nil {
			t.Fatal(err)
		}
		go func(c *exec.Cmd) { exited <- c.Wait() }(all)
	}
	defer func() {
		if all != nil {
			all.Process.Kill()
		}
		if t.Failed() {
			t.Logf("lambdalake all output (tail):\n%s", tail(logs.String(), 6000))
		}
	}()
	startAll()

	// Live traffic while the process is killed twice.
	live := exec.Command(bin, "gen", "--config", path, "--schema", "orders", "--rate", "300", "--duration", "36s",
		"--keys", "tenant=3,country=4,user_id=3000", "--out-of-order", "0.05", "--max-delay", "2m",
		"--duplicates", "0.02", "--malformed", "0.01", "--seed", "12")
	live.Env = env
	var liveOut bytes.Buffer
	live.Stdout, live.Stderr = &liveOut, &liveOut
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	for i := range 2 {
		// Kill only once this run has done work (the speed layer and the
		// compactor moved) and has work in flight (Kafka holds records
		// neither has finished), so the kill interrupts something.
		inFlight := waitWorkInFlight(t, store, rdb, brokers, cfg.Compact.Group, s, v)
		all.Process.Signal(syscall.SIGKILL)
		<-exited
		t.Logf("killed lambdalake all (%d) with %s", i+1, inFlight)
		startAll()
	}
	if err := live.Wait(); err != nil {
		t.Fatalf("live gen: %v\n%s", err, liveOut.String())
	}

	// What Kafka holds is the truth the answers must match.
	records, ends := readTopic(t, brokers, s.Topic)
	waitCaughtUp(t, store, rdb, cfg.Compact.Group, id, s, v, ends)

	if f, _ := s.Field("amount"); f.Type.Kind() != schemas.Decimal || f.Type.Scale() != 2 {
		t.Fatalf("the example's amount is %s: this test's reference counts cents of a decimal(P,2)", f.Type)
	}
	batchRef, _, malformed := references(s, v, records)

	from := time.Now().UTC().Add(-7 * time.Hour).Truncate(time.Hour)
	to := time.Now().UTC().Add(time.Hour).Truncate(time.Hour)
	ans := query(t, httpAddr, view, from, to)
	if ans.Boundary == nil {
		t.Fatal("no boundary after six hours of history: batch never closed an hour")
	}
	b, _ := time.Parse(time.RFC3339, *ans.Boundary)
	if len(ans.Gaps) != 0 {
		t.Errorf("gaps: %v", ans.Gaps)
	}
	if b.Before(from.Add(6 * time.Hour)) {
		t.Errorf("boundary %v: the history's closed hours are not all in batch", b)
	}
	got := map[key]bool{}
	var batchRows, speedRows int
	for _, r := range ans.Rows {
		tm, _ := time.Parse(time.RFC3339, r["t"].(string))
		k := key{tm.UnixMicro(), r["tenant"].(string), r["country"].(string)}
		got[k] = true
		// The example's orders de-duplicate live (dedup_window: 2h, and
		// every hour from B on is in it), so speed rows equal the same
		// de-duplicated reference; only their uniq is approximate.
		ref, exact := batchRef[k], true
		if !tm.Before(b) {
			exact = false
			speedRows++
		} else {
			batchRows++
		}
		if ref == nil {
			t.Errorf("row %v is in no reference", k)
			continue
		}
		checkRow(t, k, r, ref, exact)
	}
	for k := range batchRef {
		if time.UnixMicro(k.t).Before(b) && !time.UnixMicro(k.t).Before(from) && !got[k] {
			t.Errorf("batch cell %v missing from the answer", k)
		}
	}
	for k := range batchRef {
		if !time.UnixMicro(k.t).Before(b) && time.UnixMicro(k.t).Before(to) && !got[k] {
			t.Errorf("speed cell %v missing from the answer", k)
		}
	}
	if batchRows == 0 || speedRows == 0 {
		t.Errorf("answer has %d batch and %d speed rows: both layers must serve", batchRows, speedRows)
	}

	// The dead-letter area holds exactly the malformed records: each once,
	// none missing, nothing else.
	dead, err := raw.ReadDeadLetters(ctx, store, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	deadSet := map[[2]int64]bool{}
	for _, d := range dead {
		k := [2]int64{int64(d.Partition), d.Offset}
		if d.Error == "" {
			t.Errorf("dead letter %d/%d has no reason", d.Partition, d.Offset)
		}
		if d.Topic != s.Topic {
			t.Errorf("dead letter %d/%d names topic %q", d.Partition, d.Offset, d.Topic)
		}
		if deadSet[k] {
			t.Errorf("dead letter %d/%d listed twice", d.Partition, d.Offset)
		}
		deadSet[k] = true
		if !malformed[k] {
			t.Errorf("dead letter %d/%d is not a malformed record", d.Partition, d.Offset)
		}
	}
	for k := range malformed {
		if !deadSet[k] {
			t.Errorf("malformed record %d/%d missing from the dead-letter area", k[0], k[1])
		}
	}
	if len(malformed) == 0 {
		t.Error("no malformed records: the test exercises no dead letters")
	}
	t.Logf("%d records, boundary %v, %d batch rows and %d speed rows checked, %d dead letters", len(records), b, batchRows, speedRows, len(dead))
}

func checkRow(t *testing.T, k key, r map[string]any, ref *figures, exact bool) {
	t.Helper()
	users := float64(len(ref.users))
	uniqOK := num(r, "buyers") == users
	if !exact { // an HLL per speed cell: Redis' sparse encoding is near exact at these sizes
		uniqOK = math.Abs(num(r, "buyers")-users) <= math.Max(1, 0.02*users)
	}
	src := "speed"
	if exact {
		src = "batch"
	}
	if ref.cents {
		want, ok := centsMatch(r, ref)
		if int64(num(r, "orders")) != ref.count || !uniqOK || !ok {
			t.Errorf("%s cell %v: got orders=%v revenue=%v min=%v max=%v buyers=%v; want %d %s %s %s %d", src, k,
				r["orders"], r["revenue"], r["smallest"], r["biggest"], r["buyers"], ref.count, want[0], want[1], want[2], len(ref.users))
		}
		return
	}
	if int64(num(r, "orders")) != ref.count || num(r, "smallest") != ref.min || num(r, "biggest") != ref.max || !uniqOK ||
		math.Abs(num(r, "revenue")-ref.sum) > 1e-9*math.Max(1, math.Abs(ref.sum)) {
		t.Errorf("%s cell %v: got orders=%v revenue=%v min=%v max=%v buyers=%v; want %d %v %v %v %d", src, k,
			r["orders"], r["revenue"], r["smallest"], r["biggest"], r["buyers"], ref.count, ref.sum, ref.min, ref.max, len(ref.users))
	}
}

type answer struct {
	Boundary *string          `json:"boundary"`
	Gaps     [][2]string      `json:"gaps"`
	Rows     []map[string]any `json:"rows"`
}

func query(t *testing.T, addr, view string, from, to time.Time) answer {
	t.Helper()
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {"1m"},
		"group_by": {"tenant,country"}}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/views/"+view+"/query?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer change-me-read-only-token") // the example config's read:views token
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if resp.StatusCode != 200 {
		var e map[string]any
		json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("query: %d %v", resp.StatusCode, e)
	}
	d := json.NewDecoder(resp.Body)
	d.UseNumber() // decimals are compared by their text
	if err := d.Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

// readTopic reads every record of a topic and its end offsets.
func readTopic(t *testing.T, brokers []string, topic string) ([]kafka.Message, map[int]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends := map[int]int64{}
	var out []kafka.Message
	for p := range 4 {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		ends[p] = end
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxBytes: 4 << 20})
		for n := int64(0); n < end; n++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d at %d: %v", topic, p, n, err)
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out, ends
}

// progress is how far the compactor (lake checkpoints) and the speed layer
// (its stored offsets) have got, per partition.
type progress struct{ compact, speed map[int]int64 }

func readProgress(t *testing.T, store lake.Store, rdb *redis.Client, group string, s *schemas.Schema, v *schemas.View) progress {
	t.Helper()
	ctx := context.Background()
	cps, err := raw.ReadCheckpoints(ctx, store, group, s.Topic)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := speed.StoredOffsets(ctx, rdb, v)
	if err != nil {
		t.Fatal(err)
	}
	pr := progress{compact: map[int]int64{}, speed: map[int]int64{}}
	for p := range 4 {
		pr.compact[p] = cps[int32(p)].NextOffset
		pr.speed[p] = offs[p]
	}
	return pr
}

// waitWorkInFlight waits until the running process has moved both the
// compactor's checkpoints and the speed layer's offsets since the call,
// and Kafka holds records one of them has not finished; it says what was
// in flight.
func waitWorkInFlight(t *testing.T, store lake.Store, rdb *redis.Client, brokers []string, group string, s *schemas.Schema, v *schemas.View) string {
	t.Helper()
	start := readProgress(t, store, rdb, group, s, v)
	deadline := time.Now().Add(90 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		now := readProgress(t, store, rdb, group, s, v)
		ends := topicEnds(t, brokers, s.Topic)
		var moved [2]bool
		var pendingCompact, pendingSpeed int64
		for p, end := range ends {
			moved[0] = moved[0] || now.compact[p] > start.compact[p]
			moved[1] = moved[1] || now.speed[p] > start.speed[p]
			pendingCompact += end - now.compact[p]
			pendingSpeed += end - now.speed[p]
		}
		if moved[0] && moved[1] && (pendingCompact > 0 || pendingSpeed > 0) {
			return fmt.Sprintf("%d records not yet checkpointed by the compactor and %d not yet applied by the speed layer", pendingCompact, pendingSpeed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no work in flight within 90s: compactor moved %v, speed moved %v, pending %d/%d", moved[0], moved[1], pendingCompact, pendingSpeed)
		}
	}
}

// topicEnds returns each partition's end offset.
func topicEnds(t *testing.T, brokers []string, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends := map[int]int64{}
	for p := range 4 {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		ends[p], err = conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return ends
}

// waitCaughtUp waits until the compactor's checkpoints and the speed
// layer's offsets reach the topic's end and recompute has taken every
// dirty hour, then for one more recompute run to finish, so B reflects
// the last checkpoint.
func waitCaughtUp(t *testing.T, store lake.Store, rdb *redis.Client, group, jobsNamespace string, s *schemas.Schema, v *schemas.View, ends map[int]int64) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var behind []string
		pr := readProgress(t, store, rdb, group, s, v)
		for p, end := range ends {
			if pr.compact[p] < end {
				behind = append(behind, fmt.Sprintf("compact p%d at %d of %d", p, pr.compact[p], end))
			}
			if pr.speed[p] != end {
				behind = append(behind, fmt.Sprintf("speed p%d at %d of %d", p, pr.speed[p], end))
			}
		}
		dirty, err := store.List(ctx, lake.DirtyPrefix(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		if len(dirty) > 0 {
			behind = append(behind, fmt.Sprintf("%d dirty hours", len(dirty)))
		}
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up after 3 minutes: %v", behind)
		}
		time.Sleep(time.Second)
	}
	caughtUp := time.Now().UTC()
	for {
		runs, err := jobs.History(ctx, rdb, jobsNamespace, 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Job == jobs.JobRecompute && r.Start.After(caughtUp) && !r.End.IsZero() {
				if r.Outcome != jobs.OutcomeOK {
					t.Fatalf("the recompute run after catching up ended %s: %s", r.Outcome, r.Error)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recompute run started after %s finished within 3 minutes", caughtUp.Format(time.RFC3339))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
