package agreement

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// agreeSchema has a field of every type, as dimensions (string, int64,
// bool, an optional string that is often null) and under every metric.
func agreeSchema(t *testing.T, topic string) *schemas.Schema {
	t.Helper()
	dec := func(p, s int) schemas.Type {
		typ, err := schemas.DecimalType(p, s)
		if err != nil {
			t.Fatal(err)
		}
		return typ
	}
	s, err := schemas.NewSchema("agree", topic, "ts", "id", []schemas.Field{
		{Name: "id", Type: schemas.String},
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String},
		{Name: "region", Type: schemas.Int64},
		{Name: "paid", Type: schemas.Bool},
		{Name: "coupon", Type: schemas.String, Optional: true},
		{Name: "user", Type: schemas.String},
		{Name: "qty", Type: schemas.Int64},
		{Name: "amount", Type: schemas.Float64},
		{Name: "score", Type: schemas.Float64, Optional: true},
		{Name: "tiny", Type: schemas.Float64},
		{Name: "price", Type: dec(18, 2)},
		{Name: "rate", Type: dec(9, 3), Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func agreeView(name string, s *schemas.Schema) *schemas.View {
	m := func(name string, agg schemas.Agg, field string) schemas.Metric {
		return schemas.Metric{Name: name, Agg: agg, Field: field}
	}
	return &schemas.View{Name: name, Schema: s, Granularity: 5 * time.Minute,
		Dimensions: []string{"tenant", "region", "paid", "coupon"},
		Metrics: []schemas.Metric{
			m("n", schemas.Count, ""),
			m("qty_sum", schemas.Sum, "qty"), m("qty_min", schemas.Min, "qty"), m("qty_max", schemas.Max, "qty"),
			m("amt_sum", schemas.Sum, "amount"), m("amt_min", schemas.Min, "amount"), m("amt_max", schemas.Max, "amount"),
			m("score_min", schemas.Min, "score"), m("score_max", schemas.Max, "score"), m("score_sum", schemas.Sum, "score"),
			m("u_user", schemas.Uniq, "user"), m("u_qty", schemas.Uniq, "qty"), m("u_amt", schemas.Uniq, "amount"),
			m("u_paid", schemas.Uniq, "paid"), m("u_ts", schemas.Uniq, "ts"),
			// A sum over tiny values too: the speed layer adds float sums
			// in doubles and stores them with 17 significant digits, so
			// values far below 1e-17 survive (HINCRBYFLOAT kept 17
			// decimal places and read 0 for them).
			m("tiny_min", schemas.Min, "tiny"), m("tiny_max", schemas.Max, "tiny"), m("u_tiny", schemas.Uniq, "tiny"),
			m("tiny_sum", schemas.Sum, "tiny"),
			// Exact decimals: scaled int64s in both layers, sums under the
			// overflow rule (the "rich" cells overflow), printed with
			// their scale.
			m("price_sum", schemas.Sum, "price"), m("price_min", schemas.Min, "price"), m("price_max", schemas.Max, "price"),
			m("u_price", schemas.Uniq, "price"),
			m("rate_sum", schemas.Sum, "rate"), m("rate_min", schemas.Min, "rate"), m("rate_max", schemas.Max, "rate"),
		},
		HotRetention: 48 * time.Hour, Lateness: 5 * time.Minute}
}

// event is one generated event: its JSON and its event time.
type event struct {
	json []byte
	ts   time.Time
}

// genEvents makes n events with unique ids (batch drops duplicate ids, the
// speed layer counts them: this test is about the shared rules, so there
// are none) and event times in [from, to). Decimal prices come as JSON
// numbers, strings and exponent forms, some near decimal(18,2)'s largest;
// the last richN events put that largest price ten times into each of
// four cells of tenant "rich" at the same time, so their sums overflow
// int64 in both layers.
func genEvents(n int, from, to time.Time, seed uint64) []event {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tenants := []string{"acme", "a,b", "x:y{z}", "é %2C", ""}
	out := make([]event, n)
	for i := range out {
		ts := from.Add(time.Duration(r.Int64N(int64(to.Sub(from)/time.Microsecond))) * time.Microsecond)
		var b strings.Builder
		fmt.Fprintf(&b, `{"id":"e%d","ts":%q,"tenant":%q,"region":%d,"paid":%t`, i, ts.Format(time.RFC3339Nano),
			tenants[r.IntN(len(tenants))], r.IntN(5)-2, r.IntN(2) == 1)
		if r.IntN(3) > 0 {
			fmt.Fprintf(&b, `,"coupon":"c%d"`, r.IntN(2))
		}
		qty := r.Int64N(2000) - 500
		if r.IntN(50) == 0 {
			qty = r.Int64N(1<<60) - 1<<59 // far beyond 2^53
		}
		amount := math.Round(r.NormFloat64()*1e6) / 1e3
		switch r.IntN(40) {
		case 0:
			amount = -r.Float64() * 1e300
		case 1:
			amount = 0.1 + 0.2 // not exactly 0.3
		}
		tiny := (r.Float64() - 0.5) * math.Pow(10, -float64(r.IntN(320)))
		fmt.Fprintf(&b, `,"user":"u%d","qty":%d,"amount":%s,"tiny":%s`, r.IntN(300), qty,
			strconv.FormatFloat(amount, 'g', -1, 64), strconv.FormatFloat(tiny, 'g', -1, 64))
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, `,"score":%s`, strconv.FormatFloat(r.Float64()*100, 'g', -1, 64))
		}
		cents := r.Int64N(200000) - 50000
		if r.IntN(50) == 0 {
			cents = r.Int64N(2*maxCents+1) - maxCents // far beyond 2^53 cents
		}
		if i >= n-richN {
			ts = from.Add(time.Minute)
			b.Reset()
			fmt.Fprintf(&b, `{"id":"e%d","ts":%q,"tenant":"rich","region":%d,"paid":true`, i, ts.Format(time.RFC3339Nano), i%4)
			fmt.Fprintf(&b, `,"user":"u1","qty":1,"amount":1,"tiny":0`)
			cents = maxCents
		}
		switch r.IntN(3) {
		case 0:
			fmt.Fprintf(&b, `,"price":%s`, schemas.FormatDecimal(cents, 2))
		case 1:
			fmt.Fprintf(&b, `,"price":"%s"`, schemas.FormatDecimal(cents, 2))
		default:
			fmt.Fprintf(&b, `,"price":%de-2`, cents)
		}
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, `,"rate":%s`, schemas.FormatDecimal(r.Int64N(2e9)-1e9, 3))
		}
		b.WriteString("}")
		out[i] = event{json: []byte(b.String()), ts: ts}
	}
	return out
}

