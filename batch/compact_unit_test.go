package batch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"

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
	c, err := NewCompactor(CompactorConfig{Brokers: []string{"unused:9092"}, Group: "g", Store: store,
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
	b := p.cut(base, false)
	if p.rows != 0 || len(p.hours) != 0 {
		t.Fatalf("buffer not empty after cut: rows=%d", p.rows)
	}
	// The previous watermark closed hour 09:00, so its file marks it dirty.
	prev := Checkpoint{NextOffset: 100, Watermark: base.Add(time.Minute)}
	cp, err := c.store(context.Background(), ti, b, prev)
	if err != nil {
		t.Fatal(err)
	}
	if cp.NextOffset != 107 {
		t.Errorf("next_offset = %d, want 107", cp.NextOffset)
	}
	if want := base.Add(70*time.Minute - 5*time.Minute); !cp.Watermark.Equal(want) {
		t.Errorf("watermark = %v, want %v", cp.Watermark, want)
	}
	got, ok, err := ReadCheckpoint(context.Background(), store, "g", "orders", 3)
	if err != nil || !ok || got.NextOffset != 107 || !got.Watermark.Equal(cp.Watermark) {
		t.Errorf("stored checkpoint = %+v %v %v", got, ok, err)
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

	cols := ColumnsOf(s)
	var ids []string
	var offsets []int64
	if err := ReadHour(context.Background(), store, s, base, func(r parquet.Row) error {
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

	dead, err := ReadDeadLetters(context.Background(), store, "orders")
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
		b    batch
		want time.Time
	}{
		{"from the latest event", time.Time{}, batch{maxEvent: base}, base.Add(-late)},
		{"never moves back", base, batch{maxEvent: base.Add(-time.Hour)}, base},
		{"caught up uses the wall clock", time.Time{}, batch{maxEvent: base, caughtUp: true, cutAt: base.Add(time.Hour)}, base.Add(time.Hour - late)},
		{"lagging ignores the wall clock", time.Time{}, batch{maxEvent: base, cutAt: base.Add(time.Hour)}, base.Add(-late)},
		{"nothing seen keeps the previous", base, batch{}, base},
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
// and write them as zstd Parquet.
func BenchmarkEncodeHour(b *testing.B) {
	s := testSchema(b)
	const rows = 50_000
	vals := make([][]byte, rows)
	for i := range vals {
		// Mostly in order, every 20th a few minutes late, as in traffic.
		at := base.Add(time.Duration(i) * 50 * time.Millisecond)
		if i%20 == 0 {
			at = at.Add(-3 * time.Minute)
		}
		vals[i] = event(fmt.Sprint("order-", i), at, float64(i%10000)/100)
	}
	lim := limits{maxFileRows: 1 << 30, maxFileBytes: 1 << 40, maxFileAge: time.Hour}
	var size int
	var spent time.Duration // b.Elapsed counts the stopped setup too
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p := newPartBuffer(s, s.RawLayout(), rawSchema(s.RawLayout()), "orders", 0, lim, -1, time.Time{})
		for i, v := range vals {
			p.add(record{Offset: int64(i), Value: v, Time: base}, base)
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
		}
		spent += time.Since(start)
	}
	b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N*rows), "ns/row")
	b.ReportMetric(float64(size)/float64(b.N*rows), "bytes/row")
}
