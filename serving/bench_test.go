package serving

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// benchRows is one hour of a view at 1m grain with 200 dimension tuples
// per minute (10 tenants × 20 countries), each with a small uniq sketch:
// what a batch hour holds, in the order recompute writes it (time, then
// dimension values).
func benchRows(b *testing.B) []views.Row {
	var rows []views.Row
	for m := range 60 {
		for d := range 200 {
			var s hll.Sketch
			for u := range 4 {
				s.Add(fmt.Sprintf("u%d", (m*7+d*13+u)%5000))
			}
			rows = append(rows, views.Row{T: int64(m) * minute,
				Dims:   []schemas.Value{{Str: fmt.Sprintf("t%d", d/20)}, {Str: fmt.Sprintf("c%02d", d%20)}},
				Values: []schemas.Value{{Int: 4}, {Float: 12.5}, {Float: 9}, {Float: 1}, {Int: 4}, {Int: 3}},
				HLL:    [][]byte{nil, nil, nil, nil, s.Marshal(), nil}})
		}
	}
	return rows
}

// BenchmarkMergeHourTotals rolls an hour up to 1m totals: the work of one
// batch hour of the dashboard query (uniq through sketch unions).
func BenchmarkMergeHourTotals(b *testing.B) {
	v := testView("revenue", testSchema(b, "orders"))
	rows := benchRows(b)
	q := mq(v, time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		out, _, _ := merge(v, q, &mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1})
		if len(out) != 60 {
			b.Fatal(len(out))
		}
	}
}

// BenchmarkMergeHourShapes rolls a batch hour up to the shapes a dashboard
// mix asks for: every row its own group (1m by both dimensions), a few
// groups (15m by tenant) and one group per step (1h totals).
func BenchmarkMergeHourShapes(b *testing.B) {
	v := testView("revenue", testSchema(b, "orders"))
	rows := benchRows(b)
	for _, tt := range []struct {
		step    time.Duration
		groupBy []string
		want    int
	}{
		{time.Minute, []string{"tenant", "country"}, 60 * 200},
		{15 * time.Minute, []string{"tenant"}, 4 * 10},
		{time.Minute, []string{"country"}, 60 * 20},
		{time.Hour, nil, 1},
	} {
		b.Run(fmt.Sprintf("step=%v/group_by=%d", tt.step, len(tt.groupBy)), func(b *testing.B) {
			q := mq(v, tt.step)
			q.groupBy = tt.groupBy
			b.ReportAllocs()
			for b.Loop() {
				out, _, _ := merge(v, q, &mergeInput{viewRows: [][]views.Row{rows}, straddleT: -1})
				if len(out) != tt.want {
					b.Fatal(len(out))
				}
			}
		})
	}
}

