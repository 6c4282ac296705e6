package jobs

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// The tests that touch Redis run over both set-ups of the local stack
// (testenv.RedisSetups): the job keys' hash tag keeps every lock script in
// one Cluster slot.

func redisClient(t *testing.T, rs testenv.RedisSetup) redis.UniversalClient {
	t.Helper()
	return rs.Client(t)
}

func newRunner(t *testing.T, rs testenv.RedisSetup, ns, id string, lease time.Duration, jobs ...Job) *Runner {
	t.Helper()
	r, err := New(Config{Redis: redisClient(t, rs), Namespace: ns, RunnerID: id, Lease: lease, Jobs: jobs,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type span struct {
	runner     string
	slot       time.Time
	start, end time.Time
}

type recorder struct {
	mu    sync.Mutex
	spans []span
}

func (rec *recorder) job(name, schedule string, work time.Duration) Job {
	return Job{Name: name, Schedule: schedule, Run: func(ctx context.Context, run *Run) error {
		s := span{runner: run.Runner, slot: run.Slot, start: time.Now()}
		select {
		case <-time.After(work):
		case <-ctx.Done():
		}
		s.end = time.Now()
		run.Done(1)
		rec.mu.Lock()
		rec.spans = append(rec.spans, s)
		rec.mu.Unlock()
		return nil
	}}
}

// Two runners on a one-second schedule for 30 s: every slot runs once, no
// run overlaps another, and no more than one period passes unrun.
func TestTwoRunnersRunEachSlotOnce(t *testing.T) {
	t.Parallel()
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			t.Parallel()
			ns := testenv.Name("jobs")
			rec := &recorder{}
			job := rec.job("tick", "* * * * * *", 300*time.Millisecond)
			a := newRunner(t, rs, ns, "runner-a", 5*time.Second, job)
			b := newRunner(t, rs, ns, "runner-b", 5*time.Second, job)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for _, r := range []*Runner{a, b} {
				wg.Add(1)
				go func() { defer wg.Done(); r.Run(ctx) }()
			}
			wg.Wait()

			spans := rec.spans
			sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
			if len(spans) < 25 {
				t.Fatalf("%d runs in 30 s of a one-second schedule", len(spans))
			}
			runners := map[string]int{}
			for i, s := range spans {
				runners[s.runner]++
				if i == 0 {
					continue
				}
				prev := spans[i-1]
				if !s.slot.After(prev.slot) {
					t.Errorf("slot %v ran again (or out of order) after %v", s.slot, prev.slot)
				}
				if s.start.Before(prev.end) {
					t.Errorf("run %d by %s started at %v before run %d by %s ended at %v",
						i, s.runner, s.start, i-1, prev.runner, prev.end)
				}
				if gap := s.slot.Sub(prev.slot); gap > 2*time.Second {
					t.Errorf("%v between slots %v and %v: more than one period skipped", gap, prev.slot, s.slot)
				}
			}
			hist, err := History(context.Background(), redisClient(t, rs), ns, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != len(spans) {
				t.Errorf("history holds %d runs, the job ran %d times", len(hist), len(spans))
			}
			for _, h := range hist {
				if h.Outcome != OutcomeOK || h.Items != 1 || h.Job != "tick" {
					t.Errorf("history record %+v", h)
				}
			}
			t.Logf("runs by runner: %v", runners)
		})
	}
}

func TestSlotRunsOnceEvenAfterRelease(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			rdb := redisClient(t, rs)
			k := keys{ns: testenv.Name("jobs")}
			ctx := context.Background()
			slot := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			l, err := acquire(ctx, rdb, k, "merge", "merge", "a", time.Second, slot)
			if err != nil {
				t.Fatal(err)
			}
			var na *errNotAcquired
			if _, err := acquire(ctx, rdb, k, "merge", "merge", "b", time.Second, slot.Add(time.Minute)); !errors.As(err, &na) || na.reason != "busy" {
				t.Errorf("acquire while held = %v, want busy", err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := acquire(ctx, rdb, k, "merge", "merge", "b", time.Second, slot); !errors.As(err, &na) || na.reason != "done" {
				t.Errorf("acquire of a slot that ran = %v, want done", err)
			}
			l2, err := acquire(ctx, rdb, k, "merge", "merge", "b", time.Second, slot.Add(time.Minute))
			if err != nil {
				t.Fatalf("acquire of the next slot: %v", err)
			}
			if l2.Token() <= l.Token() {
				t.Errorf("fencing token %d not above %d", l2.Token(), l.Token())
			}
			l2.Release(ctx)
		})
	}
}

