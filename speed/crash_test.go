package speed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

const crashConfig = `kafka:
  brokers: [%s]
redis:
  addrs: [%s]
speed:
  group: %s
  session_timeout: 6s
  metrics_addr: ""
schemas:
  orders:
    topic: %s
    time: ts
    id: order_id
    fields:
      order_id: string
      ts: timestamp
      tenant: string
      country: string
      user_id: string
      amount: float64
      qty: int64
      coupon: {type: string, optional: true}
views:
  %s:
    schema: orders
    granularity: 1m
    dimensions: [tenant, country]
    metrics:
      orders: {agg: count}
      revenue: {agg: sum, field: amount}
      biggest: {agg: max, field: amount}
      smallest: {agg: min, field: amount}
      buyers: {agg: uniq, field: user_id}
      qty: {agg: sum, field: qty}
      qty_min: {agg: min, field: qty}
      qty_max: {agg: max, field: qty}
    hot_retention: 2h
    lateness: 5m
`

// worker is a `lambdalake speed` subprocess.
type workerProc struct {
	cmd *exec.Cmd
	log string
}

func startProc(t *testing.T, args ...string) *workerProc {
	t.Helper()
	log := filepath.Join(t.TempDir(), "worker.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &workerProc{cmd: cmd, log: log}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

func (p *workerProc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// stop sends SIGTERM (graceful: flush, leave the group) and wants exit 0.
func (p *workerProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker exited with %v after SIGTERM; log:\n%s", err, p.tail())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("worker still running 30s after SIGTERM; log:\n%s", p.tail())
	}
}

func sumOffsets(m map[int]int64) int64 {
	var n int64
	for _, o := range m {
		n += o
	}
	return n
}

// The worker is killed with SIGKILL three times while it applies a stream
// of 200k events and restarted each time; the figures must still equal the
// reference exactly (no loss, no double count). Then the view's Redis state
// is wiped and `speed rebuild` must restore the same figures from Kafka.
func TestCrashSafetyAndRebuild(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 4)
	s := testSchema(t, topic)
	v := testView(viewName("crash"), s, time.Minute, []string{"tenant", "country"})
	cfgPath := testenv.WriteConfig(t, fmt.Sprintf(crashConfig, strings.Join(brokers, ", "), testenv.RedisAddr(t),
		testenv.Name("speed-crash"), topic, v.Name))

	now := time.Now().UTC()
	// Produce about 8k events/s while the worker runs and dies, and keep
	// producing until the three kills are done and at least 200k events are
	// out: a restarted worker first waits out the dead one's session, so
	// with a fixed stream the kills could miss the run on a busy machine.
	all := genEvents(t, s, 600_000, now.Add(-50*time.Minute), now, 21,
		gen.Config{OutOfOrder: 0.1, MaxDelay: 10 * time.Minute, Duplicates: 0.03, Malformed: 0.01})
	killsDone := make(chan struct{})
	produced := make(chan int, 1) // how many of all were sent
	go func() {
		w := stream.NewWriter(brokers, topic)
		defer w.Close()
		const batch = 2000
		n := 0
		defer func() { produced <- n }()
		final := false
		for n < len(all) && !final {
			if n >= 200000 {
				select {
				case <-killsDone:
					final = true // one more batch, so the last restart has work left
				default:
				}
			}
			msgs := make([]kafka.Message, 0, batch)
			for _, e := range all[n:min(n+batch, len(all))] {
				msgs = append(msgs, kafka.Message{Value: e.Value})
			}
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			n += len(msgs)
			time.Sleep(250 * time.Millisecond)
		}
	}()

	var last int64
	for kill := 1; kill <= 3; kill++ {
		p := startProc(t, "speed", "--config", cfgPath)
		// Kill only once this process is applying flushes.
		deadline := time.Now().Add(60 * time.Second)
		for sumOffsets(storedOffsets(t, rdb, v, 4)) < last+3000 {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no progress within 60s; log:\n%s", kill, p.tail())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		p.cmd.Process.Kill()
		p.cmd.Wait()
		last = sumOffsets(storedOffsets(t, rdb, v, 4))
		t.Logf("kill -9 #%d with %d records applied", kill, last)
	}
	close(killsDone)
	events := all[:<-produced]
	ref := buildReference(t, v, events, func(int64) bool { return true })
	t.Logf("%d events produced", len(events))
	end := testenv.EndOffsets(t, brokers, topic)
	if last >= sumOffsets(end) {
		t.Fatalf("all %d records were applied before the last kill; the kills must interrupt the run", last)
	}
	p := startProc(t, "speed", "--config", cfgPath)
	waitApplied(t, rdb, []*schemas.View{v}, end, 120*time.Second)
	p.stop(t)
	ref.checkAgainst(t, v, queryAll(t, rdb, v, now.Add(-2*time.Hour), now.Add(time.Hour)), cellUniqTol)
	if t.Failed() {
		return
	}

	t.Run("rebuild after Redis loses the view", func(t *testing.T) {
		ctx := context.Background()
		keys, err := scanKeys(ctx, rdb, "ll:{"+v.Name+"}:*")
		if err != nil || len(keys) == 0 {
			t.Fatalf("keys of %s: %d, %v", v.Name, len(keys), err)
		}
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
		if res := queryAll(t, rdb, v, now.Add(-2*time.Hour), now.Add(time.Hour)); len(res.Rows) != 0 || len(res.Buckets) != 0 {
			t.Fatalf("after deleting the keys: %d rows, %d buckets", len(res.Rows), len(res.Buckets))
		}
		p := startProc(t, "speed", "rebuild", "--view", v.Name, "--config", cfgPath)
		waitApplied(t, rdb, []*schemas.View{v}, end, 120*time.Second)
		p.stop(t)
		ref.checkAgainst(t, v, queryAll(t, rdb, v, now.Add(-2*time.Hour), now.Add(time.Hour)), cellUniqTol)
		checkTTLs(t, rdb, v)
	})
}

// rebuild while Redis still holds the view must not double count: Reset
// clears the cells before replaying.
func TestResetReplacesState(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := testenv.RedisClient(t)
	topic := testenv.Topic(t, brokers, 2)
	s := testSchema(t, topic)
	v := testView(viewName("reset"), s, time.Minute, []string{"tenant"})
	now := time.Now().UTC()
	events := genEvents(t, s, 20000, now.Add(-30*time.Minute), now, 8, gen.Config{Duplicates: 0.02, Malformed: 0.01})
	testenv.Produce(t, brokers, topic, events)
	end := testenv.EndOffsets(t, brokers, topic)
	_, stop := startWorker(t, Config{Brokers: brokers, Group: testenv.Name("speed"), Views: []*schemas.View{v}, Redis: rdb})
	waitApplied(t, rdb, []*schemas.View{v}, end, 90*time.Second)

	// Reset under a running worker: it must notice the offsets moved,
	// re-seek and replay into the cleared view.
	offs, err := Reset(context.Background(), ResetConfig{Brokers: brokers, Redis: rdb, View: v})
	if err != nil {
		t.Fatal(err)
	}
	for p, o := range offs {
		if o != 0 {
			t.Errorf("partition %d reset to %d, want 0 (every record is within hot_retention)", p, o)
		}
	}
	waitApplied(t, rdb, []*schemas.View{v}, end, 90*time.Second)
	stop()
	ref := buildReference(t, v, events, func(int64) bool { return true })
	ref.checkAgainst(t, v, queryAll(t, rdb, v, now.Add(-time.Hour), now.Add(time.Hour)), cellUniqTol)
	if fp, _ := rdb.HGet(context.Background(), Shards(v)[0].OffsetsKey(), fingerprintField).Result(); fp != v.Fingerprint() {
		t.Errorf("fingerprint after reset = %q, want %q", fp, v.Fingerprint())
	}
}
