package compact_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Integration tests of compaction on the local stack: real Kafka, S3 on
// LocalStack, a fresh topic and lake prefix per test. Each checks the same
// exactness: every decodable Kafka record is in the lake exactly once (by
// partition and offset, after overlap dropping) in its event hour, and
// every undecodable one is in deadletter/ with its reason.

const partitions = 4

// ordersOn is the example config's orders schema, read from a given topic.
func ordersOn(t *testing.T, topic string) *schemas.Schema {
	t.Helper()
	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Schema("orders")
	s, err := schemas.NewSchema(o.Name, topic, o.Time, o.ID, o.Fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type recKey struct {
	partition int32
	offset    int64
}

// refRecord is what Kafka holds at one (partition, offset).
type refRecord struct {
	valid bool
	hour  time.Time
	cents int64
	raw   []byte
}

// hourSum is a per-hour reference: rows and the sum of amount in cents.
type hourSum struct {
	rows  int64
	cents int64
}

func cents(x float64) int64 { return int64(math.Round(x * 100)) }

// amountCents is a decoded amount in cents: the example config's amount
// is a decimal(18,2), already cents exactly; a float64 one is rounded.
func amountCents(s *schemas.Schema, v schemas.Value) int64 {
	if f, _ := s.Field("amount"); f.Type.Kind() == schemas.Decimal && f.Type.Scale() == 2 {
		return v.Int
	}
	return cents(v.Float)
}

// rawCents is amountCents of a raw lake value: a decimal(18,2) is its
// DECIMAL column's INT64, a float64 its DOUBLE.
func rawCents(s *schemas.Schema, v parquet.Value) int64 {
	if f, _ := s.Field("amount"); f.Type.Kind() == schemas.Decimal && f.Type.Scale() == 2 {
		return v.Int64()
	}
	return cents(v.Double())
}

var _ gen.Sink = (*captureSink)(nil)

// captureSink passes events to Kafka and tallies, per event hour, what the
// generator made decodable (valid events and their duplicates).
type captureSink struct {
	next  gen.Sink
	mu    sync.Mutex
	dec   *schemas.Decoder
	s     *schemas.Schema
	hours map[time.Time]hourSum
}

func (c *captureSink) Send(ctx context.Context, b []gen.Event) error {
	if err := c.next.Send(ctx, b); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var row schemas.Row
	amount := c.s.FieldIndex("amount")
	for _, e := range b {
		if e.Kind == gen.Malformed {
			continue
		}
		if err := c.dec.Decode(e.Value, &row); err != nil {
			panic("generator made an undecodable " + e.Kind.String() + " event: " + err.Error())
		}
		h := c.s.EventTime(&row).Truncate(time.Hour)
		hs := c.hours[h]
		hs.rows++
		hs.cents += amountCents(c.s, row.Values[amount])
		c.hours[h] = hs
	}
	return nil
}

// traffic is a generated history in a topic.
type traffic struct {
	counts gen.Counts
	hours  map[time.Time]hourSum
}

// produce writes count events spread over three past hours, with
// out-of-order (up to 20 min), duplicate and malformed ones. rate 0 is as
// fast as Kafka takes them.
func produce(ctx context.Context, t *testing.T, brokers []string, s *schemas.Schema, count int64, rate float64, seed uint64) traffic {
	t.Helper()
	to := time.Now().UTC().Truncate(time.Hour)
	g, err := gen.New(gen.Config{Schema: s, From: to.Add(-3 * time.Hour), To: to, Count: count,
		OutOfOrder: 0.05, MaxDelay: 20 * time.Minute, Duplicates: 0.01, Malformed: 0.01, Seed: seed,
		Cardinality: map[string]int{"tenant": 5, "country": 20, "user_id": 1000}})
	if err != nil {
		t.Fatal(err)
	}
	w := stream.NewWriter(brokers, s.Topic)
	defer w.Close()
	sink := &captureSink{next: gen.KafkaSink{W: w}, dec: schemas.NewDecoder(s), s: s, hours: map[time.Time]hourSum{}}
	counts, err := gen.Run(ctx, g, sink, gen.RunConfig{Count: count, Rate: rate, Batch: 2000})
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return traffic{counts: counts, hours: sink.hours}
}

func endOffsets(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatal(po.Error)
		}
		end[int32(po.Partition)] = po.LastOffset
	}
	return end
}

// readBack reads the whole topic, so the reference is what Kafka really
// holds at each (partition, offset).
func readBack(t *testing.T, brokers []string, s *schemas.Schema, end map[int32]int64) map[recKey]refRecord {
	t.Helper()
	dec := schemas.NewDecoder(s)
	amount := s.FieldIndex("amount")
	ref := map[recKey]refRecord{}
	var row schemas.Row
	for p, last := range end {
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: s.Topic, Partition: int(p),
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("read back partition %d: %v", p, err)
			}
			rec := refRecord{raw: m.Value}
			if dec.Decode(m.Value, &row) == nil {
				rec.valid = true
				rec.hour = s.EventTime(&row).Truncate(time.Hour)
				rec.cents = amountCents(s, row.Values[amount])
			}
			ref[recKey{p, m.Offset}] = rec
			if m.Offset == last-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return ref
}

