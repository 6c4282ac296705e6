package compact_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Decimal fields through the compactor on the real stack: the raw lake
// stores them as Parquet DECIMAL(P,S), which DuckDB reads as DECIMAL(P,S)
// and sums exactly to our exact sum (amounts whose total is far beyond
// float64's 2^53, in number, string and exponent forms); a value that
// would need rounding is dead-lettered, not stored.
func TestCompactDecimalsDuckDB(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	store, _ := testenv.S3Lake(t)
	python := testenv.DuckDBPython(t)
	topic := testenv.Topic(t, brokers, partitions)
	dec := func(p, s int) schemas.Type {
		typ, err := schemas.DecimalType(p, s)
		if err != nil {
			t.Fatal(err)
		}
		return typ
	}
	s, err := schemas.NewSchema("money", topic, "ts", "id", []schemas.Field{
		{Name: "id", Type: schemas.String},
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "amount", Type: dec(18, 2)},
		{Name: "rate", Type: dec(9, 3), Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}

	const n = 20000
	rng := rand.New(rand.NewPCG(15, 3))
	to := time.Now().UTC().Truncate(time.Hour)
	var amountSum, rateSum schemas.IntSum
	bigSum := new(big.Int)
	var msgs []kafka.Message
	bad := 0
	for i := range n {
		cents := rng.Int64N(2e13) - 2e12 // up to 200 billion, some negative: the total passes 2^53 cents
		amount := schemas.FormatDecimal(cents, 2)
		switch i % 4 {
		case 1:
			amount = `"` + amount + `"`
		case 2:
			amount = fmt.Sprintf("%de-2", cents)
		}
		rate := ""
		if i%3 != 0 {
			r := rng.Int64N(2e9) - 1e9
			rate = fmt.Sprintf(`,"rate":%s`, schemas.FormatDecimal(r, 3))
			rateSum.Add(r)
		}
		if i%500 == 7 { // a third decimal: refused, not rounded
			amount, bad = amount+"1", bad+1
			if i%4 == 1 {
				amount = strings.TrimSuffix(amount, `"1`) + `1"`
			}
			if i%3 != 0 {
				rateSum.Add(-mustRate(t, rate, dec(9, 3)))
			}
		} else {
			amountSum.Add(cents)
			bigSum.Add(bigSum, big.NewInt(cents))
		}
		ts := to.Add(-time.Duration(rng.Int64N(int64(3 * time.Hour)))).Format(time.RFC3339Nano)
		id := fmt.Sprintf("m-%d", i)
		msgs = append(msgs, kafka.Message{Key: []byte(id), Value: fmt.Appendf(nil, `{"id":%q,"ts":%q,"amount":%s%s}`, id, ts, amount, rate)})
	}
	w := stream.NewWriter(brokers, topic)
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	end := endOffsets(t, brokers, topic)
	group := testenv.Name("compact")
	stop := runCompactor(t, compact.Config{Brokers: brokers, Group: group, Store: store,
		Schemas: []*schemas.Schema{s}, MaxFileRows: 500, MaxFileAge: time.Second, SessionTimeout: 6 * time.Second})
	waitCompacted(t, store, group, topic, end, 2*time.Minute)
	stop()

	dead, err := raw.ReadDeadLetters(context.Background(), store, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != bad {
		t.Errorf("%d dead letters, want the %d amounts with a third decimal", len(dead), bad)
	}
	for _, d := range dead {
		if !strings.Contains(d.Error, "more decimal places than the scale") {
			t.Errorf("dead letter %q: %s", d.Raw, d.Error)
		}
	}

	want, ok := amountSum.Value()
	if !ok || bigSum.Cmp(big.NewInt(want)) != 0 {
		t.Fatalf("our sum %d (ok %v), math/big %s", want, ok, bigSum)
	}
	wantRate, _ := rateSum.Value()
	check := func(when string) {
		t.Helper()
		got := duckdbQuery(t, python, store, s.Name, `SELECT any_value(typeof(amount)), any_value(typeof(rate)), CAST(sum(amount) AS VARCHAR),
			CAST(sum(rate) AS VARCHAR), count(*)`)
		if len(got) != 1 {
			t.Fatalf("%s: duckdb: %v", when, got)
		}
		r := got[0]
		if r[0] != "DECIMAL(18,2)" || r[1] != "DECIMAL(9,3)" {
			t.Errorf("%s: DuckDB reads amount as %v and rate as %v, want DECIMAL(18,2) and DECIMAL(9,3)", when, r[0], r[1])
		}
		if r[2] != schemas.FormatDecimal(want, 2) || r[3] != schemas.FormatDecimal(wantRate, 3) {
			t.Errorf("%s: DuckDB sum(amount) = %v, sum(rate) = %v; ours %s and %s", when, r[2], r[3], schemas.FormatDecimal(want, 2), schemas.FormatDecimal(wantRate, 3))
		}
		if r[4] != fmt.Sprint(n-bad) {
			t.Errorf("%s: DuckDB counts %v rows, want %d", when, r[4], n-bad)
		}
	}
	check("compacted")
	// The merge job rewrites the hours' files through the same layout.
	written := 0
	for h := range 3 {
		res, err := compact.Merge(context.Background(), store, s, to.Add(-time.Duration(h+1)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		written += res.Written
	}
	if written == 0 {
		t.Fatal("merge wrote no file")
	}
	check("merged")
	if want < 1<<53 {
		t.Errorf("the total %d cents is below 2^53: float64 would still be exact", want)
	}
}

// mustRate is the scaled value of a `,"rate":x` fragment.
func mustRate(t *testing.T, frag string, typ schemas.Type) int64 {
	t.Helper()
	v, err := schemas.ParseDecimal([]byte(strings.TrimPrefix(frag, `,"rate":`)), typ)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// duckdbQuery runs `<selectList> FROM` the schema's raw lake (copied to a
// folder) in DuckDB and returns its rows, every value as text.
func duckdbQuery(t *testing.T, python string, store lake.Store, schema, selectList string) [][]string {
	t.Helper()
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
	query := fmt.Sprintf(`%s FROM read_parquet('%s/raw/%s/*/*/*.parquet', hive_partitioning = 1)`, selectList, dir, schema)
	script := `import duckdb, json, sys
rows = duckdb.connect().execute(sys.argv[1]).fetchall()
print(json.dumps([[str(v) for v in r] for r in rows]))`
	out, err := exec.Command(python, "-c", script, query).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("duckdb: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("duckdb: %v (run `make duckdb`)", err)
	}
	var rows [][]string
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output %q: %v", out, err)
	}
	return rows
}
