package compact_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Issue 13, reproduction 1, on the real stack: four orders at
// 9999-12-31T23:00 (one per partition, as the Events API's round robin
// sends them) and four from a producer whose clock runs three hours fast,
// among ordinary ones, through the compactor. They are dead-lettered
// `future`, no raw file holds them, no partition's watermark passes the
// wall clock minus lateness, and the B recompute computes and mirrors to
// Redis stays at the wall clock's hour.
func TestCompactDeadLettersFutureEvents(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { rdb.Close() })
	store, _ := testenv.S3Lake(t)
	topic := testenv.Topic(t, brokers, partitions)
	s := ordersOn(t, topic)
	ctx := context.Background()
	const lateness = 5 * time.Minute

	now := time.Now().UTC()
	far := time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)
	fast := now.Add(3 * time.Hour)
	order := func(id string, at time.Time) []byte {
		return fmt.Appendf(nil, `{"order_id":%q,"ts":%q,"tenant":"acme","country":"de","user_id":"u1","amount":12.5}`, id, at.Format(time.RFC3339))
	}
	var msgs []kafka.Message
	for p := range partitions {
		msgs = append(msgs,
			kafka.Message{Partition: p, Value: order(fmt.Sprintf("ok-%d-a", p), now.Add(-20*time.Minute))},
			kafka.Message{Partition: p, Value: order(fmt.Sprintf("far-%d", p), far)},
			kafka.Message{Partition: p, Value: order(fmt.Sprintf("fast-%d", p), fast)},
			kafka.Message{Partition: p, Value: order(fmt.Sprintf("ok-%d-b", p), now.Add(-10*time.Minute))},
		)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	end := endOffsets(t, brokers, topic)

	group := testenv.Name("compact")
	reg := prometheus.NewRegistry()
	stop := runCompactor(t, compact.Config{Brokers: brokers, Group: group, Store: store,
		Schemas: []*schemas.Schema{s}, Lateness: map[string]time.Duration{s.Name: lateness},
		MaxFileAge: time.Second, SessionTimeout: 6 * time.Second, Registerer: reg})
	waitCompacted(t, store, group, topic, end, time.Minute)
	stop()
	after := time.Now().UTC()

	// Dead-lettered as future, each with its bytes; the ordinary ones are
	// in the raw lake and nothing else is.
	dead, err := raw.ReadDeadLetters(ctx, store, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	future := map[string]bool{}
	for _, d := range dead {
		if d.Reason != raw.ReasonFuture || !strings.Contains(d.Error, "max_future") {
			t.Errorf("dead letter at %d/%d: reason %q error %q, want future", d.Partition, d.Offset, d.Reason, d.Error)
		}
		future[string(d.Raw)] = true
	}
	for _, m := range msgs {
		if isFuture := strings.Contains(string(m.Value), `"far-`) || strings.Contains(string(m.Value), `"fast-`); isFuture != future[string(m.Value)] {
			t.Errorf("%s: dead-lettered %v, want %v", m.Value, future[string(m.Value)], isFuture)
		}
	}
	if n := counter(t, reg, "lambdalake_compact_deadletters_total", map[string]string{"schema": s.Name, "reason": raw.ReasonFuture}); n != 8 {
		t.Errorf("lambdalake_compact_deadletters_total{reason=future} = %v, want 8", n)
	}
	objs, err := store.List(ctx, lake.RawPrefix(s.Name))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if h, _ := lake.PartitionHour(o.Key); h.After(now) {
			t.Errorf("raw file in an hour after the wall clock: %s", o.Key)
		}
	}
	if len(objs) == 0 {
		t.Error("the ordinary orders are not in the raw lake")
	}

	// No watermark passes the wall clock minus lateness, nor remembers
	// a future event.
	cps, err := raw.ReadCheckpoints(ctx, store, group, topic)
	if err != nil || len(cps) != partitions {
		t.Fatalf("checkpoints %v (%v), want %d", cps, err, partitions)
	}
	for p, cp := range cps {
		if cp.Watermark.After(after.Add(-lateness)) || cp.Watermark.IsZero() {
			t.Errorf("partition %d: watermark %v, want set and at most the wall clock minus lateness (%v)", p, cp.Watermark, after.Add(-lateness))
		}
		if cp.MaxEvent.After(after) {
			t.Errorf("partition %d: latest event %v, after the wall clock", p, cp.MaxEvent)
		}
	}

	// Recompute's B, in the lake and in Redis, stays at the wall clock's
	// hour at the latest.
	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := *cfg.View("revenue")
	v.Name, v.Schema = strings.ReplaceAll(testenv.Name("future"), "-", "_"), s
	t.Cleanup(func() { rdb.Del(context.Background(), boundary.Key(v.Name)) })
	rc, err := recompute.New(recompute.Config{Store: store, Group: group, Registerer: prometheus.NewRegistry(),
		Mirror: recompute.MirrorFunc(func(ctx context.Context, view string, b time.Time) error {
			_, err := boundary.Publish(ctx, rdb, view, b)
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rc.Recompute(ctx, &v, recompute.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wallHour := time.Now().UTC().Truncate(time.Hour)
	if res.Boundary.IsZero() || res.Boundary.After(wallHour) {
		t.Errorf("B = %v, want set and at most the wall clock's hour %v", res.Boundary, wallHour)
	}
	if b, ok, err := boundary.Read(ctx, rdb, v.Name); err != nil || !ok || !b.Equal(res.Boundary) {
		t.Errorf("Redis B = %v (ok=%v, %v), want %v", b, ok, err, res.Boundary)
	}
}

// counter reads one series of a counter vector.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
