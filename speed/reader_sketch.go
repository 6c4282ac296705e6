package speed

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// SketchRow is one (step, group) of a Sketches answer: per metric (view
// order) the union of the group's uniq HyperLogLogs in Redis's encoding, nil
// for metrics that are not uniq.
type SketchRow struct {
	T    time.Time
	Dims []schemas.Value // in GroupBy order
	HLL  [][]byte
}

// Sketches returns the merged uniq sketches of q's groups, grouped exactly
// as Query groups them. The serving layer needs them where an output step
// straddles the boundary B: there a uniq is the union of the batch sketches
// before B and these after it, which no single estimate can give. It reads
// through the same rollups as Query (a Query of the same range just before
// leaves nothing to read but versions). Groups without any sketch (every
// value of their uniq metrics null) are left out. The bytes are shared:
// callers must not change them.
func (r *Reader) Sketches(ctx context.Context, q Query) ([]SketchRow, error) {
	v := q.View
	c, err := r.collect(ctx, q)
	if err != nil || c == nil || len(c.plan.uniq) == 0 {
		return nil, err
	}
	var groups []stepGroup
	if c.aligned {
		for _, u := range c.units {
			for gi := range u.p.groups {
				groups = append(groups, stepGroup{t: u.t, g: &u.p.groups[gi]})
			}
		}
	} else if groups, err = c.fold(); err != nil {
		return nil, fmt.Errorf("speed: sketches view=%s: %w", v.Name, err)
	}
	out := make([]SketchRow, 0, len(groups))
	for _, sg := range groups {
		row := SketchRow{T: time.UnixMicro(sg.t).UTC(), Dims: slices.Clone(sg.g.dims), HLL: make([][]byte, len(v.Metrics))}
		any := false
		for ui, mi := range c.plan.uniq {
			if b := sg.g.sk[ui].encoded(); b != nil {
				row.HLL[mi] = b
				any = true
			}
		}
		if any {
			out = append(out, row)
		}
	}
	return out, nil
}
