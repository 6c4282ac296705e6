// Package rawfiles writes raw lake files (DESIGN §3) as the compactor lays
// them out, for the benchmarks that need a lake of a given shape without
// running Kafka and the compactor first (bench recompute, bench serve): per
// flush of one partition, a file per event hour named with the offsets it
// holds, rows sorted by event time, Parquet with zstd.
package rawfiles

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Record is one Kafka record of a flush.
type Record struct {
	Offset int64
	Value  []byte
}

// WriteFlush writes one flush of one partition and returns how many files it
// wrote. Records the schema's decoder rejects are left out (the compactor
// dead-letters them); _ingested_at is the event time.
func WriteFlush(ctx context.Context, store lake.Store, s *schemas.Schema, partition int32, recs []Record) (int, error) {
	type hrow struct {
		t   int64
		row parquet.Row
	}
	type hourFile struct {
		rows        []hrow
		first, last int64
	}
	dec := schemas.NewDecoder(s)
	layout := s.RawLayout()
	hours := map[time.Time]*hourFile{}
	for _, r := range recs {
		var row schemas.Row
		if err := dec.Decode(r.Value, &row); err != nil {
			continue
		}
		ts := s.TimeMicros(&row)
		h := time.UnixMicro(ts).UTC().Truncate(time.Hour)
		hf := hours[h]
		if hf == nil {
			hf = &hourFile{first: r.Offset, last: r.Offset}
			hours[h] = hf
		}
		hf.first, hf.last = min(hf.first, r.Offset), max(hf.last, r.Offset)
		hf.rows = append(hf.rows, hrow{ts, layout.AppendRow(nil, &row, partition, r.Offset, ts)})
	}
	for h, hf := range hours {
		slices.SortStableFunc(hf.rows, func(a, b hrow) int { return cmp.Compare(a.t, b.t) })
		rows := make([]parquet.Row, len(hf.rows))
		for i := range hf.rows {
			rows[i] = hf.rows[i].row
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema, parquet.Compression(&parquet.Zstd))
		if _, err := w.WriteRows(rows); err != nil {
			return 0, fmt.Errorf("rawfiles: write %s: %w", h.Format(time.RFC3339), err)
		}
		if err := w.Close(); err != nil {
			return 0, fmt.Errorf("rawfiles: write %s: %w", h.Format(time.RFC3339), err)
		}
		key := lake.RawFile{Schema: s.Name, Hour: h, Topic: s.Topic, Partition: partition, First: hf.first, Last: hf.last}.Key()
		if err := lake.PutBytes(ctx, store, key, buf.Bytes()); err != nil {
			return 0, err
		}
	}
	return len(hours), nil
}
