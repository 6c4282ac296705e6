// Command recompute benchmarks batch recompute (DESIGN §7) against DuckDB
// on the same raw files.
//
// It generates one day of orders (≥5M events by default: internal/gen,
// tenants ×10, countries ×20, user_id ~100k, 5% out of order, 1% exact
// duplicates) into a raw lake laid out as the compactor writes it
// (bench/internal/rawfiles, zstd): 4 partitions, files per (partition,
// hour, flush) sorted by event time, and
// every 8th flush re-reading a third of the previous one, so overlapping
// files are present. Generation is not timed.
//
// Then, in one run and on the same files:
//
//	ours:   recompute.Recomputer over all 24 hours of the `revenue` view
//	        (2 hours at a time): Arrow reads, overlap and id dedup,
//	        aggregation, one view Parquet file per hour, _state.json;
//	duckdb: DuckDB 2.0.0 (Python, .venv-duckdb, `make duckdb`)
//	        running the same GROUP BY over read_parquet(..., hive_partitioning=1)
//	        with the same semantics — dedup by (_partition, _offset), then by
//	        order_id keeping the smallest (_partition, _offset) — and writing
//	        the result with COPY ... TO parquet.
//
// Both run twice, alternating (ours, DuckDB, ours as a backfill of all 24
// hours, DuckDB), and each side's best time counts: the machine is shared
// with other work, and alternating keeps a load swing from favouring one.
//
// Both sides get the same parallelism, -threads (default: the machine's
// cores): ours runs with GOMAXPROCS at it, DuckDB with SET threads to it;
// the summary states it as threads=.
//
// The results are compared row by row (exact for count, min, max, count
// distinct and decimal sums — the example's amount is a decimal(18,2),
// which DuckDB sums as DECIMAL(38,2); 1e-9 relative for float sums, whose
// addition order differs).
//
// The lake is a local folder (lake.DirStore under a temp dir), not
// LocalStack S3: DuckDB reads S3 only through its httpfs extension, which it
// downloads at first use, and this machine has no internet access. Both
// sides read the same files from the page cache.
//
// rss_mb is our peak RSS during the recompute rounds (VmHWM, reset before
// them); the generator's memory is not counted. DuckDB's is printed on the line before.
//
// With -runners 1,2 it measures instead how recompute scales with the
// number of `jobs` runners sharing a run, on the same files (runners.go).
//
// The last line is the DESIGN §7 summary:
//
//	bench recompute: events=… ours_s=… duckdb_s=… ratio=… equal=true threads=… rss_mb=…
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/bench/internal/duck"
	"github.com/lambdalake/lambdalake/bench/internal/procstat"
	"github.com/lambdalake/lambdalake/bench/internal/rawfiles"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

const (
	partitions   = 4
	flushRecords = 50_000 // per partition flush
	overlapEvery = 8
	group        = "bench-compact"
)