// maxCents is decimal(18,2)'s largest value, scaled; richN is the number
// of events whose prices overflow their cells' sums (ten per cell).
const (
	maxCents = 999999999999999999
	richN    = 40
)

// TestSpeedAndBatchCellsAgree feeds the same events to the speed layer and
// to batch's hour aggregation and asserts every cell is equal: the same
// cells exist, count, int64 and decimal sum/min/max are equal (a decimal
// exactly, as its scaled int64; an overflowed sum in both layers or in
// neither), float64 min/max are
// equal bit for bit, float64 sums to a relative 1e-9 (the two layers add
// them in different orders, see the speed package doc), nulls where no
// event carried a value, and every uniq sketch is byte-equal (batch's
// internal/hll sketch against the speed layer's Redis HyperLogLog read back
// with speed.ReadCells): the two layers hashed the same text for every
// value, so a change to one side's uniq element fails here. DuckDB's
// SUM/MIN/MAX over the same raw lake's DECIMAL columns then print every
// decimal cell's figures with the same digits (where our sum overflowed,
// DuckDB's exact sum lies beyond int64).
func TestSpeedAndBatchCellsAgree(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{testenv.RedisAddr(t)}})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()

	topic := testenv.Topic(t, brokers, 2)
	s := agreeSchema(t, topic)
	v := agreeView(strings.ReplaceAll(testenv.Name("agree"), "-", "_"), s)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), "ll:{"+v.Name+"}:*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	H := time.Now().UTC().Truncate(time.Hour)
	from, to := H.Add(-2*time.Hour), H
	events := genEvents(4000, from, to, 17)

	// Speed: the worker consumes the events from Kafka and applies them
	// to Redis.
	w := stream.NewWriter(brokers, topic)
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		msgs[i] = kafka.Message{Value: e.json}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	worker, err := speed.New(speed.Config{Brokers: brokers, Group: testenv.Name("agree"), Views: []*schemas.View{v}, Redis: rdb,
		FlushInterval: 50 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(wctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("speed worker: %v", err)
		}
	}()
	speedRows, sketches := waitCounted(t, rdb, v, from, to, len(events))

	// Batch: the same events as raw files in a local lake, aggregated hour
	// by hour by recompute's code.
	lakeDir := t.TempDir()
	store, err := lake.NewDirStore(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, store, s, events)
	var batchRows []views.Row
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		rows, err := recompute.ComputeHourRows(ctx, store, v, h)
		if err != nil {
			t.Fatal(err)
		}
		batchRows = append(batchRows, rows...)
	}

	compareCells(t, v, batchRows, speedRows, sketches)
	compareDuckDB(t, v, lakeDir, batchRows)
}