// A runner whose lock is taken from it (it expired while the runner was
// stalled, and another runner took it) has its job cancelled and records
// lost_lease; Check fails from then on.
func TestLostLeaseCancelsTheJob(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			ns := testenv.Name("jobs")
			rdb := redisClient(t, rs)
			started := make(chan *Run, 1)
			job := Job{Name: "recompute", Run: func(ctx context.Context, run *Run) error {
				started <- run
				<-ctx.Done()
				return run.Lease.Check(context.Background())
			}}
			r := newRunner(t, rs, ns, "a", 900*time.Millisecond, job)
			done := make(chan Record, 1)
			go func() { rec, _ := r.RunNow(context.Background(), "recompute"); done <- rec }()
			run := <-started
			// Another runner now holds the lock.
			rdb.Set(context.Background(), keys{ns: ns}.lock("recompute"), "b:999", time.Minute)
			select {
			case rec := <-done:
				if rec.Outcome != OutcomeLostLease || !strings.Contains(rec.Error, "lease lost") {
					t.Errorf("record %+v, want outcome lost_lease", rec)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("job not cancelled after losing its lease")
			}
			if err := run.Lease.Check(context.Background()); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("Check after loss = %v", err)
			}
			if v, _ := rdb.Get(context.Background(), keys{ns: ns}.lock("recompute")).Result(); v != "b:999" {
				t.Errorf("the loser released the winner's lock: %q", v)
			}
		})
	}
}

// A runner that died holding the lock (no renewals, no release) blocks the
// job only until its lease expires; then the next slot runs elsewhere.
func TestDeadRunnerIsTakenOverAfterLease(t *testing.T) {
	t.Parallel()
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			t.Parallel()
			ns := testenv.Name("jobs")
			rdb := redisClient(t, rs)
			k := keys{ns: ns}
			rdb.Set(context.Background(), k.lock("recompute"), "dead:1", 3*time.Second)
			diedAt := time.Now()
			ran := make(chan time.Time, 10)
			job := Job{Name: "recompute", Schedule: "* * * * * *", Run: func(ctx context.Context, run *Run) error {
				ran <- time.Now()
				return nil
			}}
			r := newRunner(t, rs, ns, "alive", 3*time.Second, job)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go r.Run(ctx)
			select {
			case at := <-ran:
				if at.Sub(diedAt) < 2500*time.Millisecond {
					t.Errorf("ran %v after the dead runner took the lock, before its 3 s lease expired", at.Sub(diedAt))
				}
			case <-ctx.Done():
				t.Fatal("the job was never taken over")
			}
		})
	}
}

func TestRunNowWaitsForTheLock(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			ns := testenv.Name("jobs")
			rdb := redisClient(t, rs)
			lock := keys{ns: ns}.lock("backfill")
			const held = 1500 * time.Millisecond
			taken := time.Now()
			rdb.Set(context.Background(), lock, "other:1", held)
			n := 0
			var started time.Time
			var holder string // the lock's value when the run started
			r := newRunner(t, rs, ns, "a", 2*time.Second, Job{Name: "backfill", Run: func(ctx context.Context, run *Run) error {
				n++
				started = time.Now()
				holder, _ = rdb.Get(ctx, lock).Result()
				run.Done(24)
				return nil
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rec, err := r.RunNow(ctx, "backfill")
			if err != nil || n != 1 || rec.Items != 24 || rec.Outcome != OutcomeOK || !rec.Slot.IsZero() {
				t.Fatalf("RunNow = %+v, %v (ran %d times)", rec, err, n)
			}
			// The other runner's lock expires held after it was set (Redis' clock
			// counts in ms, hence the 50 ms); the run may only start after that,
			// holding the lock itself.
			if waited := started.Sub(taken); waited < held-50*time.Millisecond || holder == "other:1" || !strings.HasPrefix(holder, "a:") {
				t.Errorf("the run started %v after the other runner took the lock for %v, with the lock held by %q: it did not wait for the release",
					waited, held, holder)
			}
			if _, err := r.RunNow(ctx, "nope"); err == nil {
				t.Error("RunNow of an unknown job succeeded")
			}
		})
	}
}

func TestFailedRunIsRecorded(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			ns := testenv.Name("jobs")
			r := newRunner(t, rs, ns, "a", time.Second, Job{Name: "merge", Run: func(ctx context.Context, run *Run) error {
				run.Done(2)
				return errors.New("s3 down")
			}})
			if _, err := r.RunNow(context.Background(), "merge"); err == nil {
				t.Fatal("a failing job returned no error")
			}
			hist, err := History(context.Background(), redisClient(t, rs), ns, 10)
			if err != nil || len(hist) != 1 {
				t.Fatalf("history = %v, %v", hist, err)
			}
			if h := hist[0]; h.Outcome != OutcomeFailed || h.Error != "s3 down" || h.Items != 2 || h.Runner != "a" {
				t.Errorf("record = %+v", h)
			}
		})
	}
}

func TestBadScheduleNamesTheJob(t *testing.T) {
	_, err := New(Config{Redis: redis.NewClient(&redis.Options{}), Registerer: prometheus.NewRegistry(),
		Jobs: []Job{{Name: "retention", Schedule: "every hour", Run: func(context.Context, *Run) error { return nil }}}})
	if err == nil || !strings.Contains(err.Error(), `job "retention"`) || !strings.Contains(err.Error(), "every hour") {
		t.Fatalf("New = %v, want an error naming the job and the expression", err)
	}
}
