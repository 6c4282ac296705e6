package speed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// StoredCell is one (bucket, dimensions) cell of a view as the layout stores
// it, merged over the view's shards.
type StoredCell struct {
	Bucket int64           // bucket start, Unix µs
	Dims   []schemas.Value // in the view's dimension order, typed as the schema field
	// Values per metric (view order), typed as View.MetricType says; Null
	// when no event carried a value or the sum overflowed. uniq is the
	// estimate of the merged sketch (Redis' PFCOUNT).
	Values []schemas.Value
	// Overflow per metric: the sum overflowed (schemas.IntSum/FloatSum);
	// nil when none did.
	Overflow []bool
	// HLL per metric: the merged uniq sketch in Redis' encoding; nil for
	// other metrics.
	HLL [][]byte
}

// ReadCells reads every cell of the view's buckets that start in
// [from, to), from every shard, at the stored grain: no roll-up, no
// filter, no cache. It is the plain read-back of the write layout, for
// tests, benchmarks and operators' tools; the serving layer asks the
// Reader. Cells come sorted by bucket, then encoded dimensions.
func ReadCells(ctx context.Context, rdb redis.UniversalClient, v *schemas.View, from, to time.Time) ([]StoredCell, error) {
	shards := Shards(v)
	lo, hi := v.Bucket(from.UnixMicro()), to.UnixMicro()
	var hours []int64
	for h := HourOf(lo); h < hi; h += microsPerHour {
		hours = append(hours, h)
	}
	type shardBucket struct {
		sh     Shard
		bucket int64
	}
	var sbs []shardBucket
	vcmds := make([]*redis.MapStringStringCmd, 0, len(shards)*len(hours))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sh := range shards {
			for _, h := range hours {
				vcmds = append(vcmds, p.HGetAll(ctx, sh.VersionKey(h)))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("speed: read versions view=%s: %w", v.Name, err)
	}
	for i, c := range vcmds {
		for f := range c.Val() {
			b, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("speed: view=%s: bad bucket %q in a version hash", v.Name, f)
			}
			if b >= lo && b < hi {
				sbs = append(sbs, shardBucket{shards[i/len(hours)], b})
			}
		}
	}
	bcmds := make([]*redis.MapStringStringCmd, len(sbs))
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sb := range sbs {
			bcmds[i] = p.HGetAll(ctx, sb.sh.BucketKey(sb.bucket))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("speed: read buckets view=%s: %w", v.Name, err)
	}

	type key struct {
		bucket int64
		dims   string
	}
	type merging struct {
		accs   []acc
		ovf    []bool
		shards []Shard
	}
	metricIdx := map[string]int{}
	for i, m := range v.Metrics {
		metricIdx[m.Name] = i
	}
	cells := map[key]*merging{}
	for i, c := range bcmds {
		sb := sbs[i]
		seen := map[string]bool{}
		for f, val := range c.Val() {
			dims, metric, neg, ok := SplitField(f)
			if !ok {
				return nil, fmt.Errorf("speed: view=%s bucket %d: bad field %q", v.Name, sb.bucket, f)
			}
			k := key{sb.bucket, dims}
			mc := cells[k]
			if mc == nil {
				mc = &merging{accs: make([]acc, len(v.Metrics)), ovf: make([]bool, len(v.Metrics))}
				cells[k] = mc
			}
			if !seen[dims] {
				seen[dims] = true
				mc.shards = append(mc.shards, sb.sh)
			}
			if metric == "" {
				continue // the cell exists, nothing more
			}
			mi, ok := metricIdx[metric]
			if !ok || v.Metrics[mi].Agg == schemas.Uniq {
				return nil, fmt.Errorf("speed: view=%s bucket %d: field %q names no stored metric", v.Name, sb.bucket, f)
			}
			if err := mergeStored(&mc.accs[mi], &mc.ovf[mi], v.Metrics[mi].Agg, v.MetricType(v.Metrics[mi]), val, neg); err != nil {
				return nil, fmt.Errorf("speed: view=%s bucket %d field %q: %w", v.Name, sb.bucket, f, err)
			}
		}
	}

	keys := make([]key, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		return cmp.Compare(a.dims, b.dims)
	})
	// uniq: the cell's sketch in every shard holding the cell, merged.
	type get struct {
		cell, metric int
		cmd          *redis.StringCmd
	}
	var gets []get
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for ci, k := range keys {
			for mi, m := range v.Metrics {
				if m.Agg != schemas.Uniq {
					continue
				}
				for _, sh := range cells[k].shards {
					gets = append(gets, get{ci, mi, p.Get(ctx, sh.UniqKey(k.bucket, k.dims, m.Name))})
				}
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("speed: read sketches view=%s: %w", v.Name, err)
	}
	sketches := map[[2]int]*hll.Sketch{}
	for _, g := range gets {
		b, err := g.cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("speed: read sketch view=%s: %w", v.Name, err)
		}
		s := sketches[[2]int{g.cell, g.metric}]
		if s == nil {
			s = new(hll.Sketch)
			sketches[[2]int{g.cell, g.metric}] = s
		}
		if err := s.MergeBytes(b); err != nil {
			return nil, fmt.Errorf("speed: sketch view=%s: %w", v.Name, err)
		}
	}

	out := make([]StoredCell, 0, len(keys))
	for ci, k := range keys {
		mc := cells[k]
		enc, err := decodeDims(k.dims, len(v.Dimensions))
		if err != nil {
			return nil, err
		}
		sc := StoredCell{Bucket: k.bucket, Values: make([]schemas.Value, len(v.Metrics)), HLL: make([][]byte, len(v.Metrics))}
		for i, d := range v.Dimensions {
			f, _ := v.Schema.Field(d)
			dv, err := dimValue(f.Type, enc[i])
			if err != nil {
				return nil, err
			}
			sc.Dims = append(sc.Dims, dv)
		}
		for mi, m := range v.Metrics {
			a := &mc.accs[mi]
			typ := v.MetricType(m)
			switch {
			case m.Agg == schemas.Uniq:
				if s := sketches[[2]int{ci, mi}]; s != nil {
					sc.Values[mi] = schemas.Value{Int: int64(s.Estimate())}
					sc.HLL[mi] = s.Marshal()
				}
			case m.Agg == schemas.Count:
				sc.Values[mi] = schemas.Value{Int: a.i}
			case mc.ovf[mi] || a.is.Overflow || a.fs.Overflow:
				if sc.Overflow == nil {
					sc.Overflow = make([]bool, len(v.Metrics))
				}
				sc.Overflow[mi] = true
				sc.Values[mi] = schemas.Value{Null: true}
			case !a.has:
				sc.Values[mi] = schemas.Value{Null: true}
			case m.Agg == schemas.Sum && typ == schemas.Float64:
				x, _ := a.fs.Value()
				sc.Values[mi] = schemas.Value{Float: x}
			case m.Agg == schemas.Sum:
				x, _ := a.is.Value()
				sc.Values[mi] = schemas.Value{Int: x}
			case typ == schemas.Float64:
				sc.Values[mi] = schemas.Value{Float: a.f}
			default:
				sc.Values[mi] = schemas.Value{Int: a.i}
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// mergeStored folds one stored field into a cell's metric, merging shards
// as the overflow rule says: parts add up separately, "ovf" is sticky.
func mergeStored(a *acc, ovf *bool, agg schemas.Agg, t schemas.Type, s string, neg bool) error {
	if s == Overflowed {
		if agg != schemas.Sum {
			return fmt.Errorf("%q in a %s", s, agg)
		}
		*ovf = true
		return nil
	}
	var i int64
	var f float64
	var err error
	if t == schemas.Float64 {
		f, err = strconv.ParseFloat(s, 64)
	} else {
		i, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil {
		return fmt.Errorf("bad value %q", s)
	}
	switch agg {
	case schemas.Count:
		a.i += i
		return nil
	case schemas.Sum:
		// Each stored part lies on its side of zero, so adding it as
		// one value puts it in its part.
		if neg && (i > 0 || f > 0) || !neg && (i < 0 || f < 0) {
			return fmt.Errorf("%q on the wrong side of zero", s)
		}
		if t == schemas.Float64 {
			a.fs.Add(f)
		} else {
			a.is.Add(i)
		}
	case schemas.Min, schemas.Max:
		if !a.has || schemas.Replaces(agg, i, a.i) {
			a.i = i
		}
		if !a.has || schemas.Replaces(agg, f, a.f) {
			a.f = f
		}
	}
	a.has = true
	return nil
}