// BenchmarkEncodeDayJSON encodes a day at 1m (1440 rows, every metric).
func BenchmarkEncodeDayJSON(b *testing.B) {
	v := testView("revenue", testSchema(b, "orders"))
	q := mq(v, time.Minute)
	q.from, q.to = time.Unix(0, 0).UTC(), time.Unix(86400, 0).UTC()
	ans := &answer{approx: make([]bool, len(v.Metrics)), batch: &span{q.from, q.to}}
	for m := range 1440 {
		ans.rows = append(ans.rows, outRow{t: int64(m) * minute,
			vals: []schemas.Value{{Int: 694}, {Float: 346789.12000000005}, {Float: 999.87}, {Float: 0.01}, {Int: 680}, {Int: 1234}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		_, body := encodeAnswer(q, ans)
		b.SetBytes(int64(len(body)))
	}
}

// hourBatch is a batch reader over hours of view rows held in memory, with
// a state made once: the batch side of BenchmarkBatchMix without I/O.
type hourBatch struct {
	hours map[int64][]views.Row // by hour start, Unix µs
	st    *views.State
}

func (h *hourBatch) Rows(ctx context.Context, v *schemas.View, from, to time.Time, where map[string]schemas.Value) ([]views.Row, error) {
	match := whereMatcher(v, where)
	var out []views.Row
	for t := from.Truncate(time.Hour); t.Before(to); t = t.Add(time.Hour) {
		rows := h.hours[t.UnixMicro()]
		if len(where) == 0 && !t.Before(from) && !t.Add(time.Hour).After(to) && out == nil {
			out = rows[:len(rows):len(rows)]
			continue
		}
		for _, r := range rows {
			if r.T >= from.UnixMicro() && r.T < to.UnixMicro() && match(r.Dims) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (h *hourBatch) State(ctx context.Context, view string) (*views.State, error) { return h.st, nil }
func (h *hourBatch) StateAtLeast(ctx context.Context, view string, b time.Time) (*views.State, error) {
	return h.st, nil
}

// BenchmarkBatchMix computes dashboard queries over 12 batch hours of a
// view by 20 tenants × 9 countries at 1m, with sketches: ranges 5m–12h
// ending at B or earlier, steps 1m–1h, group_by none, one or two
// dimensions, 40 % filtered by tenant (bench/internal/querymix's mix, on
// the batch side alone). Each op is one query computed and printed as
// JSON; the rollup and cube caches fill as a server's do. cubes=off is the
// reference: every batch hour rolled up from its view rows.
func BenchmarkBatchMix(b *testing.B) {
	v := testView("revenue", testSchema(b, "orders"))
	bEnd := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	hb := &hourBatch{hours: map[int64][]views.Row{}, st: &views.State{Boundary: bEnd, Fingerprint: "fp", Hours: map[string]views.HourState{}}}
	for h := bEnd.Add(-12 * time.Hour); h.Before(bEnd); h = h.Add(time.Hour) {
		var rows []views.Row
		for m := range 60 {
			for tn := range 20 {
				for c := range 9 {
					var s hll.Sketch
					for u := range 3 {
						s.Add(fmt.Sprintf("u%d", (m*31+tn*7+c*3+u)%20000))
					}
					rows = append(rows, views.Row{T: h.Add(time.Duration(m) * time.Minute).UnixMicro(),
						Dims:   []schemas.Value{{Str: fmt.Sprintf("t%02d", tn)}, {Str: fmt.Sprintf("c%d", c)}},
						Values: []schemas.Value{{Int: 3}, {Float: 37.5}, {Float: 20}, {Float: 2.5}, {Int: 3}, {Int: 7}},
						HLL:    [][]byte{nil, nil, nil, nil, s.Marshal(), nil}})
				}
			}
		}
		hb.hours[h.UnixMicro()] = rows
		hb.st.Hours[views.HourKey(h)] = views.HourState{Rows: int64(len(rows)), Version: 1, Fingerprint: "fp"}
	}
	for _, cubes := range []bool{true, false} {
		b.Run(fmt.Sprintf("cubes=%v", cubes), func(b *testing.B) {
			// compute reads B from its caller: Redis is never reached.
			rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
			defer rdb.Close()
			api, err := NewAPI(APIConfig{Views: []*schemas.View{v}, Schemas: []*schemas.Schema{v.Schema}, Batch: hb, Redis: rdb,
				Speed: &fakeSpeed{}, AuthDisabled: true, MaxRange: 31 * 24 * time.Hour, MaxRows: 100_000, Timeout: time.Minute,
				Now: func() time.Time { return bEnd.Add(30 * time.Minute) }})
			if err != nil {
				b.Fatal(err)
			}
			api.noCubes = !cubes
			rng := rand.New(rand.NewPCG(1, 2))
			ranges := []time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour}
			steps := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour}
			var rows int
			b.ReportAllocs()
			for b.Loop() {
				rl := ranges[rng.IntN(len(ranges))]
				var groupBy []string
				groups := 1
				switch r := rng.Float64(); {
				case r < 0.4:
				case r < 0.8:
					groupBy = []string{v.Dimensions[rng.IntN(2)]}
					groups = 20
				default:
					groupBy = []string{"tenant", "country"}
					groups = 180
				}
				var ok []time.Duration
				for _, s := range steps {
					if s <= rl && int(rl/s) <= 720 && int(rl/s)*groups <= 20000 {
						ok = append(ok, s)
					}
				}
				q := mq(v, ok[rng.IntN(len(ok))], groupBy...)
				if rng.Float64() < 0.4 {
					q.where["tenant"] = schemas.Value{Str: fmt.Sprintf("t%02d", rng.IntN(20))}
				}
				end := bEnd.Add(-time.Duration(rng.Int64N(int64(12*time.Hour-rl) + 1)))
				q.to = end.Truncate(q.step)
				q.from = q.to.Add(-rl).Truncate(q.step)
				ans, err := api.compute(context.Background(), q, bEnd)
				if err != nil {
					b.Fatal(err)
				}
				_, body := encodeAnswer(q, ans)
				rows += len(ans.rows)
				if len(body) == 0 {
					b.Fatal("empty answer")
				}
			}
			b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
		})
	}
}
