package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/schemas"
)

func init() {
	commands["batch"] = command{"recompute batch views: batch recompute|backfill --view V [--from --to] | batch repair-boundary [--view V]", runBatch}
}

const batchUsage = "lambdalake batch recompute|backfill [--config F] [--view V] [--from T] [--to T] [--mirror=false] | batch repair-boundary [--config F] [--view V]"

// runBatch runs one recompute pass (closed hours whose input changed, dirty
// hours, every hour after a view definition change) or a backfill (every
// hour with raw files in the range, changed or not) and exits.
func runBatch(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "repair-boundary" {
		return runRepairBoundary(ctx, args[1:])
	}
	if len(args) == 0 || (args[0] != "recompute" && args[0] != "backfill") {
		return fmt.Errorf("%w: %s", errUsage, batchUsage)
	}
	sub := args[0]
	fs, path := flagSet("batch " + sub)
	viewName := fs.String("view", "", "view to compute (default: every view)")
	fromS := fs.String("from", "", "first hour, RFC 3339 or YYYY-MM-DD (default: unbounded)")
	toS := fs.String("to", "", "end of the range, exclusive (default: unbounded)")
	mirror := fs.Bool("mirror", true, "mirror the boundary B into Redis for the speed and serving layers")
	parallel := fs.Int("parallel", 0, "hours computed at once (default: one per core)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q; %s", errUsage, fs.Arg(0), batchUsage)
	}
	from, err := parseHourFlag("from", *fromS)
	if err != nil {
		return err
	}
	to, err := parseHourFlag("to", *toS)
	if err != nil {
		return err
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return fmt.Errorf("%w: --to must be after --from", errUsage)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	views := cfg.ViewList
	if *viewName != "" {
		v := cfg.View(*viewName)
		if v == nil {
			return fmt.Errorf("%w: no view %q in %s", errUsage, *viewName, *path)
		}
		views = []*schemas.View{v}
	}
	store, err := openLake(ctx, cfg)
	if err != nil {
		return err
	}
	prog := newProgressPrinter(os.Stderr, isTerminal(os.Stderr))
	// A one-shot command serves no /metrics: its series go to a private
	// registry (the jobs process registers the real ones).
	rcfg := recompute.Config{Store: store, Group: cfg.Compact.Group, Parallelism: *parallel, Progress: prog.report,
		Registerer: prometheus.NewRegistry()}
	if *mirror {
		rdb := cfg.Redis.Client()
		defer rdb.Close()
		rcfg.Mirror = recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			_, err := boundary.Publish(ctx, rdb, view, b) // forward only: a later B stays
			return err
		})
	}
	rc, err := recompute.New(rcfg)
	if err != nil {
		return err
	}
	opt := recompute.Options{From: from, To: to, Force: sub == "backfill"}
	for _, v := range views {
		res, err := rc.Recompute(ctx, v, opt)
		prog.end()
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d hours, %d raw rows, %d view rows, boundary %s, %s\n", v.Name, res.Hours, res.Rows, res.ViewRows,
			formatBoundary(res.Boundary), res.Elapsed.Round(time.Millisecond))
	}
	return nil
}

