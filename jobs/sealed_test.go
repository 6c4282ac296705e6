package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Issue 13, reproduction 3, on the real stack with an injected clock: 100
// orders are compacted and recomputed into an hour; the clock moves 40
// days; retention (raw 30 days, view 90) seals the hour and deletes its raw
// file. One more order for that hour is then dead-lettered `expired` by the
// compactor, and the view hour keeps its 100 orders through a recompute,
// through a late raw file that got in anyway (dirty marker and all), and
// through a change of the view definition, after which readers refuse the
// sealed hour rather than serve it under the new definition.
func TestLateEventAfterRetentionKeepsTheViewHour(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			brokers := testenv.KafkaBrokers(t)
			store, _ := testenv.S3Lake(t)
			rdb := rs.Client(t)
			ctx := context.Background()

			cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
			if err != nil {
				t.Fatal(err)
			}
			topic := testenv.Topic(t, brokers, 4)
			o := cfg.Schema("orders") // raw retention 30d
			s, err := schemas.NewSchema(o.Name, topic, o.Time, o.ID, o.Fields)
			if err != nil {
				t.Fatal(err)
			}
			s.Retention = o.Retention
			v := *cfg.View("revenue") // view retention 90d
			v.Name, v.Schema = strings.ReplaceAll(testenv.Name("sealed"), "-", "_"), s
			t.Cleanup(func() { rdb.Del(context.Background(), boundary.Key(v.Name)) })
			if s.Retention != 30*24*time.Hour || v.Retention != 90*24*time.Hour {
				t.Fatalf("example retention: raw %v, view %v", s.Retention, v.Retention)
			}

			// The injected clock runs as the real one does, shifted by skip.
			var skip atomic.Int64
			t0 := time.Now().UTC()
			now := func() time.Time { return time.Now().Add(time.Duration(skip.Load())).UTC() }
			H := t0.Truncate(time.Hour).Add(-2 * time.Hour)
			group, ns := testenv.Name("compact"), testenv.Name("jobs")

			w := stream.NewWriter(brokers, topic)
			defer w.Close()
			produce := func(from, n int) {
				msgs := make([]kafka.Message, n)
				for i := range msgs {
					msgs[i] = kafka.Message{Value: fmt.Appendf(nil, `{"order_id":"o%d","ts":%q,"tenant":"acme","country":"de","user_id":"u%d","amount":1.5}`,
						from+i, H.Add(time.Duration(from+i)*10*time.Second).Format(time.RFC3339), i%7)}
				}
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
			}
			waitCompacted := func() {
				t.Helper()
				end := topicEnds(t, brokers, topic)
				deadline := time.Now().Add(time.Minute)
				for {
					cps, err := raw.ReadCheckpoints(ctx, store, group, topic)
					done := err == nil && len(cps) == len(end)
					for p, last := range end {
						if cps[p].NextOffset < last || cps[p].Watermark.IsZero() {
							done = false
						}
					}
					if done {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("compaction did not reach %v: %+v (%v)", end, cps, err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			c, err := compact.New(compact.Config{Brokers: brokers, Group: group, Store: store, Schemas: []*schemas.Schema{s},
				Lateness: map[string]time.Duration{s.Name: v.Lateness}, MaxFileAge: time.Second, SessionTimeout: 6 * time.Second,
				Registerer: prometheus.NewRegistry(), Now: now})
			if err != nil {
				t.Fatal(err)
			}
			cctx, stopCompactor := context.WithCancel(ctx)
			compactorDone := make(chan error, 1)
			go func() { compactorDone <- c.Run(cctx) }()
			t.Cleanup(func() { stopCompactor(); <-compactorDone })

			runJob := func(view *schemas.View, job string) {
				t.Helper()
				list, err := jobs.BatchJobs(jobs.BatchConfig{Store: store, Redis: rdb, Group: group, Schemas: []*schemas.Schema{s},
					Views: []*schemas.View{view}, Registerer: prometheus.NewRegistry(), Now: now})
				if err != nil {
					t.Fatal(err)
				}
				r, err := jobs.New(jobs.Config{Redis: rdb, Namespace: ns, Jobs: list, Registerer: prometheus.NewRegistry()})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.RunNow(ctx, job); err != nil {
					t.Fatalf("%s: %v", job, err)
				}
			}
			// orders reads the view file of hour H: its orders and the definition
			// it was computed with.
			orders := func() (n int64, fingerprint string) {
				t.Helper()
				b, err := lake.ReadAll(ctx, store, lake.ViewKey(v.Name, H))
				if err != nil {
					t.Fatalf("view hour %v: %v", H, err)
				}
				rows, err := views.Decode(ctx, &v, b)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					n += r.Values[0].Int // orders: count
				}
				st, err := views.ReadState(ctx, store, v.Name)
				if err != nil {
					t.Fatal(err)
				}
				hs, _ := st.Hour(H)
				return n, hs.Fingerprint
			}

			// 100 orders, compacted and recomputed at t0.
			produce(0, 100)
			waitCompacted()
			runJob(&v, jobs.JobRecompute)
			if n, _ := orders(); n != 100 {
				t.Fatalf("view hour %v holds %d orders, want 100", H, n)
			}

			// 40 days later retention seals the hour and deletes its raw file.
			skip.Store(int64(40 * 24 * time.Hour))
			runJob(&v, jobs.JobRetention)
			if objs, _ := store.List(ctx, lake.RawHourPrefix(s.Name, H)); len(objs) != 0 {
				t.Fatalf("retention left %d raw files of hour %v", len(objs), H)
			}
			if seal, _, err := raw.ReadSeal(ctx, store, s.Name); err != nil || !seal.Sealed(H) {
				t.Fatalf("seal %+v (%v): hour %v not sealed", seal, err, H)
			}

			// One more order for the hour: dead-lettered expired, no raw file.
			produce(100, 1)
			waitCompacted()
			dead, err := raw.ReadDeadLetters(ctx, store, s.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(dead) != 1 || dead[0].Reason != raw.ReasonExpired || !strings.Contains(string(dead[0].Raw), `"o100"`) {
				t.Errorf("dead letters %+v, want the late order, expired", dead)
			}
			if objs, _ := store.List(ctx, lake.RawHourPrefix(s.Name, H)); len(objs) != 0 {
				t.Errorf("the late order reached the raw lake: %v", objs)
			}
			runJob(&v, jobs.JobRecompute)
			n, fp := orders()
			if n != 100 {
				t.Errorf("after the late order: view hour %v holds %d orders, want 100", H, n)
			}

			// A late file that got into the sealed hour anyway (from before
			// admission existed), dirty marker and all, changes nothing either.
			lateKey := lake.RawFile{Schema: s.Name, Hour: H, Topic: topic, Partition: 0, First: 1 << 30, Last: 1 << 30}.Key()
			if err := lake.PutBytes(ctx, store, lateKey, mustRawFile(t, s, H.Add(time.Minute), 1<<30)); err != nil {
				t.Fatal(err)
			}
			if err := lake.PutBytes(ctx, store, lake.DirtyKey(s.Name, H), nil); err != nil {
				t.Fatal(err)
			}
			runJob(&v, jobs.JobRecompute)
			if n, _ := orders(); n != 100 {
				t.Errorf("after a late file and a dirty marker: view hour %v holds %d orders, want 100", H, n)
			}
			if objs, _ := store.List(ctx, lake.DirtyKey(s.Name, H)); len(objs) != 0 {
				t.Errorf("the sealed hour's dirty marker is still there")
			}

			// A new view definition: every other hour would be recomputed, the
			// sealed one keeps its file and the definition it was computed with,
			// and readers refuse it under the new one instead of answering wrong.
			v2 := v
			v2.Metrics = append(append([]schemas.Metric(nil), v.Metrics...), schemas.Metric{Name: "again", Agg: schemas.Count})
			runJob(&v2, jobs.JobRecompute)
			if n, fp2 := orders(); n != 100 || fp2 != fp || fp2 != v.Fingerprint() {
				t.Errorf("after a definition change: view hour %v holds %d orders computed with %s, want 100 with the old %s", H, n, fp2, v.Fingerprint())
			}
			st, err := views.ReadState(ctx, store, v.Name)
			if err != nil {
				t.Fatal(err)
			}
			if hs, _ := st.Hour(H); !hs.Sealed || st.Fingerprint != v2.Fingerprint() {
				t.Errorf("state: hour %+v, view fingerprint %s; want the hour sealed under the new %s", hs, st.Fingerprint, v2.Fingerprint())
			}
			reader, err := views.NewReader(views.ReaderConfig{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := reader.Rows(ctx, &v2, H, H.Add(time.Hour), nil); !errors.Is(err, views.ErrSealedDefinition) {
				t.Errorf("reading the sealed hour under the new definition: %v, want views.ErrSealedDefinition", err)
			}
		})
	}
}

// mustRawFile is a raw file of one order at ts, offset off, partition 0.
func mustRawFile(t *testing.T, s *schemas.Schema, ts time.Time, off int64) []byte {
	t.Helper()
	row := schemas.Row{Values: make([]schemas.Value, len(s.Fields))}
	for i, f := range s.Fields {
		switch {
		case f.Name == s.Time:
			row.Values[i] = schemas.Value{Int: ts.UnixMicro()}
		case f.Optional:
			row.Values[i] = schemas.Value{Null: true}
		case f.Type == schemas.Float64:
			row.Values[i] = schemas.Value{Float: 1}
		default:
			row.Values[i] = schemas.Value{Str: "late"}
		}
	}
	return rawFileOf(t, s, &row, off)
}

// rawFileOf encodes one raw row as a raw lake file.
func rawFileOf(t *testing.T, s *schemas.Schema, row *schemas.Row, off int64) []byte {
	t.Helper()
	layout := s.RawLayout()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, layout.Schema)
	if _, err := w.WriteRows([]parquet.Row{layout.AppendRow(nil, row, 0, off, row.Values[s.TimeIndex()].Int)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// topicEnds returns each partition's end offset.
func topicEnds(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range 4 {
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
