package jobs_test

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// The merge job leaves every closed hour with one file per partition and
// the same multiset of records (count and an order-free checksum), and
// leaves open hours alone.
func TestMergeJobKeepsRecordsAndReducesFiles(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			store, _ := testenv.S3Lake(t)
			rdb := rs.Client(t)
			ctx := context.Background()
			cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, v := cfg.Schema("orders"), cfg.View("revenue")
			end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
			from := end.Add(-4 * time.Hour)
			writeLake(t, store, s, v, from, end, 40000, 3) // three files per (hour, partition)
			watermark := end.Add(-time.Hour)               // the last hour stays open
			for p := range 4 {
				cp, _ := json.Marshal(raw.Checkpoint{NextOffset: 1 << 40, Watermark: watermark})
				lake.PutBytes(ctx, store, lake.CheckpointKey(cfg.Compact.Group, s.Topic, int32(p)), cp)
			}

			type summary struct {
				files int
				rows  int64
				sum   uint64
			}
			measure := func() map[time.Time]summary {
				out := map[time.Time]summary{}
				for h := from; h.Before(end); h = h.Add(time.Hour) {
					objs, err := store.List(ctx, lake.RawHourPrefix(s.Name, h))
					if err != nil {
						t.Fatal(err)
					}
					sm := summary{files: len(objs)}
					err = raw.ReadHour(ctx, store, s, h, func(r parquet.Row) error {
						f := fnv.New64a()
						for _, v := range r {
							f.Write([]byte(v.String()))
						}
						sm.rows++
						sm.sum += f.Sum64() // addition: independent of order
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					out[h] = sm
				}
				return out
			}
			before := measure()
			var total int64
			for _, b := range before {
				total += b.rows
			}
			if total != 40000 {
				t.Fatalf("the lake reads %d records before merging, %d were written", total, 40000)
			}

			bj, err := jobs.BatchJobs(jobs.BatchConfig{Store: store, Redis: rdb, Group: cfg.Compact.Group,
				Schemas: []*schemas.Schema{s}, Views: nil, Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			r, err := jobs.New(jobs.Config{Redis: rdb, Namespace: testenv.Name("jobs"), Jobs: bj, Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			rec, err := r.RunNow(ctx, jobs.JobMerge)
			if err != nil {
				t.Fatal(err)
			}
			after := measure()
			merged := 0
			for h, b := range before {
				a := after[h]
				if a.rows != b.rows || a.sum != b.sum {
					t.Errorf("hour %s: %d rows (checksum %x) after merge, %d (%x) before", lake.HourPath(h), a.rows, a.sum, b.rows, b.sum)
				}
				closed := !h.Add(time.Hour).After(watermark)
				switch {
				case closed && a.files != 4:
					t.Errorf("closed hour %s: %d files after merge, want 4 (one per partition; %d before)", lake.HourPath(h), a.files, b.files)
				case !closed && a.files != b.files:
					t.Errorf("open hour %s: merged (%d files, %d before)", lake.HourPath(h), a.files, b.files)
				}
				if closed && b.files > 4 {
					merged++
				}
			}
			if merged == 0 || rec.Items != int64(merged) {
				t.Errorf("merge job reports %d hours, %d closed hours had several files of a partition", rec.Items, merged)
			}
		})
	}
}
