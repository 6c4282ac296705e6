package speed

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// Reader answers queries over the hot windows; the serving layer uses it for
// [B, to). It is safe for concurrent use.
type Reader struct {
	rdb redis.UniversalClient
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Redis redis.UniversalClient
}

// NewReader returns a Reader.
func NewReader(cfg ReaderConfig) *Reader { return &Reader{rdb: cfg.Redis} }

// Query asks for a view's figures over [From, To).
type Query struct {
	View     *schemas.View
	From, To time.Time
	// Where keeps cells whose dimension equals the value, given as text
	// (ints in decimal, bools true/false).
	Where map[string]string
	// GroupBy is a subset of the view's dimensions; the others are rolled up.
	GroupBy []string
	// Step is a multiple of the granularity (0: the granularity); buckets
	// are rolled up into steps aligned on the Unix epoch.
	Step time.Duration
}

// Row is one (step, group) of a result. Values are in the view's metric
// order: Int for count, uniq and int64 sum/min/max, Float for float64
// sum/min/max; Null when no event carried a value (e.g. min of an optional
// field that was always absent).
type Row struct {
	T      time.Time
	Dims   []schemas.Value // in GroupBy order, typed as the schema field
	Values []schemas.Value
}

// Result is a query's rows, sorted by T then dimensions, and the
// granularity buckets in range that Redis holds any data for, so the caller
// can tell an empty bucket from a lost one and fill gaps from the lake.
type Result struct {
	Rows    []Row
	Buckets []time.Time
}

// MetricType is the type of a metric's values in a Row.
func MetricType(v *schemas.View, m schemas.Metric) schemas.Type {
	switch m.Agg {
	case schemas.Count, schemas.Uniq:
		return schemas.Int64
	}
	f, _ := v.Schema.Field(m.Field)
	return f.Type
}

type cellRef struct {
	bucket int64
	member string
	dims   []string
}

type group struct {
	row  Row
	accs []acc
	hlls [][]string // per metric: HLL keys to count together
}

