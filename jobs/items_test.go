package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// Item leases on real Redis, single and Cluster: an item is held by one
// runner at a time, tokens grow, an exclusive run of the job's lock refuses
// new items and waits for those in flight, a dead holder's item is free
// once its lease expires, a lease taken away is reported lost, and the
// work done under a lease is recorded.
func TestItemLeases(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redisClient(t, rs)
			k := keys{ns: testenv.Name("jobs")}
			leaser := func(runner string, ttl time.Duration) *ItemLeaser {
				return &ItemLeaser{rdb: rdb, k: k, job: "recompute", runner: runner, ttl: ttl, history: 100}
			}
			a, b := leaser("a", 3*time.Second), leaser("b", 3*time.Second)
			try := func(il *ItemLeaser, item string, want bool) *ItemLease {
				t.Helper()
				l, ok, err := il.Try(ctx, "v", item)
				if err != nil || ok != want {
					t.Fatalf("%s takes %s: ok=%v (%v), want %v", il.runner, item, ok, err, want)
				}
				return l
			}

			la := try(a, "h1", true)
			try(b, "h1", false)
			lb2 := try(b, "h2", true)
			if lb2.Token() <= la.Token() {
				t.Errorf("token %d not above %d", lb2.Token(), la.Token())
			}
			if err := la.Done(ctx, true, nil); err != nil {
				t.Fatal(err)
			}
			lb1 := try(b, "h1", true)
			if lb1.Token() <= lb2.Token() {
				t.Errorf("token %d not above %d", lb1.Token(), lb2.Token())
			}
			if err := lb2.Done(ctx, false, nil); err != nil { // nothing done: no record
				t.Fatal(err)
			}

			// An exclusive run of the lock: new items refused, the one in
			// flight (b's h1) waited for.
			ex, err := acquire(ctx, rdb, k, "recompute", "backfill", "c", 3*time.Second, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			try(a, "h3", false)
			drained := make(chan error, 1)
			go func() { drained <- drain(ctx, rdb, k, "recompute", ex) }()
			select {
			case err := <-drained:
				t.Fatalf("drain returned (%v) while b holds h1", err)
			case <-time.After(500 * time.Millisecond):
			}
			if err := lb1.Done(ctx, true, errors.New("s3 down")); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-drained:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("drain still waiting after the last item was released")
			}
			if err := ex.Release(ctx); err != nil {
				t.Fatal(err)
			}

			// A holder that dies (no renewal, no release): its item is free
			// once the lease expires, and drain no longer counts it.
			short := leaser("dying", time.Second)
			ld := try(short, "h4", true)
			close(ld.stop)
			<-ld.done
			diedAt := time.Now()
			try(b, "h4", false)
			var lb4 *ItemLease
			for lb4 == nil {
				l, ok, err := b.Try(ctx, "v", "h4")
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					lb4 = l
					break
				}
				if time.Since(diedAt) > 5*time.Second {
					t.Fatal("a dead holder's item never became free")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if d := time.Since(diedAt); d < 900*time.Millisecond {
				t.Errorf("h4 taken %v after its holder died, before its 1 s lease expired", d)
			}
			if err := lb4.Done(ctx, false, nil); err != nil {
				t.Fatal(err)
			}
			if n, err := heldScript.Run(ctx, rdb, []string{k.held("recompute")}).Int(); err != nil || n != 0 {
				t.Errorf("held items after every release and expiry: %d (%v), want 0", n, err)
			}

			// A lease taken away is lost.
			ll := try(a, "h5", true)
			if err := rdb.Del(ctx, k.itemLock("recompute", "v", "h5")).Err(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ll.Lost():
			case <-time.After(5 * time.Second):
				t.Fatal("a lease whose lock was deleted was never reported lost")
			}
			if err := ll.Check(ctx); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("Check after loss = %v", err)
			}
			ll.Done(ctx, false, nil)

			recs, err := ItemHistory(ctx, rdb, k.ns, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("item records %+v, want a's h1 and b's h1", recs)
			}
			want := []struct {
				runner, outcome string
				token           int64
			}{{"b", OutcomeFailed, lb1.Token()}, {"a", OutcomeOK, la.Token()}} // newest first
			for i, w := range want {
				r := recs[i]
				if r.Runner != w.runner || r.Outcome != w.outcome || r.Token != w.token || r.View != "v" || r.Item != "h1" ||
					r.Job != "recompute" || r.End.Before(r.Start) {
					t.Errorf("record %d = %+v, want runner %s outcome %s token %d", i, r, w.runner, w.outcome, w.token)
				}
			}
			if recs[0].Start.Before(recs[1].End) {
				t.Errorf("b's h1 [%v, %v] overlaps a's [%v, %v]", recs[0].Start, recs[0].End, recs[1].Start, recs[1].End)
			}
		})
	}
}

