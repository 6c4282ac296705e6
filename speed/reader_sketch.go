package speed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/hll"
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
// before B and these after it, which no PFCOUNT can compute. Meant for
// narrow ranges (one step): every HLL in range is read with GET.
func (r *Reader) Sketches(ctx context.Context, q Query) ([]SketchRow, error) {
	v := q.View
	step := q.Step
	if step == 0 {
		step = v.Granularity
	}
	if step < v.Granularity || step%v.Granularity != 0 {
		return nil, fmt.Errorf("speed: step %s is not a multiple of the granularity %s", step, v.Granularity)
	}
	var uniq []int
	for mi, m := range v.Metrics {
		if m.Agg == schemas.Uniq {
			uniq = append(uniq, mi)
		}
	}
	if len(uniq) == 0 || !q.To.After(q.From) {
		return nil, nil
	}
	groupIdx, groupTypes, where, err := resolveFilters(v, q)
	if err != nil {
		return nil, err
	}
	members, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: IndexKey(v.Name), ByScore: true,
		Start: strconv.FormatInt(v.Bucket(q.From.UnixMicro()), 10), Stop: "(" + strconv.FormatInt(q.To.UnixMicro(), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("speed: sketches view=%s: read index: %w", v.Name, err)
	}
	type grp struct {
		row    SketchRow
		sk     []*hll.Sketch
		keyIdx []int // into keys, per cell
	}
	groups := map[string]*grp{}
	var order []*grp
	var keys []string
	var owners []*grp
	var owned []int // metric index per key
	stepUs := step.Microseconds()
	for _, m := range members {
		bucket, enc, err := splitMember(m)
		if err != nil {
			return nil, err
		}
		dims, err := decodeDims(enc, len(v.Dimensions))
		if err != nil {
			return nil, err
		}
		ok := true
		for i, want := range where {
			if dims[i] != want {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		t := bucket - ((bucket%stepUs)+stepUs)%stepUs
		var kb strings.Builder
		kb.WriteString(strconv.FormatInt(t, 10))
		for _, i := range groupIdx {
			kb.WriteByte(',')
			kb.WriteString(dims[i])
		}
		g := groups[kb.String()]
		if g == nil {
			g = &grp{row: SketchRow{T: time.UnixMicro(t).UTC(), HLL: make([][]byte, len(v.Metrics))}, sk: make([]*hll.Sketch, len(v.Metrics))}
			for k, i := range groupIdx {
				dv, err := dimValue(groupTypes[k], dims[i])
				if err != nil {
					return nil, err
				}
				g.row.Dims = append(g.row.Dims, dv)
			}
			groups[kb.String()] = g
			order = append(order, g)
		}
		for _, mi := range uniq {
			keys = append(keys, UniqKey(v.Name, m, v.Metrics[mi].Name))
			owners = append(owners, g)
			owned = append(owned, mi)
		}
	}
	const batch = 1000
	for start := 0; start < len(keys); start += batch {
		end := min(start+batch, len(keys))
		cmds := make([]*redis.StringCmd, end-start)
		_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				cmds[i-start] = p.Get(ctx, keys[i])
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("speed: sketches view=%s: read HLLs: %w", v.Name, err)
		}
		for i, c := range cmds {
			b, err := c.Bytes()
			if errors.Is(err, redis.Nil) {
				continue // expired after the index was read
			}
			if err != nil {
				return nil, fmt.Errorf("speed: sketches view=%s: read %s: %w", v.Name, keys[start+i], err)
			}
			g, mi := owners[start+i], owned[start+i]
			if g.sk[mi] == nil {
				g.sk[mi] = new(hll.Sketch)
			}
			if err := g.sk[mi].MergeBytes(b); err != nil {
				return nil, fmt.Errorf("speed: sketches view=%s: %s: %w", v.Name, keys[start+i], err)
			}
		}
	}
	out := make([]SketchRow, 0, len(order))
	for _, g := range order {
		for mi, s := range g.sk {
			if s != nil {
				g.row.HLL[mi] = s.Marshal()
			}
		}
		out = append(out, g.row)
	}
	slices.SortFunc(out, func(a, b SketchRow) int {
		if c := a.T.Compare(b.T); c != 0 {
			return c
		}
		for i := range a.Dims {
			if c := compareValues(groupTypes[i], a.Dims[i], b.Dims[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	return out, nil
}
