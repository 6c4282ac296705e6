package raw

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

// OffsetRange is an inclusive range of Kafka offsets.
type OffsetRange struct{ First, Last int64 }

// FilePlan is one raw file of an hour and which of its rows to keep.
//
// Why offsets are enough: a flush covers a contiguous offset range of its
// partition, and its file for an hour holds every record of that range in
// that hour, so a file named [first, last] holds all of the hour's records
// with offsets in [first, last]. Each record has one event hour, so within
// an hour a record already held by an earlier file is exactly one whose
// offset lies in that file's range.
type FilePlan struct {
	Key  string
	Size int64
	lake.RawFile
	// Drop lists offsets of this file that earlier files of the plan
	// already hold (sorted, disjoint); rows with those offsets are skipped.
	Drop []OffsetRange
}

// Keep reports whether the row with this offset is read from this file.
func (f *FilePlan) Keep(offset int64) bool {
	for _, d := range f.Drop {
		if offset >= d.First && offset <= d.Last {
			return false
		}
	}
	return true
}

// PlanHour lists an hour's raw files in read order and says, for each,
// which offsets an earlier file already holds. Files that hold nothing new
// (left behind by a crash, or by a merge not yet cleaned up) are left out
// of plan and returned as redundant: readers skip them, merge deletes them.
func PlanHour(ctx context.Context, store lake.Store, schema string, hour time.Time) (plan, redundant []FilePlan, err error) {
	prefix := lake.RawHourPrefix(schema, hour)
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("raw: plan hour: %w", err)
	}
	files := make([]FilePlan, 0, len(objs))
	for _, o := range objs {
		rf, err := lake.ParseRawKey(o.Key)
		if err != nil {
			continue // not a raw file (a stray object); readers ignore it
		}
		files = append(files, FilePlan{Key: o.Key, Size: o.Size, RawFile: rf})
	}
	// Per partition by first offset; the widest file first, so a merged
	// file makes the files it replaced redundant.
	slices.SortFunc(files, func(a, b FilePlan) int {
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