var day = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func main() {
	events := flag.Int64("events", 5_000_000, "events to generate over one day")
	keep := flag.Bool("keep", false, "keep the lake folder")
	python := flag.String("python", duck.DefaultPython, "Python with duckdb installed (make duckdb)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of our recompute to this file")
	parallel := flag.Int("parallel", 0, "hours recomputed at once (0: the recomputer's default)")
	threads := flag.Int("threads", runtime.NumCPU(), "parallelism of both sides: our GOMAXPROCS and DuckDB's threads")
	runners := flag.String("runners", "", "instead of the DuckDB comparison, recompute the day with each of these counts of jobs runners at once (e.g. 1,2) and report hours/s for each (runners.go)")
	runnerParallel := flag.Int("runner-parallel", 1, "with -runners: hours each runner computes at once")
	flag.Parse()
	var runnerCounts []int
	if *runners != "" {
		var err error
		if runnerCounts, err = parseRunners(*runners); err != nil {
			log.Fatal(err)
		}
	}
	runtime.GOMAXPROCS(*threads)
	ctx := context.Background()

	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	check(err)
	v := cfg.View("revenue")
	s := v.Schema

	dir, err := os.MkdirTemp("", "bench-recompute-")
	check(err)
	if !*keep {
		cleanup = func() { os.RemoveAll(dir) }
		defer cleanup()
	}
	store, err := lake.NewDirStore(dir)
	check(err)

	t0 := time.Now()
	files, err := generate(ctx, store, s, *events)
	check(err)
	log.Printf("generated %d events into %d raw files in %v (%s)", *events, files, time.Since(t0).Round(time.Millisecond), dir)
	// Every partition's watermark is past the day: all 24 hours are closed.
	for p := int32(0); p < partitions; p++ {
		b, _ := json.Marshal(raw.Checkpoint{NextOffset: 1, Watermark: day.Add(25 * time.Hour)})
		check(lake.PutBytes(ctx, store, lake.CheckpointKey(group, s.Topic, p), b))
	}
	if runnerCounts != nil {
		runnersMode(ctx, store, v, *events, runnerCounts, *runnerParallel, *threads)
		return
	}

	// Ours.
	runtime.GC()
	debug.FreeOSMemory()
	if err := procstat.ResetSelfPeak(); err != nil {
		log.Printf("%v; rss_mb includes generation", err)
	}
	rc, err := recompute.New(recompute.Config{Store: store, Group: group, Parallelism: *parallel,
		Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	check(err)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
	}
	// Two rounds, ours then DuckDB, each side's best time counting: the
	// machine is shared, and alternating keeps load swings from favouring
	// either side. Round 2 of ours is a backfill (every hour again).
	duckOut := filepath.Join(dir, "duckdb.parquet")
	var ours time.Duration
	var res recompute.Result
	duckS, duckRSS := math.Inf(1), int64(0)
	oursCPU, duckCPU := math.Inf(1), math.Inf(1)
	for round := range 2 {
		t0 = time.Now()
		c0 := procstat.SelfCPU().Seconds()
		r, err := rc.Recompute(ctx, v, recompute.Options{Force: round > 0})
		check(err)
		d := time.Since(t0)
		oursCPU = math.Min(oursCPU, procstat.SelfCPU().Seconds()-c0)
		if round == 0 {
			res = r
			if *cpuProfile != "" {
				pprof.StopCPUProfile()
			}
		}
		if round == 0 || d < ours {
			ours = d
		}
		log.Printf("ours round %d: %d hours, %d rows in, %d view rows, %.3fs, B=%s", round+1, r.Hours, r.Rows, r.ViewRows, d.Seconds(), r.Boundary.Format(time.RFC3339))
		if r.Hours != 24 {
			log.Fatalf("recomputed %d hours, want 24", r.Hours)
		}
		s, cpu, rss, err := runDuckDB(ctx, *python, dir, duckOut, *threads, v)
		check(err)
		log.Printf("duckdb round %d: %.3fs (%.3f CPU s), peak RSS %d MB", round+1, s, cpu, rss)
		duckS, duckRSS, duckCPU = math.Min(duckS, s), max(duckRSS, rss), math.Min(duckCPU, cpu)
	}
	rss := procstat.SelfPeakRSS() >> 20

	equal, err := compare(ctx, store, v, duckOut)
	check(err)
	fmt.Printf("ours_cpu_s=%.3f duckdb_cpu_s=%.3f duckdb_rss_mb=%d ours_rows_per_s=%.0f\n", oursCPU, duckCPU, duckRSS, float64(res.Rows)/ours.Seconds())
	fmt.Printf("bench recompute: events=%d ours_s=%.3f duckdb_s=%.3f ratio=%.2f equal=%v threads=%d rss_mb=%d\n",
		*events, ours.Seconds(), duckS, ours.Seconds()/duckS, equal, *threads, rss)
	if !equal {
		cleanup()
		os.Exit(1)
	}
}

// cleanup removes the lake folder; check calls it before exiting.
var cleanup = func() {}

func check(err error) {
	if err != nil {
		cleanup()
		log.Fatal(err)
	}
}

type flush struct {
	part int32
	recs []rawfiles.Record
}

// generate writes the day's events as raw files and returns how many.
// The generator runs here; decoding and Parquet writing run on two workers.
func generate(ctx context.Context, store lake.Store, s *schemas.Schema, n int64) (int, error) {
	g, err := gen.New(gen.Config{Schema: s, From: day, To: day.Add(24 * time.Hour), Count: n,
		Cardinality: map[string]int{"tenant": 10, "country": 20, "user_id": 100_000},
		OutOfOrder:  0.05, MaxDelay: 10 * time.Minute, Duplicates: 0.01, Seed: 42})
	if err != nil {
		return 0, err
	}
	work := make(chan flush, 4)
	counts := make(chan int, 64)
	eg, ectx := errgroup.WithContext(ctx)
	for range 2 {
		eg.Go(func() error {
			written := 0
			for f := range work {
				k, err := rawfiles.WriteFlush(ectx, store, s, f.part, f.recs)
				if err != nil {
					return err
				}
				written += k
			}
			counts <- written
			return nil
		})
	}
	eg.Go(func() error {
		defer close(work)
		bufs := make([][]rawfiles.Record, partitions)
		prev := make([][]rawfiles.Record, partitions)
		nflush := make([]int, partitions)
		next := make([]int64, partitions)
		send := func(p int) error {
			recs := bufs[p]
			if nflush[p] > 0 && nflush[p]%overlapEvery == 0 {
				// A restart from an older checkpoint re-reads part of the last flush.
				old := prev[p]
				recs = append(slices.Clone(old[len(old)*2/3:]), recs...)
			}
			nflush[p]++
			prev[p] = bufs[p]
			bufs[p] = make([]rawfiles.Record, 0, flushRecords)
			select {
			case work <- flush{int32(p), recs}:
				return nil
			case <-ectx.Done():
				return ectx.Err()
			}
		}
		for i := int64(0); i < n; i++ {
			e := g.Next(time.Time{})
			p := int(i % partitions)
			bufs[p] = append(bufs[p], rawfiles.Record{Offset: next[p], Value: e.Value})
			next[p]++
			if len(bufs[p]) == flushRecords {
				if err := send(p); err != nil {
					return err
				}
			}
		}
		for p := range bufs {
			if len(bufs[p]) > 0 {
				if err := send(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err := eg.Wait(); err != nil {
		return 0, err
	}
	close(counts)
	total := 0
	for c := range counts {
		total += c
	}
	return total, nil
}

// duckScript times the query inside DuckDB and reports its peak RSS.
const duckScript = `
import duckdb, resource, sys, time
lake, out, threads, sql = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
con = duckdb.connect()
con.execute("SET threads=" + threads)
con.execute("SET enable_progress_bar=false")
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
con.execute("COPY (" + sql + ") TO '" + out + "' (FORMAT parquet)")
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(f"{dt:.6f} {r1.ru_maxrss // 1024} {cpu:.3f}")
`

// duckSQL is the view as SQL, with the lake's dedup semantics.
func duckSQL(dir string, v *schemas.View) string {
	g := v.Granularity.Microseconds()
	s := v.Schema
	cols := []string{s.Time, s.ID}
	cols = append(cols, v.Dimensions...)
	var aggs []string
	for _, m := range v.Metrics {
		if m.Field != "" && !slices.Contains(cols, m.Field) {
			cols = append(cols, m.Field)
		}
		switch m.Agg {
		case schemas.Count:
			aggs = append(aggs, "count(*) AS "+m.Name)
		case schemas.Uniq:
			aggs = append(aggs, fmt.Sprintf("count(DISTINCT %s) AS %s", m.Field, m.Name))
		default:
			aggs = append(aggs, fmt.Sprintf("%s(%s) AS %s", m.Agg, m.Field, m.Name))
		}
	}
	dims := strings.Join(v.Dimensions, ", ")
	return fmt.Sprintf(`WITH raw AS (
  SELECT %s, _partition, _offset FROM read_parquet('%s/raw/%s/*/*/*.parquet', hive_partitioning=1)
), by_offset AS (
  SELECT * FROM raw QUALIFY row_number() OVER (PARTITION BY _partition, _offset) = 1
), by_id AS (
  SELECT * FROM by_offset QUALIFY row_number() OVER (PARTITION BY %s ORDER BY _partition, _offset) = 1
)
SELECT epoch_us(%s) // %d * %d AS t, %s, %s
FROM by_id GROUP BY ALL ORDER BY t, %s`,
		strings.Join(cols, ", "), dir, s.Name, s.ID, s.Time, g, g, dims, strings.Join(aggs, ", "), dims)
}

// runDuckDB returns the query's wall and CPU seconds and DuckDB's peak RSS.
func runDuckDB(ctx context.Context, python, dir, out string, threads int, v *schemas.View) (secs, cpu float64, rssMB int64, err error) {
	f, err := duck.Run(ctx, python, duckScript, dir, out, strconv.Itoa(threads), duckSQL(dir, v))
	if err != nil {
		return 0, 0, 0, err
	}
	x, err := duck.Floats(f, 3)
	if err != nil {
		return 0, 0, 0, err
	}
	return x[0], x[2], int64(x[1]), nil
}

// compare reads our view through views.Reader and DuckDB's result file
// and compares them row by row.
func compare(ctx context.Context, store lake.Store, v *schemas.View, duckOut string) (bool, error) {
	r, err := views.NewReader(views.ReaderConfig{Store: store, CacheBytes: 1 << 30})
	if err != nil {
		return false, err
	}
	ours, err := r.Rows(ctx, v, day, day.Add(24*time.Hour), nil)
	if err != nil {
		return false, err
	}
	theirs, err := readDuck(ctx, duckOut, v)
	if err != nil {
		return false, err
	}
	if len(ours) != len(theirs) {
		log.Printf("row counts differ: ours %d, duckdb %d", len(ours), len(theirs))
		return false, nil
	}
	bad := 0
	for i := range ours {
		if msg := diff(v, &ours[i], &theirs[i]); msg != "" {
			if bad++; bad <= 5 {
				log.Printf("row %d differs: %s", i, msg)
			}
		}
	}
	log.Printf("compared %d rows: %d differ", len(ours), bad)
	return bad == 0, nil
}

func diff(v *schemas.View, a, b *views.Row) string {
	if a.T != b.T {
		return fmt.Sprintf("t %d vs %d", a.T, b.T)
	}
	for d := range v.Dimensions {
		if a.Dims[d] != b.Dims[d] {
			return fmt.Sprintf("%s %+v vs %+v", v.Dimensions[d], a.Dims[d], b.Dims[d])
		}
	}
	for i, m := range v.Metrics {
		x, y := a.Values[i], b.Values[i]
		f, _ := v.Schema.Field(m.Field)
		if m.Agg == schemas.Sum && f.Type == schemas.Float64 {
			if x.Null != y.Null || math.Abs(x.Float-y.Float) > 1e-9*math.Max(1, math.Abs(y.Float)) {
				return fmt.Sprintf("%s %v vs %v", m.Name, x.Float, y.Float)
			}
			continue
		}
		if x != y {
			return fmt.Sprintf("%s %+v vs %+v", m.Name, x, y)
		}
	}
	return ""
}

// readDuck reads DuckDB's result into views.Rows (dimensions as strings,
// metrics by the view's types).
func readDuck(ctx context.Context, path string, v *schemas.View) ([]views.Row, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	col := func(name string) (arrow.Array, error) {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("duckdb result has no column %s", name)
		}
		c := tbl.Column(idx[0]).Data()
		if len(c.Chunks()) == 1 {
			return c.Chunk(0), nil
		}
		return array.Concatenate(c.Chunks(), memory.DefaultAllocator)
	}
	t, err := col("t")
	if err != nil {
		return nil, err
	}
	n := int(tbl.NumRows())
	rows := make([]views.Row, n)
	for i := range rows {
		rows[i].T = t.(*array.Int64).Value(i)
		rows[i].Dims = make([]schemas.Value, len(v.Dimensions))
		rows[i].Values = make([]schemas.Value, len(v.Metrics))
	}
	for d, name := range v.Dimensions {
		c, err := col(name)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			rows[i].Dims[d] = value(c, i)
		}
	}
	for m, met := range v.Metrics {
		c, err := col(met.Name)
		if err != nil {
			return nil, err
		}
		if dt, ok := c.DataType().(*arrow.Decimal128Type); ok && int(dt.Scale) != v.MetricType(met).Scale() {
			return nil, fmt.Errorf("duckdb result: %s is %s, the view's %s", met.Name, dt, v.MetricType(met))
		}
		for i := range rows {
			rows[i].Values[m] = value(c, i)
		}
	}
	return rows, nil
}

func value(a arrow.Array, i int) schemas.Value {
	if a.IsNull(i) {
		return schemas.Value{Null: true}
	}
	switch x := a.(type) {
	case *array.String:
		return schemas.Value{Str: x.Value(i)}
	case *array.Int64:
		return schemas.Value{Int: x.Value(i)}
	case *array.Float64:
		return schemas.Value{Float: x.Value(i)}
	case *array.Decimal128:
		// A decimal metric (DuckDB sums DECIMAL(P,S) as DECIMAL(38,S)):
		// compared exactly as its scaled int64; the scale is checked
		// against the view's in compare.
		d := x.Value(i)
		if lo := int64(d.LowBits()); d.HighBits() == lo>>63 {
			return schemas.Value{Int: lo}
		}
		panic("DuckDB decimal beyond int64: " + d.ToString(x.DataType().(*arrow.Decimal128Type).Scale))
	}
	panic("unexpected DuckDB column type " + a.DataType().String())
}