// waitCompacted waits until every partition's lake checkpoint reaches the
// end offsets.
func waitCompacted(t *testing.T, store lake.Store, group, topic string, end map[int32]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cps, err := raw.ReadCheckpoints(context.Background(), store, group, topic)
		done := err == nil
		for p, last := range end {
			if cps[p].NextOffset < last {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("compaction did not reach the end offsets %v in %v: checkpoints %+v (err %v)", end, timeout, cps, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// lakeReport is what verifyLake saw.
type lakeReport struct {
	files, redundant, dropped int
	hours                     map[time.Time]hourSum
}

// verifyLake checks the exactness property against the Kafka reference.
func verifyLake(t *testing.T, store lake.Store, s *schemas.Schema, ref map[recKey]refRecord) lakeReport {
	t.Helper()
	ctx := context.Background()
	objs, err := store.List(ctx, lake.RawPrefix(s.Name))
	if err != nil {
		t.Fatal(err)
	}
	rep := lakeReport{files: len(objs), hours: map[time.Time]hourSum{}}
	hours := map[time.Time]bool{}
	for _, o := range objs {
		rf, err := lake.ParseRawKey(o.Key)
		if err != nil {
			t.Errorf("stray object in the raw lake: %s", o.Key)
			continue
		}
		hours[rf.Hour] = true
	}
	cols := raw.ColumnsOf(s)
	amount, ts := cols.Fields[s.FieldIndex("amount")], cols.Fields[s.TimeIndex()]
	seen := map[recKey]bool{}
	for h := range hours {
		plan, _, err := raw.PlanHour(ctx, store, s.Name, h)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := store.List(ctx, lake.RawHourPrefix(s.Name, h))
		rep.redundant += len(all) - len(plan)
		for _, f := range plan {
			for _, d := range f.Drop {
				rep.dropped += int(d.Last - d.First + 1)
			}
		}
		err = raw.ReadHour(ctx, store, s, h, func(r parquet.Row) error {
			k := recKey{r[cols.Partition].Int32(), r[cols.Offset].Int64()}
			want, ok := ref[k]
			switch {
			case !ok || !want.valid:
				t.Errorf("hour %v: record %+v is not a decodable Kafka record", h, k)
			case seen[k]:
				t.Errorf("hour %v: record %+v read twice", h, k)
			case !want.hour.Equal(h):
				t.Errorf("record %+v in hour %v, want %v", k, h, want.hour)
			case rawCents(s, r[amount]) != want.cents:
				t.Errorf("record %+v: amount %v, want %d cents", k, r[amount], want.cents)
			case time.UnixMicro(r[ts].Int64()).UTC().Truncate(time.Hour) != h:
				t.Errorf("record %+v: event time %v outside its hour %v", k, time.UnixMicro(r[ts].Int64()), h)
			}
			seen[k] = true
			hs := rep.hours[h]
			hs.rows++
			hs.cents += rawCents(s, r[amount])
			rep.hours[h] = hs
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var valid, malformed int
	for k, r := range ref {
		if !r.valid {
			malformed++
			continue
		}
		valid++
		if !seen[k] {
			t.Errorf("record %+v (hour %v) missing from the lake", k, r.hour)
		}
	}
	if len(seen) != valid {
		t.Errorf("lake holds %d records, Kafka %d decodable ones", len(seen), valid)
	}

	dead, err := raw.ReadDeadLetters(ctx, store, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	// The dead letters are compared as sets with the undecodable records:
	// a duplicated dead letter must not hide a missing one.
	deadSeen := map[recKey]int{}
	for _, d := range dead {
		k := recKey{d.Partition, d.Offset}
		if deadSeen[k]++; deadSeen[k] == 2 {
			t.Errorf("dead letter %+v returned twice", k)
		}
		want, ok := ref[k]
		switch {
		case !ok || want.valid:
			t.Errorf("dead letter %+v is not an undecodable Kafka record", k)
		case string(d.Raw) != string(want.raw):
			t.Errorf("dead letter %+v: raw %q, want %q", k, d.Raw, want.raw)
		case d.Error == "" || d.Topic != s.Topic:
			t.Errorf("dead letter %+v: error %q topic %q", k, d.Error, d.Topic)
		}
	}
	for k, r := range ref {
		if !r.valid && deadSeen[k] == 0 {
			t.Errorf("undecodable record %+v missing from the dead letters", k)
		}
	}
	if len(dead) != malformed {
		t.Errorf("%d dead letters, Kafka holds %d undecodable records", len(dead), malformed)
	}
	t.Logf("lake: %d raw files in %d hours, %d redundant, %d overlapping offsets dropped; %d records, %d dead letters",
		rep.files, len(hours), rep.redundant, rep.dropped, len(seen), len(dead))
	return rep
}

// runCompactor runs a compactor in the test process; stop ends it and
// waits for its final flush.
func runCompactor(t *testing.T, cfg compact.Config) (stop func()) {
	t.Helper()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	c, err := compact.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("compactor: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
