package agreement

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
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
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

// extremeSeed is the randomized test's seed: AGREE_SEED if set (a number,
// or "random" for one from the clock), else a fixed one. The test logs it;
// AGREE_SEED=N reruns exactly that input.
func extremeSeed(t *testing.T) uint64 {
	t.Helper()
	s := os.Getenv("AGREE_SEED")
	switch s {
	case "":
		return 20261130
	case "random":
		return uint64(time.Now().UnixNano())
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("AGREE_SEED=%q: want a number or random", s)
	}
	return n
}

// extremeSchema has no id: batch drops no duplicate, so an event sent
// twice counts twice in both layers and duplicates can be part of the
// input. Optional int64 and float64 fields give cells where no event
// carried a value (null metrics).
func extremeSchema(t *testing.T, topic string) *schemas.Schema {
	t.Helper()
	s, err := schemas.NewSchema("extreme", topic, "ts", "", []schemas.Field{
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String},
		{Name: "coupon", Type: schemas.String, Optional: true},
		{Name: "user", Type: schemas.String},
		{Name: "qty", Type: schemas.Int64},
		{Name: "amount", Type: schemas.Float64},
		{Name: "bonus", Type: schemas.Int64, Optional: true},
		{Name: "score", Type: schemas.Float64, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Retention = 30 * 24 * time.Hour // events 40 days old are expired in both layers
	return s
}

func extremeView(name string, s *schemas.Schema) *schemas.View {
	var ms []schemas.Metric
	ms = append(ms, schemas.Metric{Name: "n", Agg: schemas.Count})
	for _, f := range []string{"qty", "amount", "bonus", "score"} {
		for _, a := range []schemas.Agg{schemas.Sum, schemas.Min, schemas.Max, schemas.Uniq} {
			ms = append(ms, schemas.Metric{Name: f + "_" + a.String(), Agg: a, Field: f})
		}
	}
	ms = append(ms, schemas.Metric{Name: "users", Agg: schemas.Uniq, Field: "user"})
	return &schemas.View{Name: name, Schema: s, Granularity: 5 * time.Minute,
		Dimensions: []string{"tenant", "coupon"}, Metrics: ms,
		HotRetention: 48 * time.Hour, Lateness: 5 * time.Minute}
}

// extremeInt is an int64 metric value: mostly ordinary, often at or near
// either limit, or far beyond 2^53, so some cells' sums overflow and some
// do not.
func extremeInt(r *rand.Rand) int64 {
	switch r.IntN(10) {
	case 0:
		return math.MaxInt64 - r.Int64N(1000)
	case 1:
		return math.MinInt64 + r.Int64N(1000)
	case 2:
		return r.Int64N(1<<62) - 1<<61
	case 3:
		return 0
	}
	return r.Int64N(2000) - 1000
}

// extremeFloat is a float64 metric value: ordinary, near ±1e308 (two of
// one sign overflow a sum), ±MaxFloat64, subnormal, zero.
func extremeFloat(r *rand.Rand) float64 {
	sign := 1.0
	if r.IntN(2) == 0 {
		sign = -1
	}
	switch r.IntN(12) {
	case 0:
		return sign * (0.5 + r.Float64()) * 1e308
	case 1:
		return sign * math.MaxFloat64
	case 2:
		return sign * math.SmallestNonzeroFloat64 * float64(1+r.IntN(1000))
	case 3:
		return sign * r.Float64() * math.Pow(10, -float64(r.IntN(300)))
	case 4:
		return sign * 0 // -0 as well: equal to 0 as a number
	}
	return math.Round(r.NormFloat64()*1e6) / 1e3
}

type extremeEvent struct {
	json     []byte
	ts       time.Time
	admitted bool // by the schema's admission rule at generation time
}

// genExtremes makes n events in [from, to), plus a share far in the
// future and far in the past (never admitted), and sends a share of them
// twice.
func genExtremes(s *schemas.Schema, n int, from, to, now time.Time, seed uint64) []extremeEvent {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tenants := []string{"acme", "", "é,{x}"}
	var out []extremeEvent
	for i := range n {
		ts := from.Add(time.Duration(r.Int64N(int64(to.Sub(from)/time.Microsecond))) * time.Microsecond)
		switch r.IntN(40) {
		case 0:
			ts = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		case 1:
			ts = now.Add(time.Hour)
		case 2:
			ts = now.Add(-40 * 24 * time.Hour)
		case 3:
			ts = time.Unix(0, 0).UTC()
		}
		tenant := tenants[r.IntN(len(tenants))]
		optional := 3 // one event in 3 carries each optional field…
		if tenant == "" {
			optional = 12 // …one in 12 for this tenant, so some cells have none (null metrics)
		}
		var b strings.Builder
		fmt.Fprintf(&b, `{"ts":%q,"tenant":%q`, ts.Format(time.RFC3339Nano), tenant)
		if r.IntN(2) == 0 {
			b.WriteString(`,"coupon":"c"`)
		}
		fmt.Fprintf(&b, `,"user":"u%d","qty":%d,"amount":%s`, r.IntN(500), extremeInt(r), strconv.FormatFloat(extremeFloat(r), 'g', -1, 64))
		if r.IntN(optional) == 0 {
			fmt.Fprintf(&b, `,"bonus":%d`, extremeInt(r))
		}
		if r.IntN(optional) == 0 {
			fmt.Fprintf(&b, `,"score":%s`, strconv.FormatFloat(extremeFloat(r), 'g', -1, 64))
		}
		fmt.Fprintf(&b, `,"i":%d}`, i) // an extra field: both layers ignore it
		e := extremeEvent{json: []byte(b.String()), ts: ts,
			admitted: s.Admit(ts.UnixMicro(), now.UnixMicro()) == schemas.Admitted}
		out = append(out, e)
		if r.IntN(20) == 0 { // a duplicate, now or a little later
			out = append(out, e)
		}
	}
	return out
}

// TestRandomExtremesAgree feeds random events with extreme values to the
// speed layer (a real worker, Kafka and Redis) and to batch's hour
// aggregation (recompute's code over raw files written as the compactor
// writes them, overlapping files included) and asserts every cell equal
// for every metric kind, overflow flags included, and equal to an exact
// reference (math/big) computed here. The events carry int64 values at
// and near both limits, floats near ±1e308, ±MaxFloat64, subnormals and
// zeros, optional fields often absent (null metrics), duplicates (counted
// by both: the schema has no id), and event times far in the future or
// past (skipped by the speed layer and never in a raw file). Neither layer
// may stop: the worker runs on to the topic's end without a rejected
// flush and recompute returns no error. It runs over both Redis set-ups
// (single, cluster).
func TestRandomExtremesAgree(t *testing.T) {
	seed := extremeSeed(t)
	t.Logf("seed %d (rerun with AGREE_SEED=%d)", seed, seed)
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) { randomExtremesAgree(t, rs.Client(t), seed) })
	}
}

