package batch

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// OffsetRange is an inclusive range of Kafka offsets.
type OffsetRange struct{ First, Last int64 }

// RawFilePlan is one raw file of an hour and which of its rows to keep.
//
// Why offsets are enough: a flush covers a contiguous offset range of its
// partition, and its file for an hour holds every record of that range in
// that hour, so a file named [first, last] holds all of the hour's records
// with offsets in [first, last]. Each record has one event hour, so within
// an hour a record already held by an earlier file is exactly one whose
// offset lies in that file's range.
type RawFilePlan struct {
	Key  string
	Size int64
	lake.RawFile
	// Drop lists offsets of this file that earlier files of the plan
	// already hold (sorted, disjoint); rows with those offsets are skipped.
	Drop []OffsetRange
}

// Keep reports whether the row with this offset is read from this file.
func (f *RawFilePlan) Keep(offset int64) bool {
	for _, d := range f.Drop {
		if offset >= d.First && offset <= d.Last {
			return false
		}
	}
	return true
}

// PlanHour lists an hour's raw files in read order and says, for each,
// which offsets an earlier file already holds. Files that hold nothing new
// (left behind by a crash, or by a merge not yet cleaned up) are left out.
func PlanHour(ctx context.Context, store lake.Store, schema string, hour time.Time) ([]RawFilePlan, error) {
	plan, _, err := planHour(ctx, store, schema, hour)
	return plan, err
}

// planHour also returns the redundant files it left out.
func planHour(ctx context.Context, store lake.Store, schema string, hour time.Time) (plan, redundant []RawFilePlan, err error) {
	prefix := lake.RawHourPrefix(schema, hour)
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("batch: list %s: %w", prefix, err)
	}
	files := make([]RawFilePlan, 0, len(objs))
	for _, o := range objs {
		rf, err := lake.ParseRawKey(o.Key)
		if err != nil {
			continue // not a raw file (a stray object); readers ignore it
		}
		files = append(files, RawFilePlan{Key: o.Key, Size: o.Size, RawFile: rf})
	}
	// Per partition by first offset; the widest file first, so a merged
	// file makes the files it replaced redundant.
	slices.SortFunc(files, func(a, b RawFilePlan) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.First, b.First), -cmp.Compare(a.Last, b.Last))
	})
	var covered []OffsetRange // union of earlier files' ranges in this partition, sorted, disjoint
	for i, f := range files {
		if i == 0 || f.Topic != files[i-1].Topic || f.Partition != files[i-1].Partition {
			covered = covered[:0]
		}
		f.Drop = intersect(covered, OffsetRange{f.First, f.Last})
		if len(f.Drop) == 1 && f.Drop[0] == (OffsetRange{f.First, f.Last}) {
			redundant = append(redundant, f)
		} else {
			plan = append(plan, f)
		}
		covered = union(covered, OffsetRange{f.First, f.Last})
	}
	return plan, redundant, nil
}

// intersect returns the parts of r inside the sorted, disjoint ranges rs.
func intersect(rs []OffsetRange, r OffsetRange) []OffsetRange {
	var out []OffsetRange
	for _, c := range rs {
		lo, hi := max(c.First, r.First), min(c.Last, r.Last)
		if lo <= hi {
			out = append(out, OffsetRange{lo, hi})
		}
	}
	return out
}

// union adds r to the sorted, disjoint ranges rs, whose firsts are all <= r.First.
func union(rs []OffsetRange, r OffsetRange) []OffsetRange {
	if n := len(rs); n > 0 && r.First <= rs[n-1].Last+1 {
		rs[n-1].Last = max(rs[n-1].Last, r.Last)
		return rs
	}
	return append(rs, r)
}

// RawColumns locates the lake columns in the rows ReadHour returns.
type RawColumns struct {
	Partition, Offset, IngestedAt int
	Fields                        []int // schema field index → column index
}

// ColumnsOf returns where each column of the schema's raw rows is.
func ColumnsOf(s *schemas.Schema) RawColumns {
	ps := s.RawLayout().Schema
	col := func(name string) int {
		leaf, ok := ps.Lookup(name)
		if !ok {
			panic("batch: raw layout has no column " + name)
		}
		return leaf.ColumnIndex
	}
	c := RawColumns{Partition: col(schemas.ColPartition), Offset: col(schemas.ColOffset), IngestedAt: col(schemas.ColIngestedAt)}
	for _, f := range s.Fields {
		c.Fields = append(c.Fields, col(f.Name))
	}
	return c
}

// ReadHour reads the rows of an hour of the raw lake, each record once:
// rows that an earlier file already holds are dropped (see RawFilePlan).
// Rows come in the schema's raw layout (see ColumnsOf) and are only valid
// during the call to fn. This parquet-go reader serves merge and tests;
// recompute reads the same plan with Arrow.
//
// A concurrent Merge may delete a planned file after writing the file
// that replaces it; the read then fails with an error wrapping
// lake.ErrNotExist, never counting a record twice, and a new read (with a
// new plan) sees the merged file.
func ReadHour(ctx context.Context, store lake.Store, s *schemas.Schema, hour time.Time, fn func(parquet.Row) error) error {
	plan, err := PlanHour(ctx, store, s.Name, hour)
	if err != nil {
		return err
	}
	layout := s.RawLayout()
	offCol := ColumnsOf(s).Offset
	for i := range plan {
		if err := readRawFile(ctx, store, layout, offCol, &plan[i], fn); err != nil {
			return err
		}
	}
	return nil
}

func readRawFile(ctx context.Context, store lake.Store, layout *schemas.RawLayout, offCol int, f *RawFilePlan, fn func(parquet.Row) error) error {
	b, err := lake.ReadAll(ctx, store, f.Key)
	if err != nil {
		return fmt.Errorf("batch: read %s: %w", f.Key, err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return fmt.Errorf("batch: open %s: %w", f.Key, err)
	}
	// Reading through the current layout converts files written before a
	// compatible schema change (a new optional field reads as null).
	r := parquet.NewReader(pf, layout.Schema)
	defer r.Close()
	rows := make([]parquet.Row, 256)
	for {
		n, err := r.ReadRows(rows)
		for _, row := range rows[:n] {
			if !f.Keep(row[offCol].Int64()) {
				continue
			}
			if err := fn(row); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("batch: read rows of %s: %w", f.Key, err)
		}
	}
}
