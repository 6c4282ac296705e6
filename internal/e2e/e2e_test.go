package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
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

// The acceptance test: `lambdalake all` on the real stack, six hours of
// history and live traffic with out-of-order, duplicate and malformed
// events, the process killed with SIGKILL twice and restarted. Then,
// through the HTTP API: every bucket before B equals the exact reference
// (de-duplicated by id), every bucket from B on equals the speed reference
// (what arrived, duplicates included), there are no gaps, and the
// dead-letter area holds every malformed record.
func TestAllOnTheRealStack(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	redisAddr := testenv.RedisAddr(t)
	store, lakeURL := testenv.S3Lake(t)
	bin := testenv.Binary(t)
	ctx := context.Background()

	// Fresh names for everything shared with other tests.
	id := strings.ReplaceAll(testenv.Name("e2e"), "-", "_")
	view := "rev_" + id
	httpAddr := freePort(t)
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
	for i := range 2 {
		time.Sleep(12 * time.Second)
		all.Process.Signal(syscall.SIGKILL)
		<-exited
		t.Logf("killed lambdalake all (%d)", i+1)
		startAll()
	}
	if err := live.Wait(); err != nil {
		t.Fatalf("live gen: %v\n%s", err, liveOut.String())
	}

	// What Kafka holds is the truth the answers must match.
	records, ends := readTopic(t, brokers, s.Topic)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	waitCaughtUp(t, store, rdb, cfg.Compact.Group, s, v, ends)

	dec := schemas.NewDecoder(s)
	batchRef, speedRef := map[key]*figures{}, map[key]*figures{}
	malformed := map[[2]int64]bool{}
	seenID := map[string]bool{}
	ti, ii, tn, co, us, am := s.TimeIndex(), s.FieldIndex(s.ID), s.FieldIndex("tenant"), s.FieldIndex("country"), s.FieldIndex("user_id"), s.FieldIndex("amount")
	var row schemas.Row
	for _, m := range records {
		if err := dec.Decode(m.Value, &row); err != nil {
			malformed[[2]int64{int64(m.Partition), m.Offset}] = true
			continue
		}
		k := key{v.Bucket(row.Values[ti].Int), row.Values[tn].Str, row.Values[co].Str}
		get := func(m map[key]*figures) *figures {
			if m[k] == nil {
				m[k] = &figures{}
			}
			return m[k]
		}
		get(speedRef).add(row.Values[am].Float, row.Values[us].Str)
		if id := row.Values[ii].Str; !seenID[id] {
			seenID[id] = true
			get(batchRef).add(row.Values[am].Float, row.Values[us].Str)
		}
	}

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
		ref, exact := batchRef[k], true
		if !tm.Before(b) {
			ref, exact = speedRef[k], false
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
	for k := range speedRef {
		if !time.UnixMicro(k.t).Before(b) && time.UnixMicro(k.t).Before(to) && !got[k] {
			t.Errorf("speed cell %v missing from the answer", k)
		}
	}
	if batchRows == 0 || speedRows == 0 {
		t.Errorf("answer has %d batch and %d speed rows: both layers must serve", batchRows, speedRows)
	}

	dead, err := raw.ReadDeadLetters(ctx, store, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		if d.Error == "" {
			t.Errorf("dead letter %d/%d has no reason", d.Partition, d.Offset)
		}
		delete(malformed, [2]int64{int64(d.Partition), d.Offset})
	}
	if len(malformed) != 0 || len(dead) == 0 {
		t.Errorf("%d malformed records missing from the dead-letter area (%d there)", len(malformed), len(dead))
	}
	t.Logf("%d records, boundary %v, %d batch rows and %d speed rows checked, %d dead letters", len(records), b, batchRows, speedRows, len(dead))
}

func checkRow(t *testing.T, k key, r map[string]any, ref *figures, exact bool) {
	t.Helper()
	num := func(name string) float64 { f, _ := r[name].(float64); return f }
	users := float64(len(ref.users))
	uniqOK := num("buyers") == users
	if !exact { // an HLL per speed cell: Redis' sparse encoding is near exact at these sizes
		uniqOK = math.Abs(num("buyers")-users) <= math.Max(1, 0.02*users)
	}
	if int64(num("orders")) != ref.count || num("smallest") != ref.min || num("biggest") != ref.max || !uniqOK ||
		math.Abs(num("revenue")-ref.sum) > 1e-9*math.Max(1, math.Abs(ref.sum)) {
		src := "speed"
		if exact {
			src = "batch"
		}
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
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
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

// waitCaughtUp waits until the compactor's checkpoints and the speed
// layer's offsets reach the topic's end, and recompute has taken every
// dirty hour.
func waitCaughtUp(t *testing.T, store lake.Store, rdb *redis.Client, group string, s *schemas.Schema, v *schemas.View, ends map[int]int64) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var behind []string
		cps, err := raw.ReadCheckpoints(ctx, store, group, s.Topic)
		if err != nil {
			t.Fatal(err)
		}
		offs, err := rdb.HGetAll(ctx, speed.OffsetsKey(v.Name)).Result()
		if err != nil {
			t.Fatal(err)
		}
		for p, end := range ends {
			if cps[int32(p)].NextOffset < end {
				behind = append(behind, fmt.Sprintf("compact p%d at %d of %d", p, cps[int32(p)].NextOffset, end))
			}
			if got := offs[fmt.Sprintf("%s:%d", s.Topic, p)]; got != fmt.Sprint(end) {
				behind = append(behind, fmt.Sprintf("speed p%d at %s of %d", p, got, end))
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
			// One more recompute period, so B reflects the last checkpoint.
			time.Sleep(4 * time.Second)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up after 3 minutes: %v", behind)
		}
		time.Sleep(time.Second)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
