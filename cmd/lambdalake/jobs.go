package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/serving"
)

func init() {
	commands["jobs"] = command{"scheduled batch jobs: jobs | jobs run NAME | jobs status", runJobs}
}

const jobsUsage = "lambdalake jobs [--config F] [--http ADDR] | jobs run recompute|merge|retention|backfill|repair-boundary [--view V --from T --to T] | jobs status [-n N]"

func runJobs(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return runJobNow(ctx, args[1:])
		case "status":
			return runJobsStatus(ctx, args[1:])
		}
	}
	fs, path := flagSet("jobs")
	httpAddr := fs.String("http", "", "serve /healthz and /metrics on this address (default: off)")
	runnerID := fs.String("runner", "", "runner name in the job history (default: host-pid)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s", errUsage, jobsUsage)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	r, closeFn, err := newJobsRunner(ctx, cfg, *runnerID, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx) })
	if *httpAddr != "" {
		srv := serving.New(serving.Config{Addr: *httpAddr})
		g.Go(func() error { return srv.Run(gctx) })
	}
	fmt.Fprintf(os.Stderr, "jobs: recompute %q, merge %q, retention %q\n", cfg.Jobs.Recompute, cfg.Jobs.Merge, cfg.Jobs.Retention)
	return g.Wait()
}

// newJobsRunner wires the batch jobs of cfg to a runner; backfill narrows
// the backfill job (nil: every view, every hour).
func newJobsRunner(ctx context.Context, cfg *config.Config, runnerID string, backfill *backfillRange) (*jobs.Runner, func(), error) {
	return newJobsRunnerWith(ctx, cfg, runnerID, func(bc *jobs.BatchConfig) {
		if backfill != nil {
			bc.Backfill.Views, bc.Backfill.From, bc.Backfill.To = backfill.views, backfill.from, backfill.to
			bc.Repair.Views = backfill.views
			prog := newProgressPrinter(os.Stderr, isTerminal(os.Stderr))
			bc.Progress = prog.report
		}
	})
}

// newJobsRunnerWith wires the batch jobs of cfg to a runner, after adjust
// has narrowed their settings.
func newJobsRunnerWith(ctx context.Context, cfg *config.Config, runnerID string, adjust func(*jobs.BatchConfig)) (*jobs.Runner, func(), error) {
	store, err := openLake(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	rdb := cfg.Redis.Client()
	bc := jobs.BatchConfig{Store: store, Redis: rdb, Group: cfg.Compact.Group, Schemas: cfg.SchemaList, Views: cfg.ViewList,
		Recompute: cfg.Jobs.Recompute, Merge: cfg.Jobs.Merge, Retention: cfg.Jobs.Retention}
	adjust(&bc)
	list, err := jobs.BatchJobs(bc)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	r, err := jobs.New(jobs.Config{Redis: rdb, Namespace: cfg.Jobs.Namespace, RunnerID: runnerID, Lease: cfg.Jobs.Lease.D(), Jobs: list})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return r, func() { rdb.Close() }, nil
}

type backfillRange struct {
	views    []*schemas.View
	from, to time.Time
}

func runJobNow(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: %s", errUsage, jobsUsage)
	}
	name := args[0]
	fs, path := flagSet("jobs run " + name)
	viewName := fs.String("view", "", "backfill/recompute: only this view")
	fromS := fs.String("from", "", "backfill: first hour")
	toS := fs.String("to", "", "backfill: end of the range, exclusive")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	br := &backfillRange{}
	if br.from, err = parseHourFlag("from", *fromS); err != nil {
		return err
	}
	if br.to, err = parseHourFlag("to", *toS); err != nil {
		return err
	}
	if *viewName != "" {
		v := cfg.View(*viewName)
		if v == nil {
			return fmt.Errorf("%w: --view: no view %q", errUsage, *viewName)
		}
		br.views = []*schemas.View{v}
		cfg.ViewList = br.views // recompute too
	}
	r, closeFn, err := newJobsRunner(ctx, cfg, "", br)
	if err != nil {
		return err
	}
	defer closeFn()
	rec, err := r.RunNow(ctx, name)
	fmt.Printf("%s: %s, %d items, %s\n", name, rec.Outcome, rec.Items, rec.End.Sub(rec.Start).Round(time.Millisecond))
	return err
}

func runJobsStatus(ctx context.Context, args []string) error {
	fs, path := flagSet("jobs status")
	n := fs.Int("n", 20, "runs to show")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	hist, err := jobs.History(ctx, rdb, cfg.Jobs.Namespace, *n)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tRUNNER\tTOKEN\tSLOT\tSTART\tTOOK\tOUTCOME\tITEMS\tERROR")
	for _, h := range hist {
		slot := "manual"
		if !h.Slot.IsZero() {
			slot = h.Slot.UTC().Format(time.TimeOnly)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", h.Job, h.Runner, h.Token, slot,
			h.Start.UTC().Format(time.RFC3339), h.End.Sub(h.Start).Round(time.Millisecond), h.Outcome, h.Items, h.Error)
	}
	return w.Flush()
}
