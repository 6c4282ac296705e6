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
	"github.com/lambdalake/lambdalake/schemas"
)

func init() {
	commands["batch"] = command{"recompute batch views: batch recompute|backfill --view V [--from --to]", runBatch}
}

const batchUsage = "lambdalake batch recompute|backfill [--config F] [--view V] [--from T] [--to T] [--mirror=false]"

// runBatch runs one recompute pass (closed hours whose input changed, dirty
// hours, every hour after a view definition change) or a backfill (every
// hour with raw files in the range, changed or not) and exits.
func runBatch(ctx context.Context, args []string) error {
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