// runRepairBoundary repairs views whose boundary B events with far-future
// times moved past the wall clock before admission existed (DESIGN §2,
// "Event time is bounded"): under the recompute lock, as the jobs' repair
// job, it resets the view hours that cannot be final under the wall clock,
// recomputes the closed ones, sets B in _state.json from the lake state and
// overrides the Redis mirror with it (internal/boundary.Override). A view
// whose B is fine keeps it (its mirror is set to it). Every view when
// --view is not given.
func runRepairBoundary(ctx context.Context, args []string) error {
	fs, path := flagSet("batch repair-boundary")
	viewName := fs.String("view", "", "view to repair (default: every view)")
	wait := fs.Duration("wait", time.Minute, "how long to wait for a recompute run holding the lock")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q; %s", errUsage, fs.Arg(0), batchUsage)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	var only []*schemas.View
	if *viewName != "" {
		v := cfg.View(*viewName)
		if v == nil {
			return fmt.Errorf("%w: no view %q in %s", errUsage, *viewName, *path)
		}
		only = []*schemas.View{v}
	}
	var reports []jobs.RepairReport
	r, closeFn, err := newJobsRunnerWith(ctx, cfg, "", func(bc *jobs.BatchConfig) {
		bc.Repair.Views = only
		bc.OnRepair = func(rep jobs.RepairReport) { reports = append(reports, rep) }
		// A one-shot command serves no /metrics.
		bc.Registerer = prometheus.NewRegistry()
	})
	if err != nil {
		return err
	}
	defer closeFn()
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	_, err = r.RunNow(wctx, jobs.JobRepair)
	for _, rep := range reports {
		printRepair(os.Stdout, rep)
	}
	return err
}

// printRepair says what the repair did to one view, and what is left to do.
func printRepair(w io.Writer, rep jobs.RepairReport) {
	res := rep.Lake
	mirror := "none"
	if rep.MirrorSet {
		mirror = formatBoundary(rep.Mirror)
	}
	if !res.Repaired {
		fmt.Fprintf(w, "%s: B %s is not past the wall clock: nothing to repair in the lake (Redis mirror was %s, now %s)\n",
			rep.View, formatBoundary(res.Boundary), mirror, formatBoundary(res.Boundary))
		return
	}
	fmt.Fprintf(w, "%s: B was %s, now %s (lake _state.json and Redis mirror, which was %s)\n",
		rep.View, formatBoundary(res.Previous), formatBoundary(res.Boundary), mirror)
	switch n := len(res.Reset); {
	case n == 1:
		fmt.Fprintf(w, "  1 view hour could not be final under the wall clock and was reset: %s\n", res.Reset[0].Format(time.RFC3339))
	case n > 1:
		fmt.Fprintf(w, "  %d view hours could not be final under the wall clock and were reset: %s … %s\n", n,
			res.Reset[0].Format(time.RFC3339), res.Reset[n-1].Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  %d closed hours recomputed, %d raw rows\n", res.Hours, res.Rows)
	fmt.Fprintf(w, "  the speed layer skipped every event while B was ahead: replay them with `lambdalake speed rebuild --view %s`\n", rep.View)
}

func formatBoundary(b time.Time) string {
	if b.IsZero() {
		return "none yet"
	}
	return b.Format(time.RFC3339)
}

// parseHourFlag reads RFC 3339, YYYY-MM-DD or YYYY-MM-DDTHH; empty is zero.
func parseHourFlag(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: --%s %q: want RFC 3339, YYYY-MM-DD[THH] or epoch ms", errUsage, name, s)
}

// isTerminal reports whether f is a character device (a terminal), where a
// progress line that rewrites itself reads well; elsewhere it would be noise.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressPrinter shows hours done / total and rows/s: one rewritten line
// on a terminal, a log line at most every few seconds otherwise.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	last  time.Time
	shown bool
}

func newProgressPrinter(w io.Writer, tty bool) *progressPrinter {
	return &progressPrinter{w: w, tty: tty}
}

func (p *progressPrinter) report(pr recompute.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(pr.Rows) / s
	}
	if p.tty {
		line := fmt.Sprintf("%s: %d/%d hours  %d rows  %.0f rows/s  %s", pr.View, pr.Done, pr.Total, pr.Rows, rate,
			pr.Elapsed.Round(100*time.Millisecond))
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.shown = true
		return
	}
	if pr.Done == pr.Total || time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		slog.Info("recompute progress", "view", pr.View, "hours_done", pr.Done, "hours_total", pr.Total,
			"rows", pr.Rows, "rows_per_s", int64(rate))
	}
}

// end finishes a terminal progress line.
func (p *progressPrinter) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
