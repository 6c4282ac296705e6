package compact

import (
	"cmp"
	"slices"
)

// sortedOrder returns the row indexes of a file's rows in the file's
// order: by event time, ties by offset. ts and off are the rows' event
// times and offsets, in arrival order.
//
// A partition's records arrive almost in event-time order: only the late
// ones break it. So the rows are split in one pass into the run that keeps
// ascending (each row not before the last one kept) and the late rest; only
// the late rows are sorted, then the two are merged. On ordered input that
// is one pass; at worst (an early outlier) it degrades to a full sort.
func sortedOrder(ts, off []int64) []int32 {
	n := len(ts)
	compare := func(i, j int32) int { // by event time, then offset
		if c := cmp.Compare(ts[i], ts[j]); c != 0 {
			return c
		}
		return cmp.Compare(off[i], off[j])
	}
	before := func(i, j int32) bool { return compare(i, j) < 0 }
	run := make([]int32, 0, n)
	var late []int32
	for i := range int32(n) {
		if len(run) == 0 || !before(i, run[len(run)-1]) {
			run = append(run, i)
		} else {
			late = append(late, i)
		}
	}
	if len(late) == 0 {
		return run
	}
	slices.SortFunc(late, compare)
	out := make([]int32, 0, n)
	a, b := 0, 0
	for a < len(run) && b < len(late) {
		if before(late[b], run[a]) {
			out = append(out, late[b])
			b++
		} else {
			out = append(out, run[a])
			a++
		}
	}
	out = append(out, run[a:]...)
	return append(out, late[b:]...)
}
