package compact_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// One clean run of 200k events (out-of-order, duplicate and malformed ones
// among them) under a small budget and small files, so that rotation and
// budget flushes both happen. The lake it leaves is then read by DuckDB
// and merged.
func TestCompactExactlyOnce(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	store, _ := testenv.S3Lake(t)
	topic := testenv.Topic(t, brokers, partitions)
	s := ordersOn(t, topic)
	ctx := context.Background()

	start := time.Now()
	tr := produce(ctx, t, brokers, s, 200_000, 0, 7)
	t.Logf("produced %v in %v", tr.counts, time.Since(start))
	end := endOffsets(t, brokers, topic)
	start = time.Now()
	ref := readBack(t, brokers, s, end)
	t.Logf("read back in %v", time.Since(start))

	group := testenv.Name("compact")
	stop := runCompactor(t, compact.Config{Brokers: brokers, Group: group, Store: store,
		Schemas: []*schemas.Schema{s}, Lateness: map[string]time.Duration{s.Name: 5 * time.Minute},
		Budget: 16 << 20, MaxFileRows: 3_000, MaxFileBytes: 64 << 20, MaxFileAge: 2 * time.Second,
		SessionTimeout: 6 * time.Second})
	waitCompacted(t, store, group, topic, end, 2*time.Minute)
	stop()

	rep := verifyLake(t, store, s, ref)
	if rep.redundant != 0 || rep.dropped != 0 {
		t.Errorf("a clean run left overlaps: %d redundant files, %d offsets dropped", rep.redundant, rep.dropped)
	}
	// The generator's own tally, hour by hour, is what the lake holds.
	for h, want := range tr.hours {
		if got := rep.hours[h]; got != want {
			t.Errorf("hour %v: lake %+v, generator %+v", h, got, want)
		}
	}

	t.Run("files sorted by event time", func(t *testing.T) {
		objs, err := store.List(ctx, lake.RawPrefix(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		ts := raw.ColumnsOf(s).Fields[s.TimeIndex()]
		for _, o := range objs[:min(len(objs), 10)] {
			b, err := lake.ReadAll(ctx, store, o.Key)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parquet.OpenFile(strings.NewReader(string(b)), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			r := parquet.NewReader(f)
			rows := make([]parquet.Row, f.NumRows())
			n, _ := r.ReadRows(rows)
			if n != len(rows) || n == 0 {
				t.Fatalf("%s: read %d of %d rows", o.Key, n, len(rows))
			}
			for i := 1; i < n; i++ {
				if rows[i][ts].Int64() < rows[i-1][ts].Int64() {
					t.Fatalf("%s: row %d is earlier than row %d", o.Key, i, i-1)
				}
			}
		}
	})

	t.Run("late records mark closed hours dirty", func(t *testing.T) {
		objs, err := store.List(ctx, lake.DirtyPrefix(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Fatal("no dirty markers, though records arrived up to 20 min late with 5 min lateness")
		}
		for _, o := range objs {
			_, h, err := lake.ParseDirtyKey(o.Key)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := tr.hours[h]; !ok {
				t.Errorf("dirty marker for hour %v, which has no data", h)
			}
		}
		wm, err := raw.Watermark(ctx, store, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		// Caught up, every partition's watermark follows the wall clock.
		if lag := time.Since(wm); lag < 5*time.Minute || lag > 10*time.Minute {
			t.Errorf("watermark %v is %v behind now, want lateness (5m) plus a little", wm, lag)
		}
	})

	t.Run("duckdb reads the lake", func(t *testing.T) {
		duckdbHours(t, store, s.Name, tr.hours)
	})

	t.Run("merge keeps the records and reduces files", func(t *testing.T) {
		before, err := store.List(ctx, lake.RawPrefix(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		for h := range rep.hours {
			res, err := compact.Merge(ctx, store, s, h)
			if err != nil {
				t.Fatal(err)
			}
			if res.Written != partitions {
				t.Errorf("merge %v: wrote %d files, want one per partition (%d)", h, res.Written, partitions)
			}
			again, err := compact.Merge(ctx, store, s, h)
			if err != nil || again != (compact.MergeResult{}) {
				t.Errorf("second merge of %v did %+v (%v), want nothing", h, again, err)
			}
		}
		after, err := store.List(ctx, lake.RawPrefix(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		if len(after) >= len(before) || len(after) != partitions*len(rep.hours) {
			t.Errorf("files: %d before merge, %d after, want %d", len(before), len(after), partitions*len(rep.hours))
		}
		merged := verifyLake(t, store, s, ref)
		for h, want := range rep.hours {
			if got := merged.hours[h]; got != want {
				t.Errorf("hour %v after merge: %+v, before %+v", h, got, want)
			}
		}
	})
}

// duckdbHours downloads the raw lake into a folder, keeping its key layout,
// and has DuckDB (Python, from `make duckdb`) read it with hive
// partitioning. DuckDB reads S3 through its httpfs extension, which it
// downloads at first use; this machine has no route to that download, so
// the files come to it instead. Its row count and sum(amount) per hour must
// equal the generator's.
func duckdbHours(t *testing.T, store lake.Store, schema string, want map[time.Time]hourSum) {
	t.Helper()
	python := testenv.DuckDBPython(t)
	ctx := context.Background()
	dir := t.TempDir()
	objs, err := store.List(ctx, lake.RawPrefix(schema))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := lake.ReadAll(ctx, store, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	query := fmt.Sprintf(`SELECT strftime(dt, '%%Y-%%m-%%d') AS day, hr, count(*) AS n, sum(amount) AS amount,
		sum(CAST(round(amount * 100) AS BIGINT)) AS cents
		FROM read_parquet('%s/raw/%s/*/*/*.parquet', hive_partitioning = 1) GROUP BY ALL ORDER BY 1, 2`, dir, schema)
	script := `import duckdb, json, sys
rows = duckdb.connect().execute(sys.argv[1]).fetchall()
print(json.dumps([[r[0], int(r[1]), int(r[2]), float(r[3]), int(r[4])] for r in rows]))`
	out, err := exec.Command(python, "-c", script, query).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("duckdb: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("duckdb: %v (run `make duckdb`)", err)
	}
	var rows [][]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output %q: %v", out, err)
	}
	got := map[time.Time]hourSum{}
	for _, r := range rows {
		day, err := time.Parse("2006-01-02", r[0].(string))
		if err != nil {
			t.Fatal(err)
		}
		h := day.Add(time.Duration(r[1].(float64)) * time.Hour)
		hs := hourSum{rows: int64(r[2].(float64)), cents: int64(r[4].(float64))}
		got[h] = hs
		// sum(amount) in floating point, against the exact cents.
		if diff := r[3].(float64)*100 - float64(hs.cents); diff > 1e-3*float64(hs.rows) || diff < -1e-3*float64(hs.rows) {
			t.Errorf("hour %v: duckdb sum(amount) = %v, cents %d", h, r[3], hs.cents)
		}
	}
	if len(got) != len(want) {
		t.Errorf("duckdb sees %d hours, the generator made %d", len(got), len(want))
	}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("hour %v: duckdb %+v, generator %+v", h, got[h], w)
		}
	}
	t.Logf("duckdb: %d hours over %d files match the generator", len(got), len(objs))
}

// A backlog is written as soon as each partition has drained it and gone
// quiet, not max_file_age (an hour here) later: every record is in the lake
// and checkpointed long before that.
func TestCompactWritesADrainedBacklogBeforeItsAge(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	store, _ := testenv.S3Lake(t)
	topic := testenv.Topic(t, brokers, partitions)
	s := ordersOn(t, topic)
	ctx := context.Background()
	// 15k records a partition: under a file's 80k rows, over the eighth
	// of it that makes a buffer drainable.
	tr := produce(ctx, t, brokers, s, 60_000, 0, 11)
	end := endOffsets(t, brokers, topic)
	ref := readBack(t, brokers, s, end)

	group := testenv.Name("compact")
	stop := runCompactor(t, compact.Config{Brokers: brokers, Group: group, Store: store,
		Schemas: []*schemas.Schema{s}, Lateness: map[string]time.Duration{s.Name: 5 * time.Minute},
		Budget: 256 << 20, MaxFileRows: 80_000, MaxFileBytes: 64 << 20, MaxFileAge: time.Hour,
		SessionTimeout: 6 * time.Second})
	waitCompacted(t, store, group, topic, end, time.Minute)
	stop()
	rep := verifyLake(t, store, s, ref)
	for h, want := range tr.hours {
		if got := rep.hours[h]; got != want {
			t.Errorf("hour %v: lake %+v, generator %+v", h, got, want)
		}
	}
}