// Query reads the cells of [From, To) through the view's index and rolls them
// up. uniq uses PFCOUNT, over several HLLs at once (a union) when buckets or
// dimensions are rolled up; sums of float64 fields carry Redis'
// HINCRBYFLOAT rounding (see the package doc).
func (r *Reader) Query(ctx context.Context, q Query) (*Result, error) {
	v := q.View
	g := v.Granularity
	step := q.Step
	if step == 0 {
		step = g
	}
	if step < g || step%g != 0 {
		return nil, fmt.Errorf("speed: step %s is not a multiple of the granularity %s", step, g)
	}
	if !q.To.After(q.From) {
		return &Result{}, nil
	}
	groupIdx, groupTypes, where, err := resolveFilters(v, q)
	if err != nil {
		return nil, err
	}

	// The index scores are bucket starts; a bucket overlapping From counts.
	lo := v.Bucket(q.From.UnixMicro())
	hi := q.To.UnixMicro() // exclusive
	members, err := r.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: IndexKey(v.Name), ByScore: true,
		Start: strconv.FormatInt(lo, 10), Stop: "(" + strconv.FormatInt(hi, 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("speed: query view=%s: read index: %w", v.Name, err)
	}
	res := &Result{}
	seen := map[int64]bool{}
	var cells []cellRef
	for _, z := range members {
		m, _ := z.Member.(string)
		bucket, enc, err := splitMember(m)
		if err != nil {
			return nil, err
		}
		dims, err := decodeDims(enc, len(v.Dimensions))
		if err != nil {
			return nil, err
		}
		if !seen[bucket] {
			seen[bucket] = true
			res.Buckets = append(res.Buckets, time.UnixMicro(bucket).UTC())
		}
		ok := true
		for i, want := range where {
			if dims[i] != want {
				ok = false
				break
			}
		}
		if ok {
			cells = append(cells, cellRef{bucket: bucket, member: m, dims: dims})
		}
	}
	slices.SortFunc(res.Buckets, func(a, b time.Time) int { return a.Compare(b) })

	hashes, err := r.fetch(ctx, v, cells)
	if err != nil {
		return nil, err
	}
	stepUs := step.Microseconds()
	groups := map[string]*group{}
	var order []*group
	var kb strings.Builder
	for ci, c := range cells {
		h := hashes[ci]
		if len(h) == 0 {
			continue // expired after the index was read
		}
		t := c.bucket - ((c.bucket%stepUs)+stepUs)%stepUs
		kb.Reset()
		kb.WriteString(strconv.FormatInt(t, 10))
		for _, i := range groupIdx {
			kb.WriteByte(',')
			kb.WriteString(c.dims[i])
		}
		gr := groups[kb.String()]
		if gr == nil {
			gr = &group{accs: make([]acc, len(v.Metrics)), hlls: make([][]string, len(v.Metrics))}
			gr.row.T = time.UnixMicro(t).UTC()
			for k, i := range groupIdx {
				dv, err := dimValue(groupTypes[k], c.dims[i])
				if err != nil {
					return nil, err
				}
				gr.row.Dims = append(gr.row.Dims, dv)
			}
			groups[kb.String()] = gr
			order = append(order, gr)
		}
		for mi, m := range v.Metrics {
			if m.Agg == schemas.Uniq {
				gr.hlls[mi] = append(gr.hlls[mi], UniqKey(v.Name, c.member, m.Name))
				continue
			}
			s, ok := h[m.Name]
			if !ok {
				continue
			}
			if err := mergeValue(&gr.accs[mi], m.Agg, MetricType(v, m), s); err != nil {
				return nil, fmt.Errorf("speed: query view=%s cell %s metric %s: %w", v.Name, c.member, m.Name, err)
			}
		}
	}
	if err := r.countUniq(ctx, v, order); err != nil {
		return nil, err
	}
	for _, gr := range order {
		gr.row.Values = make([]schemas.Value, len(v.Metrics))
		for mi, m := range v.Metrics {
			a := &gr.accs[mi]
			switch {
			case m.Agg == schemas.Count || m.Agg == schemas.Uniq:
				gr.row.Values[mi] = schemas.Value{Int: a.i}
			case !a.has:
				gr.row.Values[mi] = schemas.Value{Null: true}
			case MetricType(v, m) == schemas.Float64:
				gr.row.Values[mi] = schemas.Value{Float: a.f}
			default:
				gr.row.Values[mi] = schemas.Value{Int: a.i}
			}
		}
		res.Rows = append(res.Rows, gr.row)
	}
	slices.SortFunc(res.Rows, func(a, b Row) int {
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
	return res, nil
}

// fetch reads the cells' hashes in pipelined batches.
func (r *Reader) fetch(ctx context.Context, v *schemas.View, cells []cellRef) ([]map[string]string, error) {
	out := make([]map[string]string, len(cells))
	const batch = 1000
	for start := 0; start < len(cells); start += batch {
		end := min(start+batch, len(cells))
		cmds := make([]*redis.MapStringStringCmd, end-start)
		_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				cmds[i-start] = p.HGetAll(ctx, BucketKey(v.Name, cells[i].member))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("speed: query view=%s: read cells: %w", v.Name, err)
		}
		for i, c := range cmds {
			out[start+i] = c.Val()
		}
	}
	return out, nil
}

// countUniq runs one PFCOUNT per (group, uniq metric), multi-key when the
// group rolls several cells up (all keys of a view share a slot).
func (r *Reader) countUniq(ctx context.Context, v *schemas.View, groups []*group) error {
	type job struct {
		a   *acc
		cmd *redis.IntCmd
	}
	var jobs []job
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, gr := range groups {
			for mi, keys := range gr.hlls {
				if len(keys) > 0 {
					jobs = append(jobs, job{a: &gr.accs[mi], cmd: p.PFCount(ctx, keys...)})
				}
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return fmt.Errorf("speed: query view=%s: count uniq: %w", v.Name, err)
	}
	for _, j := range jobs {
		j.a.i = j.cmd.Val()
	}
	return nil
}

// mergeValue folds one stored metric value into a rolled-up one.
func mergeValue(a *acc, agg schemas.Agg, t schemas.Type, s string) error {
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
	case schemas.Count, schemas.Sum:
		a.i += i
		a.f += f
	case schemas.Min:
		if !a.has || i < a.i {
			a.i = i
		}
		if !a.has || f < a.f {
			a.f = f
		}
	case schemas.Max:
		if !a.has || i > a.i {
			a.i = i
		}
		if !a.has || f > a.f {
			a.f = f
		}
	}
	a.has = true
	return nil
}

func compareValues(t schemas.Type, a, b schemas.Value) int {
	if a.Null || b.Null {
		switch {
		case a.Null && b.Null:
			return 0
		case a.Null:
			return -1
		}
		return 1
	}
	if t == schemas.String {
		return strings.Compare(a.Str, b.Str)
	}
	return cmp.Compare(a.Int, b.Int)
}

// resolveFilters maps a query's group_by and where onto the view's
// dimension positions, with where values in their key encoding.
func resolveFilters(v *schemas.View, q Query) (groupIdx []int, groupTypes []schemas.Type, where map[int]string, err error) {
	groupIdx = make([]int, len(q.GroupBy))
	groupTypes = make([]schemas.Type, len(q.GroupBy))
	for i, d := range q.GroupBy {
		groupIdx[i] = slices.Index(v.Dimensions, d)
		if groupIdx[i] < 0 {
			return nil, nil, nil, fmt.Errorf("speed: group_by %q is not a dimension of %s", d, v.Name)
		}
		f, _ := v.Schema.Field(d)
		groupTypes[i] = f.Type
	}
	where = map[int]string{}
	for d, val := range q.Where {
		i := slices.Index(v.Dimensions, d)
		if i < 0 {
			return nil, nil, nil, fmt.Errorf("speed: where %q is not a dimension of %s", d, v.Name)
		}
		f, _ := v.Schema.Field(d)
		enc, err := encodeDimString(f.Type, val)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("speed: where %s: %w", d, err)
		}
		where[i] = enc
	}
	return groupIdx, groupTypes, where, nil
}