func randomExtremesAgree(t *testing.T, rdb redis.UniversalClient, seed uint64) {
	brokers := testenv.KafkaBrokers(t)
	ctx := context.Background()

	topic := testenv.Topic(t, brokers, 2)
	s := extremeSchema(t, topic)
	v := extremeView(strings.ReplaceAll(testenv.Name("extreme"), "-", "_"), s)
	t.Cleanup(func() { testenv.DeleteRedisKeys(context.Background(), rdb, "ll:{"+v.Name+"*") })
	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	from, to := H.Add(-2*time.Hour), H
	events := genExtremes(s, 3000, from, to, now, seed)

	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		msgs[i] = kafka.Message{Value: e.json}
	}
	w := stream.NewWriter(brokers, topic)
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	reg := prometheus.NewRegistry()
	worker, err := speed.New(speed.Config{Brokers: brokers, Group: testenv.Name("extreme"), Views: []*schemas.View{v}, Redis: rdb,
		FlushInterval: 50 * time.Millisecond, MaxPending: 200, Registerer: reg})
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

	var admitted, future, expired int
	for _, e := range events {
		switch {
		case e.admitted:
			admitted++
		case e.ts.After(now):
			future++
		default:
			expired++
		}
	}
	// The worker reaches the topic's end (it never stalls on a flush),
	// and counts exactly the admitted events.
	ends := map[int]int64{}
	for p := range 2 {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		ends[p], err = conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		offs, err := speed.StoredOffsets(ctx, rdb, v)
		if err != nil {
			t.Fatal(err)
		}
		if offs[0] == ends[0] && offs[1] == ends[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("speed offsets %v after 2 minutes, topic ends %v: the worker stalled", offs, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cells, err := speed.ReadCells(ctx, rdb, v, from, to)
	if err != nil {
		t.Fatal(err)
	}
	skips := skipCounts(t, reg, v.Name)
	if skips[speed.SkipFuture] != float64(future) || skips[speed.SkipExpired] != float64(expired) || skips[speed.SkipRejected] != 0 {
		t.Errorf("speed skips %v; want future=%d expired=%d and no rejected flush", skips, future, expired)
	}

	// Batch: the admitted events as raw files, each hour in two files
	// whose offset ranges overlap (a crash between upload and checkpoint).
	store, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeOverlapping(t, store, s, events)
	var batchRows []views.Row
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		rows, err := recompute.ComputeHourRows(ctx, store, v, h)
		if err != nil {
			t.Fatalf("recompute of hour %v: %v", h, err)
		}
		batchRows = append(batchRows, rows...)
	}

	ref := extremeReference(t, v, events)
	compareExtremes(t, v, ref, batchRows, cells)
	t.Logf("%d events sent (%d admitted, %d future, %d expired, duplicates included), %d cells", len(events), admitted, future, expired, len(ref))
}

func skipCounts(t *testing.T, reg *prometheus.Registry, view string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "lambdalake_speed_skipped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var v, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "view":
					v = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			if v == view {
				out[reason] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// writeOverlapping writes the admitted events as the compactor would:
// partition 0, offset = position in events, one file per event hour — and
// then a second file per hour that repeats the last third of the first
// file's offsets and goes on to the hour's end. Each file holds every
// record of its hour within its offset range (raw.FilePlan's invariant);
// readers must read each overlapping record once.
func writeOverlapping(t *testing.T, store lake.Store, s *schemas.Schema, events []extremeEvent) {
	t.Helper()
	dec := schemas.NewDecoder(s)
	layout := s.RawLayout()
	type hrow struct {
		off int64
		row parquet.Row
	}
	hours := map[time.Time][]hrow{}
	for i, e := range events {
		if !e.admitted {
			continue
		}
		var row schemas.Row
		if err := dec.Decode(e.json, &row); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		h := e.ts.UTC().Truncate(time.Hour)
		hours[h] = append(hours[h], hrow{int64(i), layout.AppendRow(nil, &row, 0, int64(i), s.TimeMicros(&row))})
	}
	put := func(h time.Time, rows []hrow) {
		prows := make([]parquet.Row, len(rows))
		for i, r := range rows {
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
		key := lake.RawFile{Schema: s.Name, Hour: h, Topic: s.Topic, Partition: 0, First: rows[0].off, Last: rows[len(rows)-1].off}.Key()
		if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	for h, rows := range hours {
		slices.SortFunc(rows, func(a, b hrow) int { return cmp.Compare(a.off, b.off) })
		cut := len(rows) * 2 / 3
		if cut == 0 || cut == len(rows) {
			put(h, rows)
			continue
		}
		put(h, rows[:cut])
		put(h, rows[cut/2:])
	}
}

// exact is one metric of a reference cell, computed exactly.
type exact struct {
	n          int
	pos, neg   *big.Float // sums of the positive and negative values, exact
	min, max   float64    // as float64 (int metrics too: compared as int64 below)
	imin, imax int64
	// Bounds of the rounding error float64 addition can make in each
	// part near MaxFloat64, whatever the order: one addition errs by at
	// most half an ulp of its result (2^970 there) and at most its smaller
	// operand, so the sum of min(|x|, 2^970) over the part's values but
	// its largest one.
	posErr, negErr     *big.Float
	posLarge, negLarge *big.Float // the largest min(|x|, 2^970) of each part
}

type refCell struct {
	n       int64
	metrics []*exact
}

func extremeReference(t *testing.T, v *schemas.View, events []extremeEvent) map[string]*refCell {
	t.Helper()
	s := v.Schema
	dec := schemas.NewDecoder(s)
	ref := map[string]*refCell{}
	for _, e := range events {
		if !e.admitted {
			continue
		}
		var row schemas.Row
		if err := dec.Decode(e.json, &row); err != nil {
			t.Fatal(err)
		}
		dims := make([]schemas.Value, len(v.Dimensions))
		for i, d := range v.Dimensions {
			dims[i] = row.Values[s.FieldIndex(d)]
		}
		key := cellKey(v, v.Bucket(s.TimeMicros(&row)), dims)
		c := ref[key]
		if c == nil {
			c = &refCell{metrics: make([]*exact, len(v.Metrics))}
			ref[key] = c
		}
		c.n++
		for mi, m := range v.Metrics {
			if m.Agg == schemas.Count {
				continue
			}
			x := row.Values[s.FieldIndex(m.Field)]
			if x.Null {
				continue
			}
			ex := c.metrics[mi]
			if ex == nil {
				ex = &exact{pos: new(big.Float).SetPrec(4096), neg: new(big.Float).SetPrec(4096),
					posErr: new(big.Float).SetPrec(4096), negErr: new(big.Float).SetPrec(4096),
					posLarge: new(big.Float).SetPrec(4096), negLarge: new(big.Float).SetPrec(4096),
					min: math.Inf(1), max: math.Inf(-1), imin: math.MaxInt64, imax: math.MinInt64}
				c.metrics[mi] = ex
			}
			ex.n++
			if m.Agg == schemas.Uniq {
				continue // only whether the cell has a value
			}
			var bf *big.Float
			if v.MetricType(m) == schemas.Float64 {
				bf = new(big.Float).SetPrec(4096).SetFloat64(x.Float)
				ex.min, ex.max = math.Min(ex.min, x.Float), math.Max(ex.max, x.Float)
			} else {
				bf = new(big.Float).SetPrec(4096).SetInt64(x.Int)
				ex.imin, ex.imax = min(ex.imin, x.Int), max(ex.imax, x.Int)
			}
			errBound := new(big.Float).SetPrec(4096).Abs(bf)
			if errBound.Cmp(halfUlpMax) > 0 {
				errBound.Set(halfUlpMax)
			}
			if bf.Sign() >= 0 {
				ex.pos.Add(ex.pos, bf)
				ex.posErr.Add(ex.posErr, errBound)
				if errBound.Cmp(ex.posLarge) > 0 {
					ex.posLarge.Set(errBound)
				}
			} else {
				ex.neg.Add(ex.neg, bf)
				ex.negErr.Add(ex.negErr, errBound)
				if errBound.Cmp(ex.negLarge) > 0 {
					ex.negLarge.Set(errBound)
				}
			}
		}
	}
	return ref
}

var (
	bigMaxInt   = new(big.Float).SetPrec(4096).SetInt64(math.MaxInt64)
	bigMinInt   = new(big.Float).SetPrec(4096).SetInt64(math.MinInt64)
	bigMaxFloat = new(big.Float).SetPrec(4096).SetFloat64(math.MaxFloat64)
	halfUlpMax  = new(big.Float).SetPrec(4096).SetMantExp(big.NewFloat(1), 970) // half an ulp of MaxFloat64
	// roundsToInf is where float64 rounding of an exact sum turns to +Inf:
	// halfway between MaxFloat64 and 2^1024 (a tie rounds to even, 2^1024).
	roundsToInf = new(big.Float).SetPrec(4096).Add(bigMaxFloat, halfUlpMax)
)

// overflows is the exact verdict of the overflow rule (schemas/sum.go) on
// a cell's parts: a part alone leaves the type's range — for floats, its
// float64 sum reaches ±Inf. Float64 addition rounds, so a float part whose
// exact value lies within its rounding error bound of where rounding turns
// to Inf may overflow in one order of addition and not in another: such a
// part is an edge, and the verdict is not defined there.
func (ex *exact) overflows(float bool) (over, edge bool) {
	if !float {
		return ex.pos.Cmp(bigMaxInt) > 0 || ex.neg.Cmp(bigMinInt) < 0, false
	}
	for _, p := range []struct{ part, bound, large *big.Float }{{ex.pos, ex.posErr, ex.posLarge}, {ex.neg, ex.negErr, ex.negLarge}} {
		a := new(big.Float).SetPrec(4096).Abs(p.part)
		d := new(big.Float).SetPrec(4096).Sub(a, roundsToInf)
		bound := new(big.Float).SetPrec(4096).Sub(p.bound, p.large)
		if new(big.Float).SetPrec(4096).Abs(d).Cmp(bound) <= 0 {
			edge = true
		}
		if d.Sign() >= 0 {
			over = true
		}
	}
	return over, edge
}

func emptySketch(b []byte) bool {
	sk, err := hll.Unmarshal(b)
	return err == nil && sk.Empty()
}

func flag(f []bool, i int) bool { return f != nil && f[i] }

func compareExtremes(t *testing.T, v *schemas.View, ref map[string]*refCell, batchRows []views.Row, cells []speed.StoredCell) {
	t.Helper()
	speedBy := map[string]*speed.StoredCell{}
	for i := range cells {
		speedBy[cellKey(v, cells[i].Bucket, cells[i].Dims)] = &cells[i]
	}
	batchBy := map[string]*views.Row{}
	for i := range batchRows {
		batchBy[cellKey(v, batchRows[i].T, batchRows[i].Dims)] = &batchRows[i]
	}
	if len(batchBy) != len(ref) || len(speedBy) != len(ref) {
		t.Errorf("cells: reference %d, batch %d, speed %d", len(ref), len(batchBy), len(speedBy))
	}
	seen := map[string]int{} // what was compared, to prove the input reached every case
	bad := 0
	fail := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	keys := make([]string, 0, len(ref))
	for k := range ref {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		rc, br, sc := ref[key], batchBy[key], speedBy[key]
		if br == nil || sc == nil {
			fail("cell %s: in batch %v, in speed %v", key, br != nil, sc != nil)
			continue
		}
		for mi, m := range v.Metrics {
			typ := v.MetricType(m)
			b, s := br.Values[mi], sc.Values[mi]
			bo, so := flag(br.Overflow, mi), flag(sc.Overflow, mi)
			name := fmt.Sprintf("cell %s %s", key, m.Name)
			if m.Agg == schemas.Uniq {
				// The figures differ by design (batch counts exactly at the
				// stored grain, speed estimates); the sketches must not.
				if b.Null != s.Null {
					fail("%s: batch %+v, speed %+v", name, b, s)
				}
				switch {
				case rc.metrics[mi] == nil && m.Field != "" && rc.n > 0 && len(sc.HLL[mi]) == 0 && emptySketch(br.HLL[mi]):
					// No event of the cell carried the field: the speed
					// layer has no sketch, batch stores an empty one; both
					// estimate 0 and merge as nothing.
					seen["uniq of no value"]++
				case !bytes.Equal(br.HLL[mi], sc.HLL[mi]) || len(br.HLL[mi]) == 0:
					fail("%s: sketches differ (batch %d bytes, speed %d)", name, len(br.HLL[mi]), len(sc.HLL[mi]))
				default:
					seen["uniq"]++
				}
				continue
			}
			if bo != so {
				fail("%s: overflow batch %v, speed %v", name, bo, so)
				continue
			}
			if m.Agg == schemas.Count {
				if b.Null || s.Null || b.Int != rc.n || s.Int != rc.n {
					fail("%s: batch %+v, speed %+v, want %d", name, b, s, rc.n)
				}
				seen["count"]++
				continue
			}
			ex := rc.metrics[mi]
			if ex == nil { // no event of the cell carried the field
				if !b.Null || !s.Null || bo {
					fail("%s: batch %+v (overflow %v), speed %+v; want null", name, b, bo, s)
				}
				seen["null"]++
				continue
			}
			float := typ == schemas.Float64
			switch m.Agg {
			case schemas.Sum:
				over, edge := ex.overflows(float)
				kind := fmt.Sprintf("sum %s overflow=%v", typ, over)
				if edge {
					seen["sum float at the edge"]++
					t.Logf("%s: a part within its rounding error of float64's overflow: both layers say overflow=%v", name, bo)
					continue
				}
				if bo != over {
					fail("%s: both layers say overflow=%v, the exact rule %v", name, bo, over)
					continue
				}
				seen[kind]++
				if over {
					if !b.Null || !s.Null {
						fail("%s: overflowed, yet batch %+v speed %+v (want null)", name, b, s)
					}
					continue
				}
				want := new(big.Float).Add(ex.pos, ex.neg)
				if float {
					w, _ := want.Float64()
					// The layers add in different orders: a relative error
					// of the larger part, not of the (cancelled) result.
					p, _ := ex.pos.Float64()
					n, _ := ex.neg.Float64()
					tol := 2e-12 * max(p, -n)
					if b.Null || s.Null || math.Abs(b.Float-s.Float) > tol || math.Abs(b.Float-w) > tol {
						fail("%s: batch %v, speed %v, exact %v (tolerance %g)", name, b.Float, s.Float, w, tol)
					}
				} else {
					w, _ := want.Int64()
					if b.Null || s.Null || b.Int != w || s.Int != w {
						fail("%s: batch %+v, speed %+v, want %d", name, b, s, w)
					}
				}
			case schemas.Min, schemas.Max:
				seen[fmt.Sprintf("%s %s", m.Agg, typ)]++
				if float {
					w := ex.min
					if m.Agg == schemas.Max {
						w = ex.max
					}
					// Equal as numbers; the layers may keep either zero of ±0.
					if b.Null || s.Null || b.Float != w || s.Float != w {
						fail("%s: batch %v, speed %v, want %v", name, b.Float, s.Float, w)
					}
				} else {
					w := ex.imin
					if m.Agg == schemas.Max {
						w = ex.imax
					}
					if b.Null || s.Null || b.Int != w || s.Int != w {
						fail("%s: batch %+v, speed %+v, want %d", name, b, s, w)
					}
				}
			}
		}
	}
	for key := range speedBy {
		if ref[key] == nil {
			fail("cell %s: in speed, not in the reference", key)
		}
	}
	for key := range batchBy {
		if ref[key] == nil {
			fail("cell %s: in batch, not in the reference", key)
		}
	}
	if bad > 0 {
		t.Errorf("%d differences over %d cells", bad, len(ref))
	}
	// The input reached every case: each metric kind compared, sums both
	// overflowed and not, nulls.
	for _, k := range []string{"count", "uniq", "uniq of no value", "null",
		"sum int64 overflow=true", "sum int64 overflow=false", "sum float64 overflow=true", "sum float64 overflow=false",
		"min int64", "max int64", "min float64", "max float64"} {
		if seen[k] == 0 {
			t.Errorf("no cell compared %q", k)
		}
	}
	t.Logf("compared: %v", seen)
}