// waitCounted waits until the speed layer counts n events in [from, to)
// and returns its cells, as rows and as sketches, read at the stored grain
// from the layout (speed.ReadCells) with every shard merged.
func waitCounted(t *testing.T, rdb redis.UniversalClient, v *schemas.View, from, to time.Time, n int) ([]speed.Row, []speed.SketchRow) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		cells, err := speed.ReadCells(context.Background(), rdb, v, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, c := range cells {
			got += c.Values[0].Int
		}
		if got == int64(n) {
			rows := make([]speed.Row, len(cells))
			sketches := make([]speed.SketchRow, len(cells))
			for i, c := range cells {
				ts := time.UnixMicro(c.Bucket).UTC()
				rows[i] = speed.Row{T: ts, Dims: c.Dims, Values: c.Values, Overflow: c.Overflow}
				sketches[i] = speed.SketchRow{T: ts, Dims: c.Dims, HLL: c.HLL}
			}
			return rows, sketches
		}
		if time.Now().After(deadline) {
			t.Fatalf("the speed layer counts %d of %d events after 90s", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cellKey names a cell by its bucket and dimension values.
func cellKey(v *schemas.View, t int64, dims []schemas.Value) string {
	var b strings.Builder
	b.WriteString(time.UnixMicro(t).UTC().Format(time.RFC3339))
	for i, d := range dims {
		f, _ := v.Schema.Field(v.Dimensions[i])
		b.WriteByte('|')
		if d.Null {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.Quote(schemas.FormatDimValue(f.Type, d)))
		}
	}
	return b.String()
}

func compareCells(t *testing.T, v *schemas.View, batchRows []views.Row, speedRows []speed.Row, sketches []speed.SketchRow) {
	t.Helper()
	speedByKey := map[string]*speed.Row{}
	for i := range speedRows {
		r := &speedRows[i]
		speedByKey[cellKey(v, r.T.UnixMicro(), r.Dims)] = r
	}
	sketchByKey := map[string]*speed.SketchRow{}
	for i := range sketches {
		r := &sketches[i]
		sketchByKey[cellKey(v, r.T.UnixMicro(), r.Dims)] = r
	}
	if len(batchRows) != len(speedRows) {
		t.Errorf("batch has %d cells, speed %d", len(batchRows), len(speedRows))
	}
	kinds := map[string]int{}
	bad := 0
	for _, br := range batchRows {
		key := cellKey(v, br.T, br.Dims)
		sr, sk := speedByKey[key], sketchByKey[key]
		if sr == nil || sk == nil {
			t.Errorf("cell %s: in batch, not in speed (row %v, sketches %v)", key, sr != nil, sk != nil)
			bad++
			continue
		}
		delete(speedByKey, key)
		for mi, m := range v.Metrics {
			typ := v.MetricType(m)
			b, s := br.Values[mi], sr.Values[mi]
			bo, so := br.Overflow != nil && br.Overflow[mi], sr.Overflow != nil && sr.Overflow[mi]
			var ok bool
			switch {
			case bo || so:
				ok = bo == so && b.Null && s.Null
				if ok {
					kinds[fmt.Sprintf("overflow %s %s", m.Agg, typ)]++
				}
			case m.Agg == schemas.Uniq:
				ok = bytes.Equal(br.HLL[mi], sk.HLL[mi]) && len(br.HLL[mi]) > 0
				if !ok {
					t.Errorf("cell %s %s: sketches differ: batch %d bytes %x…, speed %d bytes %x…", key, m.Name,
						len(br.HLL[mi]), head(br.HLL[mi]), len(sk.HLL[mi]), head(sk.HLL[mi]))
				}
			case b.Null || s.Null:
				ok = b.Null == s.Null
			case typ == schemas.Float64 && m.Agg == schemas.Sum:
				ok = math.Abs(b.Float-s.Float) <= 1e-9*math.Max(math.Abs(b.Float), 1e-300)
			case typ == schemas.Float64:
				ok = math.Float64bits(b.Float) == math.Float64bits(s.Float)
			default:
				ok = b.Int == s.Int
			}
			if !ok {
				bad++
				if bad <= 10 && m.Agg != schemas.Uniq {
					t.Errorf("cell %s %s: batch %+v, speed %+v", key, m.Name, b, s)
				}
				continue
			}
			if !b.Null {
				kinds[fmt.Sprintf("%s %s", m.Agg, typ)]++
			}
		}
	}
	for key := range speedByKey {
		t.Errorf("cell %s: in speed, not in batch", key)
		bad++
	}
	if bad > 0 {
		t.Fatalf("%d differences over %d cells", bad, len(batchRows))
	}
	// Every metric kind was compared on real values, nulls included.
	for _, k := range []string{"count int64", "sum int64", "min int64", "max int64", "sum float64", "min float64", "max float64", "uniq int64",
		"sum decimal(18,2)", "min decimal(18,2)", "max decimal(18,2)", "overflow sum decimal(18,2)",
		"sum decimal(9,3)", "min decimal(9,3)", "max decimal(9,3)"} {
		if kinds[k] == 0 {
			t.Errorf("no cell compared %s", k)
		}
	}
	t.Logf("%d cells agree; compared: %v", len(batchRows), kinds)
}

func head(b []byte) []byte { return b[:min(len(b), 12)] }

// compareDuckDB asks DuckDB for every cell's SUM, MIN and MAX of the
// decimal fields over the raw lake (DECIMAL columns, summed by DuckDB in
// DECIMAL(38,S)) and checks batch's figures print the same digits; where
// batch's sum overflowed, DuckDB's exact sum must lie beyond int64. The
// cells' figures are already known equal to the speed layer's.
func compareDuckDB(t *testing.T, v *schemas.View, lakeDir string, batchRows []views.Row) {
	t.Helper()
	python := testenv.DuckDBPython(t)
	query := fmt.Sprintf(`SELECT CAST(epoch_us(ts) // 300000000 * 300000000 AS VARCHAR), tenant, CAST(region AS VARCHAR), CAST(paid AS VARCHAR), coupon,
		CAST(sum(price) AS VARCHAR), CAST(min(price) AS VARCHAR), CAST(max(price) AS VARCHAR),
		CAST(sum(rate) AS VARCHAR), CAST(min(rate) AS VARCHAR), CAST(max(rate) AS VARCHAR), any_value(typeof(price)), any_value(typeof(rate))
		FROM read_parquet('%s/raw/%s/*/*/*.parquet', hive_partitioning = 1) GROUP BY ALL`, lakeDir, v.Schema.Name)
	script := `import duckdb, json, sys
rows = duckdb.connect().execute(sys.argv[1]).fetchall()
print(json.dumps([[None if x is None else str(x) for x in r] for r in rows]))`
	out, err := exec.Command(python, "-c", script, query).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("duckdb: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("duckdb: %v", err)
	}
	var rows [][]*string
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output %q: %v", out, err)
	}
	str := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	duck := map[string][]string{}
	for _, r := range rows {
		key := fmt.Sprintf("%s|%q|%q|%q|", str(r[0]), str(r[1]), str(r[2]), strings.ToLower(str(r[3])))
		if r[4] == nil {
			key += "null"
		} else {
			key += strconv.Quote(*r[4])
		}
		vals := make([]string, 6)
		for i := range vals {
			vals[i] = str(r[5+i])
		}
		if str(r[11]) != "DECIMAL(18,2)" || (r[12] != nil && str(r[12]) != "DECIMAL(9,3)") {
			t.Fatalf("DuckDB reads price as %s and rate as %s", str(r[11]), str(r[12]))
		}
		duck[key] = vals
	}
	names := []string{"price_sum", "price_min", "price_max", "rate_sum", "rate_min", "rate_max"}
	idx := make([]int, len(names))
	for i, n := range names {
		idx[i] = slices.IndexFunc(v.Metrics, func(m schemas.Metric) bool { return m.Name == n })
	}
	if len(duck) != len(batchRows) {
		t.Errorf("DuckDB has %d cells, batch %d", len(duck), len(batchRows))
	}
	bad, overflowed := 0, 0
	for _, br := range batchRows {
		var key strings.Builder
		fmt.Fprint(&key, br.T)
		for i, d := range br.Dims {
			f, _ := v.Schema.Field(v.Dimensions[i])
			key.WriteByte('|')
			if d.Null {
				key.WriteString("null")
			} else {
				key.WriteString(strconv.Quote(schemas.FormatDimValue(f.Type, d)))
			}
		}
		want, ok := duck[key.String()]
		if !ok {
			t.Errorf("cell %s: not in DuckDB's answer", key.String())
			bad++
			continue
		}
		for i, mi := range idx {
			typ := v.MetricType(v.Metrics[mi])
			x := br.Values[mi]
			got := "null"
			if !x.Null {
				got = schemas.FormatDecimal(x.Int, typ.Scale())
			}
			if br.Overflow != nil && br.Overflow[mi] {
				// DuckDB sums in DECIMAL(38,S): its exact sum must be one
				// int64 cannot hold.
				n, okN := new(big.Int).SetString(strings.Replace(want[i], ".", "", 1), 10)
				if !okN || n.IsInt64() {
					t.Errorf("cell %s %s: overflowed here, DuckDB sums %s", key.String(), names[i], want[i])
					bad++
				}
				overflowed++
				continue
			}
			if got != want[i] {
				bad++
				if bad <= 10 {
					t.Errorf("cell %s %s: batch and speed %s, DuckDB %s", key.String(), names[i], got, want[i])
				}
			}
		}
	}
	if overflowed == 0 {
		t.Error("no overflowed decimal sum was compared with DuckDB's")
	}
	if bad > 0 {
		t.Fatalf("%d differences from DuckDB over %d cells", bad, len(batchRows))
	}
}

// writeRaw writes the events into the raw lake as the compactor would: one
// file per event hour, partition 0, offsets = position in events.
func writeRaw(t *testing.T, store lake.Store, s *schemas.Schema, events []event) {
	t.Helper()
	dec := schemas.NewDecoder(s)
	layout := s.RawLayout()
	type hrow struct {
		t, off int64
		row    parquet.Row
	}
	hours := map[time.Time][]hrow{}
	for i, e := range events {
		var row schemas.Row
		if err := dec.Decode(e.json, &row); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		ts := s.TimeMicros(&row)
		h := e.ts.Truncate(time.Hour)
		hours[h] = append(hours[h], hrow{ts, int64(i), layout.AppendRow(nil, &row, 0, int64(i), ts)})
	}
	for h, rows := range hours {
		slices.SortFunc(rows, func(a, b hrow) int { return cmp.Compare(a.t, b.t) })
		first, last := rows[0].off, rows[0].off
		prows := make([]parquet.Row, len(rows))
		for i, r := range rows {
			first, last = min(first, r.off), max(last, r.off)
			prows[i] = r.row
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema)
		if _, err := w.WriteRows(prows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		key := lake.RawFile{Schema: s.Name, Hour: h, Topic: s.Topic, Partition: 0, First: first, Last: last}.Key()
		if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}
