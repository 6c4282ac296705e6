package compact

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Unit tests of the compactor's buffering, rotation, budget and flush
// logic: no Kafka, the lake in a temp folder.

func testSchema(t testing.TB) *schemas.Schema {
	t.Helper()
	s, err := schemas.NewSchema("orders", "orders", "ts", "order_id", []schemas.Field{
		{Name: "order_id", Type: schemas.String},
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String},
		{Name: "amount", Type: schemas.Float64},
		{Name: "coupon", Type: schemas.String, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var base = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func event(id string, at time.Time, amount float64) []byte {
	return fmt.Appendf(nil, `{"order_id":%q,"ts":%q,"tenant":"acme","amount":%g}`, id, at.Format(time.RFC3339Nano), amount)
}

func newTestCompactor(t *testing.T, store lake.Store, s *schemas.Schema) *Compactor {
	t.Helper()
	c, err := New(Config{Brokers: []string{"unused:9092"}, Group: "g", Store: store,
		Schemas: []*schemas.Schema{s}, Lateness: map[string]time.Duration{s.Name: 5 * time.Minute},
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPartBufferDue(t *testing.T) {
	s := testSchema(t)
	tests := []struct {
		name    string
		lim     limits
		records int
		wait    time.Duration
		want    bool
	}{
		{"below every limit", limits{maxFileRows: 100, maxFileBytes: 1 << 20, maxFileAge: time.Minute}, 10, time.Second, false},
		{"rows reached", limits{maxFileRows: 10, maxFileBytes: 1 << 20, maxFileAge: time.Minute}, 10, 0, true},
		{"bytes reached", limits{maxFileRows: 1000, maxFileBytes: 1000, maxFileAge: time.Minute}, 10, 0, true},
		{"age reached", limits{maxFileRows: 100, maxFileBytes: 1 << 20, maxFileAge: time.Minute}, 1, time.Minute, true},
		{"empty is never due", limits{maxFileRows: 1, maxFileBytes: 1, maxFileAge: time.Nanosecond}, 0, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPartBuffer(s, s.RawLayout(), rawSchema(s.RawLayout()), "orders", 0, tt.lim, -1, time.Time{})
			for i := range tt.records {
				p.add(record{Offset: int64(i), Value: event(fmt.Sprint(i), base.Add(time.Duration(i)*time.Second), 1)}, base)
			}
			if got := p.due(base.Add(tt.wait)); got != tt.want {
				t.Errorf("due = %v, want %v (rows=%d bytes=%d)", got, tt.want, p.rows, p.bytes)
			}
		})
	}
}

// Only a buffer that began in a backlog or holds an eighth of a file's
// limits is written ahead of its age when its partition goes quiet.
func TestPartBufferDrainable(t *testing.T) {
	s := testSchema(t)
	lim := limits{maxFileRows: 800, maxFileBytes: 1 << 30, maxFileAge: time.Minute}
	tests := []struct {
		name    string
		records int
		backlog bool
		want    bool
	}{
		{"a slow stream's few records", 10, false, false},
		{"just under an eighth of the rows", 99, false, false},
		{"an eighth of the rows", 100, false, true},
		{"a backlog's remainder", 10, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPartBuffer(s, s.RawLayout(), rawSchema(s.RawLayout()), "orders", 0, lim, -1, time.Time{})
			for i := range tt.records {
				p.add(record{Offset: int64(i), Value: event(fmt.Sprint(i), base, 1)}, base)
			}
			p.backlog = tt.backlog
			if got := p.drainable(); got != tt.want {
				t.Errorf("drainable = %v, want %v", got, tt.want)
			}
			p.cut(base, true)
			if p.drainable() {
				t.Error("an empty buffer is drainable after a cut")
			}
		})
	}
}

// A flush writes one file per event hour named with its own records'
// offsets, rows sorted by event time, dead letters apart, and a
// checkpoint at the offset after the last record.
func TestFlushSplitsHoursAndCheckpoints(t *testing.T) {
	s := testSchema(t)
	store, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCompactor(t, store, s)
	ti := c.byTopic["orders"]
	p := newPartBuffer(s, ti.layout, ti.ps, "orders", 3, limits{maxFileRows: 1000, maxFileBytes: 1 << 20, maxFileAge: time.Minute}, -1, time.Time{})
	inputs := []struct {
		value []byte
		hour  int // event hour after base; -1: malformed
	}{
		{event("a", base.Add(30*time.Minute), 1), 0},       // offset 100
		{event("b", base.Add(65*time.Minute), 2), 1},       // 101
		{event("c", base.Add(10*time.Minute), 3), 0},       // 102, out of order
		{[]byte(`{"order_id":`), -1},                       // 103
		{event("d", base.Add(70*time.Minute), 4), 1},       // 104
		{[]byte(`{"order_id":"x","ts":"nope"}`), -1},       // 105
		{event("e", base.Add(-50*time.Minute), 5), -1 + 0}, // 106, an hour before base
	}
	for i, in := range inputs {
		p.add(record{Offset: int64(100 + i), Value: in.value, Time: base.Add(2 * time.Hour)}, base)
	}
	// Cut when the records were ingested (their Kafka time): the wall
	// clock then is after every event time, so the watermark follows the
	// latest event.
	b := p.cut(base.Add(2*time.Hour), false)
	if p.rows != 0 || len(p.hours) != 0 {
		t.Fatalf("buffer not empty after cut: rows=%d", p.rows)
	}
	// The previous watermark closed hour 09:00, so its file marks it dirty.
	prev := raw.Checkpoint{NextOffset: 100, Watermark: base.Add(time.Minute)}
	cp, _, err := c.store(context.Background(), ti, b, prev, "")
	if err != nil {
		t.Fatal(err)
	}
	if cp.NextOffset != 107 {
		t.Errorf("next_offset = %d, want 107", cp.NextOffset)
	}
	if want := base.Add(70*time.Minute - 5*time.Minute); !cp.Watermark.Equal(want) {
		t.Errorf("watermark = %v, want %v", cp.Watermark, want)
	}
	got, ok, err := raw.ReadCheckpoint(context.Background(), store, "g", "orders", 3)
	if err != nil || !ok || got.NextOffset != 107 || !got.Watermark.Equal(cp.Watermark) {
		t.Errorf("stored checkpoint = %+v %v %v", got, ok, err)
	}
	if n := testutil.ToFloat64(c.metrics.stored.WithLabelValues("orders", "3")); n != 107 {
		t.Errorf("lambdalake_compact_stored_offset = %v, want 107 (the checkpoint's)", n)
	}

	objs, _ := store.List(context.Background(), "")
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	want := []string{
		"_checkpoints/g/orders/3.json",
		"_dirty/orders/dt=2026-11-27/hr=09",
		lake.DeadletterKey("orders", base.Add(2*time.Hour), "orders", 3, 103, 105),
		lake.RawFile{Schema: "orders", Hour: base.Add(-time.Hour), Topic: "orders", Partition: 3, First: 106, Last: 106}.Key(),
		lake.RawFile{Schema: "orders", Hour: base, Topic: "orders", Partition: 3, First: 100, Last: 102}.Key(),
		lake.RawFile{Schema: "orders", Hour: base.Add(time.Hour), Topic: "orders", Partition: 3, First: 101, Last: 104}.Key(),
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("lake keys:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}

	cols := raw.ColumnsOf(s)
	var ids []string
	var offsets []int64
	if err := raw.ReadHour(context.Background(), store, s, base, func(r parquet.Row) error {
		ids = append(ids, r[cols.Fields[0]].String())
		offsets = append(offsets, r[cols.Offset].Int64())
		if r[cols.Partition].Int32() != 3 {
			t.Errorf("_partition = %d", r[cols.Partition].Int32())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"c", "a"}) || !slices.Equal(offsets, []int64{102, 100}) {
		t.Errorf("hour 10:00 rows = %v offsets %v, want [c a] [102 100] (sorted by event time)", ids, offsets)
	}

	dead, err := raw.ReadDeadLetters(context.Background(), store, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].Offset != 103 || dead[1].Offset != 105 ||
		string(dead[0].Raw) != `{"order_id":` || !strings.Contains(dead[1].Error, "RFC 3339") || dead[1].Topic != "orders" {
		t.Errorf("dead letters = %+v", dead)
	}
}

func TestNextWatermark(t *testing.T) {
	const late = 5 * time.Minute
	tests := []struct {
		name string
		prev time.Time
		b    flush
		want time.Time
	}{
		{"from the latest event", time.Time{}, flush{maxEvent: base}, base.Add(-late)},
		{"never moves back", base, flush{maxEvent: base.Add(-time.Hour)}, base},
		{"caught up uses the wall clock", time.Time{}, flush{maxEvent: base, caughtUp: true, cutAt: base.Add(time.Hour)}, base.Add(time.Hour - late)},
		{"lagging ignores the wall clock", time.Time{}, flush{maxEvent: base, cutAt: base.Add(time.Hour)}, base.Add(-late)},
		{"nothing seen keeps the previous", base, flush{}, base},
		// Admission lets events up to max_future ahead through; the
		// watermark still stops at the wall clock at the cut.
		{"never past the wall clock", time.Time{}, flush{maxEvent: base.Add(10 * time.Minute), cutAt: base}, base.Add(-late)},
		{"caught up with a future event: the wall clock", base.Add(-time.Hour), flush{maxEvent: base.Add(10 * time.Minute), caughtUp: true, cutAt: base}, base.Add(-late)},
		// A checkpoint from before admission (9999-12-31) is brought back;
		// one a little ahead (another compactor's clock) is kept.
		{"back from past the wall clock", time.Date(9999, 12, 31, 22, 55, 0, 0, time.UTC), flush{maxEvent: base.Add(-time.Minute), cutAt: base}, base.Add(-time.Minute - late)},
		{"a little ahead of the clock is kept", base.Add(-time.Second), flush{maxEvent: base.Add(-time.Minute), cutAt: base}, base.Add(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextWatermark(tt.prev, &tt.b, late); !got.Equal(tt.want) {
				t.Errorf("nextWatermark = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	t.Run("reaching it asks the largest buffer to flush", func(t *testing.T) {
		b := newBudget(1000)
		small, large := b.join(nil), b.join(nil)
		b.grow(small, 200)
		b.grow(large, 800)
		if !b.over() {
			t.Fatal("budget not reached at 1000/1000")
		}
		b.relieve()
		select {
		case <-large.flushReq:
		default:
			t.Fatal("largest member not asked to flush")
		}
		select {
		case <-small.flushReq:
			t.Fatal("smaller member asked to flush")
		default:
		}
	})
	t.Run("mostly in flight: wait, do not flush small buffers", func(t *testing.T) {
		b := newBudget(1000)
		m := b.join(nil)
		b.grow(m, 900)
		b.cut(m, 900)
		b.grow(m, 100)
		b.relieve()
		select {
		case <-m.flushReq:
			t.Fatal("asked to flush a small buffer while the budget is in flight")
		default:
		}
		done := make(chan error)
		go func() { done <- b.waitBelow(context.Background(), m, func() {}) }()
		select {
		case <-done:
			t.Fatal("waitBelow returned while the budget is reached")
		case <-time.After(50 * time.Millisecond):
		}
		b.release(900)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if b.used() != 100 {
			t.Errorf("used = %d, want 100", b.used())
		}
	})
	t.Run("a waiting member still serves flush requests", func(t *testing.T) {
		b := newBudget(1000)
		m := b.join(nil)
		b.grow(m, 1000)
		flushed := make(chan struct{})
		err := b.waitBelow(context.Background(), m, func() {
			b.cut(m, 1000)
			go func() { b.release(1000); close(flushed) }()
		})
		if err != nil {
			t.Fatal(err)
		}
		<-flushed
	})
	t.Run("leave releases what a member had buffered", func(t *testing.T) {
		b := newBudget(1000)
		m := b.join(nil)
		b.grow(m, 400)
		b.leave(m)
		if b.used() != 0 {
			t.Errorf("used = %d after leave, want 0", b.used())
		}
	})
}

// BenchmarkPartBufferAdd is the compactor's per-record hot path: decode,
// convert, buffer.
func BenchmarkPartBufferAdd(b *testing.B) {
	s := testSchema(b)
	p := newPartBuffer(s, s.RawLayout(), rawSchema(s.RawLayout()), "orders", 0, limits{maxFileRows: 1 << 30, maxFileBytes: 1 << 40, maxFileAge: time.Hour}, -1, time.Time{})
	vals := make([][]byte, 1024)
	for i := range vals {
		vals[i] = event(fmt.Sprint("order-", i), base.Add(time.Duration(i)*time.Second), float64(i)/100)
	}
	b.SetBytes(int64(len(vals[0])))
	b.ResetTimer()
	for i := range b.N {
		p.add(record{Offset: int64(i), Value: vals[i%len(vals)]}, base)
		if p.rows == 100_000 {
			p.cut(base, false)
		}
	}
}

// A wake (age timer, flush request) must never be lost, whether it comes
// while a fetch waits or between two fetches.
func TestPartitionWakeIsNeverLost(t *testing.T) {
	tests := []struct {
		name string
		run  func(p *partition) context.Context // returns the fetch context that must end
	}{
		{"during a fetch", func(p *partition) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			p.setWake(cancel)
			p.wake()
			return ctx
		}},
		{"between fetches", func(p *partition) context.Context {
			_, cancel := context.WithCancel(context.Background())
			p.setWake(cancel)
			p.clearWake()
			p.wake() // no fetch in progress: remembered
			next, cancelNext := context.WithCancel(context.Background())
			p.setWake(cancelNext)
			cancel()
			return next
		}},
		{"after the fetch it was meant for ended", func(p *partition) context.Context {
			_, cancel := context.WithCancel(context.Background())
			p.setWake(cancel)
			cancel() // fetch ended for another reason
			p.clearWake()
			p.wake()
			next, cancelNext := context.WithCancel(context.Background())
			p.setWake(cancelNext)
			return next
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &partition{}
			ctx := tt.run(p)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				t.Fatal("wake lost: the fetch context is still live")
			}
		})
	}
	t.Run("no wake, no cancel", func(t *testing.T) {
		p := &partition{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p.setWake(cancel)
		if ctx.Err() != nil {
			t.Fatal("fetch cancelled without a wake")
		}
	})
}

// BenchmarkEncodeHour is the flush's CPU: sort a file's rows by event time
// and write them as zstd Parquet. The rows are the example orders, with
// bench/compact's cardinalities and late share, so that the encodings and
// zstd see realistic columns.
func BenchmarkEncodeHour(b *testing.B) {
	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		b.Fatal(err)
	}
	o := cfg.Schema("orders")
	s, err := schemas.NewSchema(o.Name, o.Topic, o.Time, o.ID, o.Fields)
	if err != nil {
		b.Fatal(err)
	}
	const rows = 100_000
	g, err := gen.New(gen.Config{Schema: s, From: base, To: base.Add(time.Hour), Count: rows,
		OutOfOrder: 0.05, MaxDelay: 10 * time.Minute, Seed: 42,
		Cardinality: map[string]int{"tenant": 20, "country": 50, "user_id": 100_000}})
	if err != nil {
		b.Fatal(err)
	}
	vals := make([][]byte, rows)
	for i := range vals {
		vals[i] = g.Next(base).Value
	}
	layout := s.RawLayout()
	lim := limits{maxFileRows: 1 << 30, maxFileBytes: 1 << 40, maxFileAge: time.Hour}
	var size int
	var spent time.Duration // b.Elapsed counts the stopped setup too
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p := newPartBuffer(s, layout, rawSchema(layout), "orders", 0, lim, -1, time.Time{})
		for i, v := range vals {
			p.add(record{Offset: int64(i), Value: v, Time: base.Add(time.Duration(i) * time.Millisecond)}, base)
		}
		batch := p.cut(base, false)
		b.StartTimer()
		start := time.Now()
		for _, f := range batch.files {
			body, err := encodeHour(f)
			if err != nil {
				b.Fatal(err)
			}
			size += len(body)
			f.cols.Release()
		}
		spent += time.Since(start)
	}
	b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N*rows), "ns/row")
	b.ReportMetric(float64(size)/float64(b.N*rows), "bytes/row")
}

// sortedOrder must give the rows by (event time, offset) whatever the
// arrival order; the offsets need not arrive in order either.
func TestSortedOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	nearlySorted := func(n int) ([]int64, []int64) {
		ts, off := make([]int64, n), make([]int64, n)
		for i := range n {
			ts[i], off[i] = int64(i)*10, int64(i)
			if rng.IntN(20) == 0 { // late by up to 50 rows
				ts[i] -= rng.Int64N(500)
			}
		}
		return ts, off
	}
	tests := []struct {
		name    string
		ts, off []int64
	}{
		{"empty", nil, nil},
		{"one", []int64{5}, []int64{9}},
		{"sorted", []int64{1, 2, 3, 4}, []int64{10, 11, 12, 13}},
		{"reversed", []int64{4, 3, 2, 1}, []int64{10, 11, 12, 13}},
		{"ties broken by offset", []int64{2, 1, 2, 1, 2}, []int64{14, 13, 12, 11, 10}},
		{"late rows", []int64{10, 20, 5, 30, 20, 40, 1}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{"early outlier", []int64{100, 1, 2, 3, 4, 5}, []int64{1, 2, 3, 4, 5, 6}},
		{"all equal", []int64{7, 7, 7, 7}, []int64{3, 1, 4, 2}},
	}
	ts, off := nearlySorted(10_000)
	tests = append(tests, struct {
		name    string
		ts, off []int64
	}{"nearly sorted, 5% late", ts, off})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sortedOrder(tt.ts, tt.off)
			want := make([]int32, len(tt.ts))
			for i := range want {
				want[i] = int32(i)
			}
			slices.SortFunc(want, func(a, b int32) int {
				return cmp.Or(cmp.Compare(tt.ts[a], tt.ts[b]), cmp.Compare(tt.off[a], tt.off[b]))
			})
			if !slices.Equal(got, want) {
				t.Errorf("order = %v\nwant    %v", got[:min(len(got), 20)], want[:min(len(want), 20)])
			}
		})
	}
}

// A file encoded from rows that arrived out of order holds exactly those
// rows, sorted by event time then offset, and says so in its metadata.
func TestEncodeHourSortsRows(t *testing.T) {
	s := testSchema(t)
	layout := s.RawLayout()
	ps := rawSchema(layout)
	tests := []struct {
		name string
		rows int
		late int // every late-th row is up to 20 minutes late; 0: none
	}{
		{"in order", 100, 0},
		{"some late", 5000, 20},
		{"all shuffled", 3000, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.rows)))
			p := newPartBuffer(s, layout, ps, "orders", 2, limits{maxFileRows: 1 << 30, maxFileBytes: 1 << 40, maxFileAge: time.Hour}, -1, time.Time{})
			type row struct {
				ts     time.Time
				offset int64
				id     string
			}
			var want []row
			for i := range tt.rows {
				// Event times within 10:20-11:00, several rows per
				// millisecond so that ties need the offset.
				at := base.Add(20*time.Minute + time.Duration(i/3)*time.Millisecond)
				if tt.late > 0 && i%tt.late == 0 {
					at = base.Add(time.Duration(rng.Int64N(int64(40 * time.Minute)))).Truncate(time.Microsecond)
				}
				id := fmt.Sprint("o", i)
				p.add(record{Offset: int64(500 + i), Value: event(id, at, float64(i)), Time: base}, base)
				want = append(want, row{at, int64(500 + i), id})
			}
			slices.SortFunc(want, func(a, b row) int {
				return cmp.Or(a.ts.Compare(b.ts), cmp.Compare(a.offset, b.offset))
			})
			b := p.cut(base, false)
			if len(b.files) != 1 {
				t.Fatalf("%d files, want 1", len(b.files))
			}
			body, err := encodeHour(b.files[0])
			if err != nil {
				t.Fatal(err)
			}
			f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
			if err != nil {
				t.Fatal(err)
			}
			rgs := f.RowGroups()
			if len(rgs) != 1 {
				t.Fatalf("%d row groups, want 1", len(rgs))
			}
			var sorting []string
			for _, sc := range rgs[0].SortingColumns() {
				sorting = append(sorting, strings.Join(sc.Path(), "."))
			}
			if !slices.Equal(sorting, []string{"ts", schemas.ColOffset}) {
				t.Errorf("sorting columns = %v, want [ts _offset]", sorting)
			}
			cols := raw.ColumnsOf(s)
			rows := parquet.NewRowGroupReader(rgs[0])
			defer rows.Close()
			buf := make([]parquet.Row, 64)
			var got []row
			for {
				n, err := rows.ReadRows(buf)
				for _, r := range buf[:n] {
					got = append(got, row{time.UnixMicro(r[cols.Fields[1]].Int64()).UTC(), r[cols.Offset].Int64(), r[cols.Fields[0]].String()})
					if r[cols.Partition].Int32() != 2 || r[cols.IngestedAt].Int64() != base.UnixMicro() {
						t.Fatalf("row %d: _partition %d _ingested_at %d", len(got), r[cols.Partition].Int32(), r[cols.IngestedAt].Int64())
					}
				}
				if err != nil {
					break
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range want {
				if !got[i].ts.Equal(want[i].ts) || got[i].offset != want[i].offset || got[i].id != want[i].id {
					t.Fatalf("row %d = %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// Roles built twice in one process (`lambdalake all`, tests) share one
// registry: the second compactor counts into the first one's series
// (internal/prom) instead of failing.
func TestTwoCompactorsShareARegistry(t *testing.T) {
	s := testSchema(t)
	store, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var cs []*Compactor
	for range 2 {
		c, err := New(Config{Brokers: []string{"unused:9092"}, Group: "g", Store: store, Schemas: []*schemas.Schema{s}, Registerer: reg})
		if err != nil {
			t.Fatalf("compactor %d: %v", len(cs), err)
		}
		cs = append(cs, c)
	}
	cs[1].metrics.deadletters.WithLabelValues("orders", raw.ReasonFuture).Inc()
	if n := testutilCount(t, reg, "lambdalake_compact_deadletters_total"); n != 1 {
		t.Errorf("deadletters_total = %v after the second compactor counted one", n)
	}
}

func testutilCount(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
