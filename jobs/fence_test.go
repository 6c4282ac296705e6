package jobs_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// stallingStore holds the first write of one key until
// released, then sends it whatever happened to its run meanwhile: a PUT
// already on the wire when its runner lost the lease (a GC pause, a slow
// network), the gap a lease check before the write cannot close.
type stallingStore struct {
	lake.ConditionalStore
	key      string
	once     sync.Once
	reached  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	stallErr error // what the stalled write returned
}

func (s *stallingStore) stall(ctx context.Context, key string, write func(context.Context) (string, error)) (string, error) {
	stalled := false
	if key == s.key {
		s.once.Do(func() { stalled = true })
	}
	if !stalled {
		return write(ctx)
	}
	close(s.reached)
	<-s.release
	etag, err := write(context.WithoutCancel(ctx))
	s.mu.Lock()
	s.stallErr = err
	s.mu.Unlock()
	return etag, err
}

func (s *stallingStore) Put(ctx context.Context, key string, body io.Reader) error {
	_, err := s.stall(ctx, key, func(ctx context.Context) (string, error) { return "", s.ConditionalStore.Put(ctx, key, body) })
	return err
}

func (s *stallingStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	return s.stall(ctx, key, func(ctx context.Context) (string, error) { return s.ConditionalStore.PutIfMatch(ctx, key, body, etag) })
}

func (s *stallingStore) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	return s.stall(ctx, key, func(ctx context.Context) (string, error) { return s.ConditionalStore.PutIfAbsent(ctx, key, body) })
}

// A recompute runner that lost its hour lease while its _state.json write
// was in flight cannot overwrite the state the runner that took the hour
// over wrote (S3 on LocalStack refuses the If-Match write, and the merge
// it retries finds the hour written under a later lease), nor move B back
// in Redis (real Redis): the lake and the mirror keep the new runner's B.
func TestStaleRunnerCannotOverwriteStateNorMoveBBack(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			s3, _ := testenv.S3Lake(t)
			rdb := rs.Client(t)
			ctx := context.Background()
			cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, v := cfg.Schema("orders"), *cfg.View("revenue")
			v.Name = strings.ReplaceAll(testenv.Name("fence"), "-", "_")
			t.Cleanup(func() { rdb.Del(context.Background(), boundary.Key(v.Name)) })
			ns, group := testenv.Name("jobs"), testenv.Name("compact")

			H := time.Now().UTC().Truncate(time.Hour)
			writeLake(t, s3, s, &v, H.Add(-5*time.Hour), H.Add(-2*time.Hour), 6000, 1)
			// setWatermark closes the hours before wm, as the compactor would.
			setWatermark := func(wm time.Time) {
				for p := range 4 {
					_, etag, _, err := raw.ReadCheckpointVersion(ctx, s3, group, s.Topic, int32(p))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := raw.WriteCheckpoint(ctx, s3, group, s.Topic, int32(p), raw.Checkpoint{NextOffset: 1 << 40, Watermark: wm}, etag); err != nil {
						t.Fatal(err)
					}
				}
			}
			runner := func(id string, store lake.Store) *jobs.Runner {
				list, err := jobs.BatchJobs(jobs.BatchConfig{Store: store, Redis: rdb, Group: group, Schemas: cfg.SchemaList,
					Views: []*schemas.View{&v}, Registerer: prometheus.NewRegistry()})
				if err != nil {
					t.Fatal(err)
				}
				r, err := jobs.New(jobs.Config{Redis: rdb, Namespace: ns, RunnerID: id, Lease: time.Second, Jobs: list,
					Registerer: prometheus.NewRegistry()})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}

			// A first run leaves a state (hour H-5 closed): the next writes replace
			// it with If-Match.
			setWatermark(H.Add(-4*time.Hour + 10*time.Minute))
			b := runner("b", s3)
			if _, err := b.RunNow(ctx, jobs.JobRecompute); err != nil {
				t.Fatal(err)
			}
			first, err := views.ReadState(ctx, s3, v.Name)
			if err != nil || !first.Boundary.Equal(H.Add(-4*time.Hour)) {
				t.Fatalf("first state: B=%v (%v)", first.Boundary, err)
			}

			// Runner a recomputes with H-4 closed and stalls writing the state.
			setWatermark(H.Add(-3*time.Hour + 10*time.Minute))
			stalling := &stallingStore{ConditionalStore: s3, key: lake.ViewStateKey(v.Name), reached: make(chan struct{}), release: make(chan struct{})}
			a := runner("a", stalling)
			aDone := make(chan error, 1)
			go func() {
				_, err := a.RunNow(ctx, jobs.JobRecompute)
				aDone <- err
			}()
			select {
			case <-stalling.reached:
			case err := <-aDone:
				t.Fatalf("runner a finished without writing its state: %v", err)
			case <-time.After(time.Minute):
				t.Fatal("runner a never reached its state write")
			}
			// Its hour lease runs out meanwhile (the lock gone, as after a pause
			// longer than the lease), and b takes the hour over with H-3 closed too.
			held, err := jobs.HeldItems(ctx, rdb, ns, jobs.JobRecompute)
			if err != nil {
				t.Fatal(err)
			}
			for lock, holder := range held {
				if strings.HasPrefix(holder, "a:") {
					if err := rdb.Del(ctx, lock).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(held) != 1 {
				t.Fatalf("runner a, stalled in its state write, holds %v: want the one hour it computed", held)
			}
			setWatermark(H.Add(-2*time.Hour + 10*time.Minute))
			rec, err := b.RunNow(ctx, jobs.JobRecompute)
			if err != nil || rec.Runner != "b" {
				t.Fatalf("runner b's takeover: %+v %v", rec, err)
			}
			want := H.Add(-2 * time.Hour)

			// Now a's write lands: refused.
			close(stalling.release)
			aErr := <-aDone
			stalling.mu.Lock()
			stallErr := stalling.stallErr
			stalling.mu.Unlock()
			if !errors.Is(stallErr, lake.ErrPreconditionFailed) {
				t.Errorf("runner a's late state write: %v, want lake.ErrPreconditionFailed", stallErr)
			}
			if aErr == nil {
				t.Error("runner a's run succeeded after losing its lease")
			}
			st, err := views.ReadState(ctx, s3, v.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Boundary.Equal(want) {
				t.Errorf("state B = %v after a's late write, want b's %v", st.Boundary, want)
			}
			if _, ok := st.Hour(H.Add(-3 * time.Hour)); !ok {
				t.Errorf("state lost b's hour %v", H.Add(-3*time.Hour))
			}
			// Nor does a move the mirror back: its B (H-3) is refused whoever
			// publishes it.
			if got, ok, err := boundary.Read(ctx, rdb, v.Name); err != nil || !ok || !got.Equal(want) {
				t.Errorf("Redis B = %v (ok=%v, %v), want b's %v", got, ok, err, want)
			}
			if held, err := boundary.Publish(ctx, rdb, v.Name, H.Add(-3*time.Hour)); err != nil || !held.Equal(want) {
				t.Errorf("publishing a's older B: held %v (%v), want %v kept", held, err, want)
			}
			hist, err := jobs.History(ctx, rdb, ns, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hist {
				if h.Runner == "a" && h.Outcome != jobs.OutcomeLostLease {
					t.Errorf("runner a's run recorded as %q (%s), want %q", h.Outcome, h.Error, jobs.OutcomeLostLease)
				}
			}
		})
	}
}
