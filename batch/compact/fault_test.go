package compact_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// produceInBackground produces while the test goes on; wait returns the
// traffic once every event is acknowledged.
func produceInBackground(t *testing.T, brokers []string, s *schemas.Schema, count int64, rate float64, seed uint64) (wait func() traffic) {
	t.Helper()
	done := make(chan traffic, 1)
	go func() { done <- produce(context.Background(), t, brokers, s, count, rate, seed) }()
	return func() traffic { return <-done }
}

// progress is the sum of the partitions' checkpointed offsets.
func progress(t *testing.T, store lake.Store, group, topic string) int64 {
	t.Helper()
	cps, err := raw.ReadCheckpoints(context.Background(), store, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, cp := range cps {
		sum += cp.NextOffset
	}
	return sum
}

func waitProgress(t *testing.T, store lake.Store, group, topic string, above int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p := progress(t, store, group, topic); p > above {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("no compaction progress beyond %d in %v", above, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const subprocessConfig = `kafka:
  brokers: [%s]
lake:
  url: %s
  s3:
    endpoint: %s
    region: us-east-1
    path_style: true
    access_key_id: test
    secret_access_key: test
compact:
  group: %s
  budget: 16MiB
  max_file_rows: 2000
  max_file_age: 1s
  session_timeout: 6s
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
      amount: decimal(18,2)
      coupon: {type: string, optional: true}
views:
  revenue:
    schema: orders
    granularity: 1m
    dimensions: [tenant]
    metrics:
      orders: {agg: count}
    lateness: 5m
`

// The compactor is killed with SIGKILL three times while it consumes a
// topic that is still being written, each time after it has made progress.
// The first and the third kill land between a flush's uploads and its
// checkpoint: the test holds the compactor there by failing its checkpoint
// writes until a raw file lies beyond its partition's checkpoint. The
// second kill lands at a random moment. Restarted, the compactor resumes
// from the lake checkpoints; the lake ends exact, and the overlaps the
// crashes left are read once.
func TestCompactCrashSafety(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	store, url := testenv.S3Lake(t)
	topic := testenv.Topic(t, brokers, partitions)
	s := ordersOn(t, topic)
	bin := testenv.Binary(t)
	group := testenv.Name("compact")
	gate := newCheckpointGate(t, testenv.S3Endpoint(t))
	cfgPath := testenv.WriteConfig(t, fmt.Sprintf(subprocessConfig, strings.Join(brokers, ", "), url, gate.URL(), group, topic))
	logPath := filepath.Join(t.TempDir(), "compact.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "compact", "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.Env = append(os.Environ(), "LAMBDALAKE_LOG_LEVEL=info")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("compactor log (tail):\n%s", tail(string(b), 4000))
		}
	}()

	// 120k events at 2500/s: production outlasts the three kill cycles
	// (each waits out the dead member's 6 s session).
	const total = 120_000
	wait := produceInBackground(t, brokers, s, total, 2500, 11)
	var done int64
	inWindow := 0 // kills that left a file beyond its partition's checkpoint
	for kill := 1; kill <= 3; kill++ {
		cmd := start()
		// This run must itself have stored something before it dies.
		waitProgress(t, store, group, topic, done, 90*time.Second)
		window := kill != 2
		if window {
			gate.Close()
			waitBeyondCheckpoint(t, store, s.Name, group, topic, 30*time.Second)
		} else {
			time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		gate.Open()
		// Dead, it left files beyond a checkpoint if some raw file holds
		// offsets its partition's checkpoint does not cover.
		left := beyondCheckpoint(t, store, s.Name, group, topic)
		if left {
			inWindow++
		}
		done = progress(t, store, group, topic)
		t.Logf("kill -9 #%d at checkpoint progress %d (held between upload and checkpoint: %v; files beyond a checkpoint: %v)", kill, done, window, left)
		if window && !left {
			t.Errorf("kill #%d: no file beyond its checkpoint, though the checkpoints were held back", kill)
		}
		if done >= total {
			t.Errorf("kill #%d came after everything was compacted, not mid-run", kill)
		}
	}
	tr := wait()
	t.Logf("produced %v", tr.counts)
	end := endOffsets(t, brokers, topic)
	ref := readBack(t, brokers, s, end)

	cmd := start()
	waitCompacted(t, store, group, topic, end, 2*time.Minute)
	// The last run stops gracefully: SIGTERM flushes and exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("compactor after SIGTERM: %v", err)
	}
	rep := verifyLake(t, store, s, ref)
	for h, want := range tr.hours {
		if got := rep.hours[h]; got != want {
			t.Errorf("hour %v: lake %+v, generator %+v", h, got, want)
		}
	}
	// A file left beyond its checkpoint is overlapped by the restart's
	// files: the lake must hold overlaps, which readers dropped above.
	if inWindow == 0 || rep.redundant+rep.dropped == 0 {
		t.Errorf("%d kills left files beyond their checkpoint; the lake has %d redundant files and %d overlapping offsets: want both above zero",
			inWindow, rep.redundant, rep.dropped)
	}
}

// checkpointGate is a reverse proxy to S3 that can refuse checkpoint
// writes: while it is closed, the compactor behind it uploads its files
// but cannot write their checkpoint, so it stays in the window a crash
// must survive.
type checkpointGate struct {
	srv    *httptest.Server
	closed atomic.Bool
}

func newCheckpointGate(t *testing.T, endpoint string) *checkpointGate {
	t.Helper()
	target, err := neturl.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	g := &checkpointGate{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.closed.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/_checkpoints/") {
			http.Error(w, "checkpoint writes held by the test", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *checkpointGate) URL() string { return g.srv.URL }
func (g *checkpointGate) Close()      { g.closed.Store(true) }
func (g *checkpointGate) Open()       { g.closed.Store(false) }

// beyondCheckpoint reports whether some raw file holds offsets beyond its
// partition's checkpoint. Files are listed first: a file beyond a
// checkpoint read later is beyond the latest one.
func beyondCheckpoint(t *testing.T, store lake.Store, schema, group, topic string) bool {
	t.Helper()
	ctx := context.Background()
	objs, err := store.List(ctx, lake.RawPrefix(schema))
	if err != nil {
		t.Fatal(err)
	}
	cps, err := raw.ReadCheckpoints(ctx, store, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if f, err := lake.ParseRawKey(o.Key); err == nil && f.Last >= cps[f.Partition].NextOffset {
			return true
		}
	}
	return false
}

// waitBeyondCheckpoint waits until some raw file holds offsets beyond its
// partition's checkpoint.
func waitBeyondCheckpoint(t *testing.T, store lake.Store, schema, group, topic string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !beyondCheckpoint(t, store, schema, group, topic) {
		if time.Now().After(deadline) {
			t.Fatalf("no raw file beyond its checkpoint in %v while checkpoint writes were refused", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// S3 goes away for 25 s while the compactor runs and events keep coming:
// no checkpoint moves, the budget fills and consumption waits instead of
// growing memory, and once S3 is back the lake ends exact.
func TestCompactS3Outage(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	direct, url := testenv.S3Lake(t)
	topic := testenv.Topic(t, brokers, partitions)
	s := ordersOn(t, topic)
	s3cfg := testenv.S3Config(t)
	// LocalStack's S3 keeps objects in memory only, so stopping it would
	// lose this test's lake and every other test's: the outage is a cut
	// between the compactor and S3 instead.
	proxy := testenv.NewCutProxy(t, strings.TrimPrefix(s3cfg.Endpoint, "http://"))
	s3cfg.Endpoint = "http://" + proxy.Addr()
	s3cfg.MaxAttempts = 2
	proxied, err := lake.Open(context.Background(), lake.Config{URL: url, S3: s3cfg})
	if err != nil {
		t.Fatal(err)
	}

	const budget = 16 << 20
	reg := prometheus.NewRegistry()
	group := testenv.Name("compact")
	wait := produceInBackground(t, brokers, s, 200_000, 8000, 13)
	// Files large and slow to age, so the budget, not the file limits,
	// is what forces flushes and what stops consumption during the outage.
	stop := runCompactor(t, compact.Config{Brokers: brokers, Group: group, Store: proxied,
		Schemas: []*schemas.Schema{s}, Lateness: map[string]time.Duration{s.Name: 5 * time.Minute},
		Budget: budget, MaxFileRows: 1_000_000, MaxFileAge: 10 * time.Second, SessionTimeout: 6 * time.Second, Registerer: reg})
	waitProgress(t, direct, group, topic, 0, time.Minute)
	time.Sleep(time.Second)

	proxy.Cut()
	t.Log("S3 cut")
	time.Sleep(time.Second) // a write already past the proxy may still land
	before, err := raw.ReadCheckpoints(context.Background(), direct, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	var peak float64
	for range 25 {
		time.Sleep(time.Second)
		now, err := raw.ReadCheckpoints(context.Background(), direct, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		for p, cp := range now {
			if cp.NextOffset != before[p].NextOffset {
				t.Errorf("partition %d checkpoint moved during the outage: %d → %d", p, before[p].NextOffset, cp.NextOffset)
			}
		}
		peak = max(peak, gauge(t, reg, "lambdalake_compact_memory_bytes"))
	}
	// One record per partition may be read past the budget before the
	// partition notices and waits.
	if peak > budget+1<<20 {
		t.Errorf("held %.0f bytes during the outage, budget %d", peak, budget)
	}
	if peak < budget/2 {
		t.Errorf("held only %.0f bytes during a 25 s outage at 8000 events/s; expected the budget to fill", peak)
	}
	proxy.Restore()
	t.Logf("S3 restored; peak memory held %.1f MiB of %d MiB", peak/(1<<20), budget>>20)

	tr := wait()
	end := endOffsets(t, brokers, topic)
	ref := readBack(t, brokers, s, end)
	waitCompacted(t, direct, group, topic, end, 2*time.Minute)
	stop()
	rep := verifyLake(t, direct, s, ref)
	for h, want := range tr.hours {
		if got := rep.hours[h]; got != want {
			t.Errorf("hour %v: lake %+v, generator %+v", h, got, want)
		}
	}
}
