package jobs_test

import (
	"context"
	"encoding/json"
	"slices"
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

// Two runners run one recompute at once (LocalStack lake, real Redis over
// both set-ups): each hour is recomputed exactly once, by one runner, and
// never while another runner works on it (the hour records say who did
// what when); both runners did hours, at the same time; every hour's entry
// carries the token of the lease it was written under; B reaches the end,
// in the lake and the mirror, and the view equals the exact reference.
func TestRunnersShareARecomputeRun(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			store, _ := testenv.S3Lake(t)
			rdb := rs.Client(t)
			ctx := context.Background()
			cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, v := cfg.Schema("orders"), *cfg.View("revenue")
			v.Name = strings.ReplaceAll(testenv.Name("shared"), "-", "_")
			t.Cleanup(func() { rdb.Del(context.Background(), boundary.Key(v.Name)) })
			ns, group := testenv.Name("jobs"), testenv.Name("compact")

			const hours = 12
			end := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
			from := end.Add(-hours * time.Hour)
			ref := writeLake(t, store, s, &v, from, end, 120000, 1)
			for p := range 4 {
				cp, _ := json.Marshal(raw.Checkpoint{NextOffset: 1 << 40, Watermark: end})
				if err := lake.PutBytes(ctx, store, lake.CheckpointKey(group, s.Topic, int32(p)), cp); err != nil {
					t.Fatal(err)
				}
			}

			runner := func(id string) *jobs.Runner {
				list, err := jobs.BatchJobs(jobs.BatchConfig{Store: store, Redis: rdb, Group: group, Schemas: cfg.SchemaList,
					Views: []*schemas.View{&v}, Parallelism: 1, Registerer: prometheus.NewRegistry()})
				if err != nil {
					t.Fatal(err)
				}
				r, err := jobs.New(jobs.Config{Redis: rdb, Namespace: ns, RunnerID: id, Lease: 5 * time.Second, Jobs: list,
					Registerer: prometheus.NewRegistry()})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			var wg sync.WaitGroup
			recs := map[string]jobs.Record{}
			var mu sync.Mutex
			for _, id := range []string{"a", "b"} {
				r := runner(id)
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec, err := r.RunNow(ctx, jobs.JobRecompute)
					if err != nil {
						t.Errorf("runner %s: %v", id, err)
					}
					mu.Lock()
					recs[id] = rec
					mu.Unlock()
				}()
			}
			wg.Wait()
			if recs["a"].Items+recs["b"].Items != hours {
				t.Errorf("runners recomputed %d + %d hours, want each of the %d once", recs["a"].Items, recs["b"].Items, hours)
			}

			items, err := jobs.ItemHistory(ctx, rdb, ns, 1000)
			if err != nil {
				t.Fatal(err)
			}
			checkNoHourTwiceAtOnce(t, items)
			byRunner := map[string]int{}
			perHour := map[string]int{}
			for _, r := range items {
				if r.Outcome != jobs.OutcomeOK {
					t.Errorf("hour record %+v", r)
				}
				byRunner[r.Runner]++
				perHour[r.Item]++
			}
			if len(perHour) != hours {
				t.Errorf("%d hours recorded, want %d: %v", len(perHour), hours, perHour)
			}
			for h, n := range perHour {
				if n != 1 {
					t.Errorf("hour %s recomputed %d times in one run", h, n)
				}
			}
			if byRunner["a"] == 0 || byRunner["b"] == 0 {
				t.Errorf("hours by runner %v: both runners should have done some", byRunner)
			}
			if !someOverlap(items) {
				t.Error("no hour of runner a overlapped one of runner b: the runners did not work at once")
			}

			st, err := views.ReadState(ctx, store, v.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Boundary.Equal(end) {
				t.Errorf("state B = %v, want %v", st.Boundary, end)
			}
			tokens := map[string]int64{}
			for _, r := range items {
				tokens[r.Item] = r.Token
			}
			for h, e := range st.Hours {
				if !e.Final || e.Token == 0 || e.Token != tokens[h] {
					t.Errorf("hour %s: final=%v token %d, want final and the token of the lease it was computed under (%d)", h, e.Final, e.Token, tokens[h])
				}
			}
			if got, ok, err := boundary.Read(ctx, rdb, v.Name); err != nil || !ok || !got.Equal(end) {
				t.Errorf("Redis B = %v (ok=%v, %v), want %v", got, ok, err, end)
			}
			reader, err := views.NewReader(views.ReaderConfig{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := reader.Rows(ctx, &v, from, end, nil)
			if err != nil {
				t.Fatal(err)
			}
			compareToReference(t, &v, rows, ref)
		})
	}
}

// checkNoHourTwiceAtOnce wants the records of each (view, hour) never to
// overlap in time: no hour recomputed by two runners at once.
func checkNoHourTwiceAtOnce(t *testing.T, items []jobs.ItemRecord) {
	t.Helper()
	byHour := map[[2]string][]jobs.ItemRecord{}
	for _, r := range items {
		k := [2]string{r.View, r.Item}
		byHour[k] = append(byHour[k], r)
	}
	for k, rs := range byHour {
		slices.SortFunc(rs, func(a, b jobs.ItemRecord) int { return a.Start.Compare(b.Start) })
		for i := 1; i < len(rs); i++ {
			if rs[i].Start.Before(rs[i-1].End) {
				t.Errorf("hour %s of %s recomputed at once by %s (token %d, [%v, %v]) and %s (token %d, [%v, %v])", k[1], k[0],
					rs[i-1].Runner, rs[i-1].Token, rs[i-1].Start, rs[i-1].End, rs[i].Runner, rs[i].Token, rs[i].Start, rs[i].End)
			}
		}
	}
}

// someOverlap says whether a record of one runner overlaps one of another.
func someOverlap(items []jobs.ItemRecord) bool {
	for _, a := range items {
		for _, b := range items {
			if a.Runner != b.Runner && a.Start.Before(b.End) && b.Start.Before(a.End) {
				return true
			}
		}
	}
	return false
}