// At the runner level: an exclusive job whose lock names a shared job
// (backfill and repair name recompute) starts only after the shared run's
// items in flight are done, and while it runs the shared run's items are
// refused; shared runs of several runners overlap, each taking its items.
func TestExclusiveJobWaitsForSharedItems(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := testenv.Name("jobs")
			itemTaken := make(chan struct{})
			finishItem := make(chan struct{})
			var itemDone time.Time
			shared := Job{Name: "recompute", Shared: true, Run: func(ctx context.Context, run *Run) error {
				if run.Lease != nil || run.ItemLeases == nil {
					t.Errorf("a shared run has lease %v and item leaser %v", run.Lease, run.ItemLeases)
				}
				l, ok, err := run.ItemLeases.Try(ctx, "v", "h1")
				if err != nil || !ok {
					return errors.Join(err, errors.New("h1 not taken"))
				}
				close(itemTaken)
				<-finishItem
				itemDone = time.Now()
				run.Done(1)
				return l.Done(ctx, true, nil)
			}}
			var started time.Time
			var refused bool
			exStarted := make(chan struct{})
			exclusive := Job{Name: "backfill", Lock: "recompute", Run: func(ctx context.Context, run *Run) error {
				started = time.Now()
				close(exStarted)
				// A shared run's item is refused while this run holds the lock.
				il := &ItemLeaser{rdb: redisClient(t, rs), k: keys{ns: ns}, job: "recompute", runner: "x", ttl: time.Second, history: 10}
				_, ok, err := il.Try(ctx, "v", "h2")
				refused = err == nil && !ok
				return err
			}}
			a := newRunner(t, rs, ns, "a", 3*time.Second, shared, exclusive)
			b := newRunner(t, rs, ns, "b", 3*time.Second, shared, exclusive)

			sharedRec := make(chan Record, 1)
			go func() { rec, _ := a.RunNow(ctx, "recompute"); sharedRec <- rec }()
			<-itemTaken
			// Another runner's shared run goes ahead at once (no job lease):
			// h1 is held, so it takes nothing.
			other := &ItemLeaser{rdb: redisClient(t, rs), k: keys{ns: ns}, job: "recompute", runner: "b", ttl: time.Second, history: 10}
			if _, ok, err := other.Try(ctx, "v", "h1"); err != nil || ok {
				t.Errorf("b took h1 while a holds it: ok=%v %v", ok, err)
			}
			exRec := make(chan Record, 1)
			go func() { rec, _ := b.RunNow(ctx, "backfill"); exRec <- rec }()
			select {
			case <-exStarted:
				t.Fatal("the exclusive job started while a shared item was in flight")
			case <-time.After(700 * time.Millisecond):
			}
			close(finishItem)
			if rec := <-sharedRec; rec.Outcome != OutcomeOK || rec.Items != 1 || rec.Token != 0 {
				t.Errorf("shared run record %+v", rec)
			}
			rec := <-exRec
			if rec.Outcome != OutcomeOK {
				t.Fatalf("exclusive run record %+v", rec)
			}
			if started.Before(itemDone) {
				t.Errorf("the exclusive job started %v before the shared item was done", itemDone.Sub(started))
			}
			if !refused {
				t.Error("a shared item was not refused while the exclusive job held the lock")
			}
		})
	}
}
