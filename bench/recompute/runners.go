package main

// The runners mode (-runners 1,2): the same day of raw files recomputed by
// 1, then 2, ... `jobs` runners at once, each a jobs.Runner with its own
// Recomputer running the recompute job now (what `lambdalake jobs run
// recompute` does), sharing one Redis: the runners share the run, hour by
// hour under per-hour leases (package jobs, Job.Shared). Each runner
// computes -runner-parallel hours at a time (default 1), so a runner is
// the unit being added. In-process runners share this process's cores
// as separate `jobs` processes on one machine would.
//
// Between counts the view's output (views/{view}/, state included) is
// removed, so every count starts from the same lake with all 24 hours to
// do. Each count must recompute every hour exactly once (the hours the
// runs report add up to 24), and the view it writes must equal the
// 1-runner view row by row.
//
// The last line is the summary:
//
//	bench recompute runners: events=… hours=24 runners=1,2 hours_per_s=…,… speedup=… parallel=1 threads=…

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/bench/internal/stack"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// parseRunners reads "1,2" into runner counts.
func parseRunners(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-runners %q: want counts like 1,2", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// runnersMode recomputes the day with each runner count and prints the
// summary.
func runnersMode(ctx context.Context, store lake.Store, v *schemas.View, events int64, counts []int, parallel, threads int) {
	rdb := stack.Redis()
	defer rdb.Close()
	const hours = 24
	var first []views.Row
	rates := make([]float64, len(counts))
	for i, n := range counts {
		check(resetViews(ctx, store, v))
		ns := "bench-runners-" + stack.Suffix()
		d, done, err := recomputeWithRunners(ctx, store, rdb, ns, v, n, parallel)
		stack.DeleteRedisKeys(context.Background(), rdb, "ll:{"+ns+"}*")
		check(err)
		if done != hours {
			log.Fatalf("%d runners recomputed %d hours, want each of the %d once", n, done, hours)
		}
		rows, err := viewRows(ctx, store, v)
		check(err)
		if i == 0 {
			first = rows
		} else if !sameRows(v, first, rows) {
			log.Fatalf("%d runners wrote a view that differs from %d runner's", n, counts[0])
		}
		rates[i] = hours / d.Seconds()
		log.Printf("%d runner(s): %d hours in %.3fs, %.2f hours/s", n, done, d.Seconds(), rates[i])
	}
	var rs, hs []string
	for i, n := range counts {
		rs = append(rs, strconv.Itoa(n))
		hs = append(hs, strconv.FormatFloat(rates[i], 'f', 2, 64))
	}
	fmt.Printf("bench recompute runners: events=%d hours=%d runners=%s hours_per_s=%s speedup=%.2f parallel=%d threads=%d\n",
		events, hours, strings.Join(rs, ","), strings.Join(hs, ","), rates[len(rates)-1]/rates[0], parallel, threads)
}

// recomputeWithRunners starts n runners' recompute at once and returns
// the time until the last one ended and the hours their runs reported.
func recomputeWithRunners(ctx context.Context, store lake.Store, rdb redis.UniversalClient, ns string, v *schemas.View, n, parallel int) (time.Duration, int64, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runners := make([]*jobs.Runner, n)
	for i := range runners {
		list, err := jobs.BatchJobs(jobs.BatchConfig{Store: store, Redis: rdb, Group: group,
			Schemas: []*schemas.Schema{v.Schema}, Views: []*schemas.View{v}, Parallelism: parallel,
			Registerer: prometheus.NewRegistry(), Logger: logger})
		if err != nil {
			return 0, 0, err
		}
		runners[i], err = jobs.New(jobs.Config{Redis: rdb, Namespace: ns, RunnerID: fmt.Sprintf("runner-%d", i+1),
			Lease: 10 * time.Second, Jobs: list, Registerer: prometheus.NewRegistry(), Logger: logger})
		if err != nil {
			return 0, 0, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	t0 := time.Now()
	g, gctx := errgroup.WithContext(rctx)
	items := make([]int64, n)
	for i, r := range runners {
		g.Go(func() error {
			rec, err := r.RunNow(gctx, jobs.JobRecompute)
			items[i] = rec.Items
			return err
		})
	}
	err := g.Wait()
	d := time.Since(t0)
	var done int64
	for _, k := range items {
		done += k
	}
	return d, done, err
}

// resetViews removes the view's files and state: every hour is to do again.
func resetViews(ctx context.Context, store lake.Store, v *schemas.View) error {
	objs, err := store.List(ctx, lake.ViewPrefix(v.Name))
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}

func viewRows(ctx context.Context, store lake.Store, v *schemas.View) ([]views.Row, error) {
	r, err := views.NewReader(views.ReaderConfig{Store: store, CacheBytes: 1 << 30})
	if err != nil {
		return nil, err
	}
	return r.Rows(ctx, v, day, day.Add(24*time.Hour), nil)
}

func sameRows(v *schemas.View, a, b []views.Row) bool {
	if len(a) != len(b) {
		log.Printf("row counts differ: %d and %d", len(a), len(b))
		return false
	}
	for i := range a {
		if msg := diff(v, &a[i], &b[i]); msg != "" {
			log.Printf("row %d differs: %s", i, msg)
			return false
		}
	}
	return true
}
