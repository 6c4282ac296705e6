package speed

import (
	"context"
	"errors"
	"fmt"
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
// narrow ranges (one step): every HLL in range is read with GET. Groups
// whose sketches have all expired since the index was read are left out.
func (r *Reader) Sketches(ctx context.Context, q Query) ([]SketchRow, error) {
	v := q.View
	var uniq []int
	for mi, m := range v.Metrics {
		if m.Agg == schemas.Uniq {
			uniq = append(uniq, mi)
		}
	}
	if len(uniq) == 0 {
		return nil, nil
	}
	sc, err := r.scan(ctx, q)
	if err != nil || sc == nil {
		return nil, err
	}
	type hllKey struct {
		key    string
		group  int
		metric int
	}
	keys := make([]hllKey, 0, len(sc.cells)*len(uniq))
	for _, c := range sc.cells {
		for _, mi := range uniq {
			keys = append(keys, hllKey{uniqKey(v.Name, c.member, v.Metrics[mi].Name), c.group, mi})
		}
	}
	sk := make([][]*hll.Sketch, len(sc.groups))
	const batch = 1000
	for start := 0; start < len(keys); start += batch {
		end := min(start+batch, len(keys))
		cmds := make([]*redis.StringCmd, end-start)
		_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				cmds[i-start] = p.Get(ctx, keys[i].key)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("speed: read sketches view=%s: %w", v.Name, err)
		}
		for i, c := range cmds {
			k := keys[start+i]
			b, err := c.Bytes()
			if errors.Is(err, redis.Nil) {
				continue // expired after the index was read
			}
			if err != nil {
				return nil, fmt.Errorf("speed: read sketch %s: %w", k.key, err)
			}
			if sk[k.group] == nil {
				sk[k.group] = make([]*hll.Sketch, len(v.Metrics))
			}
			s := sk[k.group][k.metric]
			if s == nil {
				s = new(hll.Sketch)
				sk[k.group][k.metric] = s
			}
			if err := s.MergeBytes(b); err != nil {
				return nil, fmt.Errorf("speed: sketch %s: %w", k.key, err)
			}
		}
	}
	out := make([]SketchRow, 0, len(sc.groups))
	for gi, g := range sc.groups {
		if sk[gi] == nil {
			continue
		}
		row := SketchRow{T: time.UnixMicro(g.t).UTC(), Dims: g.dims, HLL: make([][]byte, len(v.Metrics))}
		for mi, s := range sk[gi] {
			if s != nil {
				row.HLL[mi] = s.Marshal()
			}
		}
		out = append(out, row)
	}
	return out, nil
}
