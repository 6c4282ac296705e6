package compact

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// MergeResult says what Merge did to an hour.
type MergeResult struct {
	Written int   // merged files written
	Removed int   // files deleted
	Rows    int64 // rows in the merged files
}

// Merge rewrites one closed hour's raw files into one file per Kafka
// partition, sorted by event time, without the records that files left by
// a crash hold twice (the merge job of DESIGN §2). The merged file is named
// with the offsets of all the files it replaces, so it is itself a plain
// raw file and readers' overlap dropping keeps working: it is stored before
// the old files are deleted, and while both exist a reader drops the old
// ones as redundant. Merge is idempotent, and a crash at any point leaves a
// lake that reads the same.
//
// Merge holds one partition's hour in memory at a time. It should run on
// closed hours; a late file that lands during a merge is left for the next.
func Merge(ctx context.Context, store lake.Store, s *schemas.Schema, hour time.Time) (MergeResult, error) {
	hour = hour.UTC().Truncate(time.Hour)
	res, err := merge(ctx, store, s, hour)
	if err != nil {
		return res, fmt.Errorf("compact: merge %s %s: %w", s.Name, lake.HourPath(hour), err)
	}
	return res, nil
}

func merge(ctx context.Context, store lake.Store, s *schemas.Schema, hour time.Time) (MergeResult, error) {
	var res MergeResult
	plan, redundant, err := raw.PlanHour(ctx, store, s.Name, hour)
	if err != nil {
		return res, err
	}
	type tp struct {
		topic string
		part  int32
	}
	groups := map[tp][]raw.FilePlan{}
	stale := map[tp][]raw.FilePlan{}
	for _, f := range plan {
		k := tp{f.Topic, f.Partition}
		groups[k] = append(groups[k], f)
	}
	for _, f := range redundant {
		k := tp{f.Topic, f.Partition}
		stale[k] = append(stale[k], f)
	}
	keys := make([]tp, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tp) int { return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part)) })

	layout := s.RawLayout()
	ps := rawSchema(layout)
	sorting := parquet.SortingRowGroupConfig(parquet.SortingColumns(
		parquet.Ascending(s.Time), parquet.Ascending(schemas.ColOffset)))
	for _, k := range keys {
		files := groups[k]
		remove := stale[k]
		if len(files) > 1 || len(files[0].Drop) > 0 {
			merged := lake.RawFile{Schema: s.Name, Hour: hour, Topic: k.topic, Partition: k.part,
				First: files[0].First, Last: files[0].Last}
			buf := parquet.NewBuffer(ps, sorting)
			for i := range files {
				merged.First = min(merged.First, files[i].First)
				merged.Last = max(merged.Last, files[i].Last)
				err := raw.ReadFile(ctx, store, layout, &files[i], func(row parquet.Row) error {
					_, err := buf.WriteRows([]parquet.Row{row})
					return err
				})
				if err != nil {
					return res, err
				}
			}
			f := &hourFile{hour: hour, buf: buf, rows: buf.Len()}
			body, err := encodeHour(f)
			if err != nil {
				return res, fmt.Errorf("encode %s: %w", merged.Key(), err)
			}
			if err := lake.PutBytes(ctx, store, merged.Key(), body); err != nil {
				return res, fmt.Errorf("write merged file: %w", err)
			}
			res.Written++
			res.Rows += int64(f.rows)
			remove = append(remove, files...)
			for i := range remove {
				if remove[i].Key == merged.Key() {
					remove = slices.Delete(remove, i, i+1)
					break
				}
			}
		}
		for _, f := range remove {
			if err := store.Delete(ctx, f.Key); err != nil {
				return res, fmt.Errorf("remove replaced file: %w", err)
			}
			res.Removed++
		}
	}
	return res, nil
}

// HoursToMerge lists the hours closed by watermark that hold several files
// of one Kafka partition: the ones Merge makes smaller. This is the merge
// job's plan.
func HoursToMerge(ctx context.Context, store lake.Store, schema string, watermark time.Time) ([]time.Time, error) {
	objs, err := store.List(ctx, lake.RawPrefix(schema))
	if err != nil {
		return nil, fmt.Errorf("compact: hours to merge: %w", err)
	}
	type hp struct {
		hour time.Time
		part string
	}
	files := map[hp]int{}
	var hours []time.Time
	seen := map[time.Time]bool{}
	for _, o := range objs {
		f, err := lake.ParseRawKey(o.Key)
		if err != nil || f.Hour.Add(time.Hour).After(watermark) {
			continue
		}
		k := hp{f.Hour, fmt.Sprintf("%s-%d", f.Topic, f.Partition)}
		files[k]++
		if files[k] == 2 && !seen[f.Hour] {
			seen[f.Hour] = true
			hours = append(hours, f.Hour)
		}
	}
	return hours, nil
}
