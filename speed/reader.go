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

	"github.com/lambdalake/lambdalake/schemas"
)

// Reader answers queries over the hot windows; the serving layer uses it for
// [B, to), and asks it whether those windows can be trusted (Whole). It is
// safe for concurrent use.
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
	// Where keeps cells whose dimension (by name) equals the value, typed
	// as the schema field (schemas.ParseDimValue reads one from text).
	Where map[string]schemas.Value
	// GroupBy is a subset of the view's dimensions; the others are rolled up.
	GroupBy []string
	// Step is a multiple of the granularity (0: the granularity); buckets
	// are rolled up into steps aligned on the Unix epoch.
	Step time.Duration
}

// Row is one (step, group) of a result. Values are in the view's metric
// order, typed as View.MetricType says: Int for count, uniq and int64
// sum/min/max, Float for float64 sum/min/max; Null when no event carried a
// value (e.g. min of an optional field that was always absent).
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

// Query reads the cells of [From, To) through the view's index and rolls them
// up. uniq uses PFCOUNT, over several HLLs at once (a union) when buckets or
// dimensions are rolled up; sums of float64 fields carry Redis'
// HINCRBYFLOAT rounding (see the package doc).
func (r *Reader) Query(ctx context.Context, q Query) (*Result, error) {
	v := q.View
	sc, err := r.scan(ctx, q)
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return &Result{}, nil
	}
	hashes, err := r.fetch(ctx, v, sc.cells)
	if err != nil {
		return nil, err
	}
	accs := make([][]acc, len(sc.groups))
	hlls := make([][][]string, len(sc.groups)) // per group and metric: HLL keys to count together
	for ci, c := range sc.cells {
		h := hashes[ci]
		if len(h) == 0 {
			continue // expired after the index was read
		}
		if accs[c.group] == nil {
			accs[c.group], hlls[c.group] = make([]acc, len(v.Metrics)), make([][]string, len(v.Metrics))
		}
		for mi, m := range v.Metrics {
			if m.Agg == schemas.Uniq {
				hlls[c.group][mi] = append(hlls[c.group][mi], uniqKey(v.Name, c.member, m.Name))
				continue
			}
			s, ok := h[m.Name]
			if !ok {
				continue
			}
			if err := mergeValue(&accs[c.group][mi], m.Agg, v.MetricType(m), s); err != nil {
				return nil, fmt.Errorf("speed: query view=%s cell %s metric %s: %w", v.Name, c.member, m.Name, err)
			}
		}
	}
	if err := r.countUniq(ctx, v, accs, hlls); err != nil {
		return nil, err
	}
	res := &Result{Buckets: sc.buckets}
	for gi, g := range sc.groups {
		if accs[gi] == nil {
			continue // every cell expired
		}
		row := Row{T: time.UnixMicro(g.t).UTC(), Dims: g.dims, Values: make([]schemas.Value, len(v.Metrics))}
		for mi, m := range v.Metrics {
			a := &accs[gi][mi]
			switch {
			case m.Agg == schemas.Count || m.Agg == schemas.Uniq:
				row.Values[mi] = schemas.Value{Int: a.i}
			case !a.has:
				row.Values[mi] = schemas.Value{Null: true}
			case v.MetricType(m) == schemas.Float64:
				row.Values[mi] = schemas.Value{Float: a.f}
			default:
				row.Values[mi] = schemas.Value{Int: a.i}
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// cellScan is what Query and Sketches share: the view's cells in [From, To)
// that pass Where, each assigned to its output group (step, group_by
// values), and the buckets Redis holds anything for.
type cellScan struct {
	buckets []time.Time  // granularity buckets holding any cell (before Where), sorted
	groups  []*cellGroup // sorted by t, then dimensions
	cells   []scannedCell
}

type cellGroup struct {
	t    int64 // step start, Unix µs
	dims []schemas.Value
}

type scannedCell struct {
	member string // "<bucket>:<dims>", the suffix of the cell's keys
	group  int    // index into cellScan.groups
}

// scan reads the view's index for [From, To) and groups the cells that pass
// Where. It returns nil (and no error) for an empty range.
func (r *Reader) scan(ctx context.Context, q Query) (*cellScan, error) {
	v := q.View
	step := q.Step
	if step == 0 {
		step = v.Granularity
	}
	if step < v.Granularity || step%v.Granularity != 0 {
		return nil, fmt.Errorf("speed: step %s is not a multiple of the granularity %s", step, v.Granularity)
	}
	if !q.To.After(q.From) {
		return nil, nil
	}
	f, err := resolveFilters(v, q)
	if err != nil {
		return nil, err
	}
	// The index scores are bucket starts; a bucket overlapping From counts.
	members, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: IndexKey(v.Name), ByScore: true,
		Start: strconv.FormatInt(v.Bucket(q.From.UnixMicro()), 10), Stop: "(" + strconv.FormatInt(q.To.UnixMicro(), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("speed: read index view=%s: %w", v.Name, err)
	}
	sc := &cellScan{}
	stepUs := step.Microseconds()
	seen := map[int64]bool{}
	byKey := map[string]int{}
	var kb strings.Builder
	for _, m := range members {
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
			sc.buckets = append(sc.buckets, time.UnixMicro(bucket).UTC())
		}
		if !f.match(dims) {
			continue
		}
		t := schemas.Floor(bucket, stepUs)
		kb.Reset()
		kb.WriteString(strconv.FormatInt(t, 10))
		for _, i := range f.groupIdx {
			kb.WriteByte(',')
			kb.WriteString(dims[i])
		}
		gi, ok := byKey[kb.String()]
		if !ok {
			g := &cellGroup{t: t}
			for k, i := range f.groupIdx {
				dv, err := dimValue(f.groupTypes[k], dims[i])
				if err != nil {
					return nil, err
				}
				g.dims = append(g.dims, dv)
			}
			gi = len(sc.groups)
			byKey[kb.String()] = gi
			sc.groups = append(sc.groups, g)
		}
		sc.cells = append(sc.cells, scannedCell{member: m, group: gi})
	}
	slices.SortFunc(sc.buckets, func(a, b time.Time) int { return a.Compare(b) })
	sc.sortGroups(f.groupTypes)
	return sc, nil
}

// sortGroups orders the groups by t, then group_by values, and renumbers
// the cells' group indexes to match.
func (sc *cellScan) sortGroups(types []schemas.Type) {
	order := make([]int, len(sc.groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ga, gb := sc.groups[a], sc.groups[b]
		if ga.t != gb.t {
			if ga.t < gb.t {
				return -1
			}
			return 1
		}
		for k := range ga.dims {
			if c := schemas.CompareValues(types[k], ga.dims[k], gb.dims[k]); c != 0 {
				return c
			}
		}
		return 0
	})
	pos := make([]int, len(order))
	sorted := make([]*cellGroup, len(order))
	for newIdx, old := range order {
		pos[old] = newIdx
		sorted[newIdx] = sc.groups[old]
	}
	sc.groups = sorted
	for i := range sc.cells {
		sc.cells[i].group = pos[sc.cells[i].group]
	}
}

// fetch reads the cells' hashes in pipelined batches.
func (r *Reader) fetch(ctx context.Context, v *schemas.View, cells []scannedCell) ([]map[string]string, error) {
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
			return nil, fmt.Errorf("speed: read cells view=%s: %w", v.Name, err)
		}
		for i, c := range cmds {
			out[start+i] = c.Val()
		}
	}
	return out, nil
}

// countUniq runs one PFCOUNT per (group, uniq metric), multi-key when the
// group rolls several cells up (all keys of a view share a slot).
func (r *Reader) countUniq(ctx context.Context, v *schemas.View, accs [][]acc, hlls [][][]string) error {
	type job struct {
		a   *acc
		cmd *redis.IntCmd
	}
	var jobs []job
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for gi, perMetric := range hlls {
			for mi, keys := range perMetric {
				if len(keys) > 0 {
					jobs = append(jobs, job{a: &accs[gi][mi], cmd: p.PFCount(ctx, keys...)})
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("speed: count uniq view=%s: %w", v.Name, err)
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

// filters are a query's group_by and where on the view's dimension
// positions, where values in their key encoding (appendDim), so a cell is
// matched on its member without decoding it.
type filters struct {
	groupIdx   []int
	groupTypes []schemas.Type
	whereIdx   []int
	whereEnc   []string
}

func (f *filters) match(dims []string) bool {
	for k, i := range f.whereIdx {
		if dims[i] != f.whereEnc[k] {
			return false
		}
	}
	return true
}

func resolveFilters(v *schemas.View, q Query) (*filters, error) {
	f := &filters{}
	for _, d := range q.GroupBy {
		i := slices.Index(v.Dimensions, d)
		if i < 0 {
			return nil, fmt.Errorf("speed: group_by %q is not a dimension of %s", d, v.Name)
		}
		fd, _ := v.Schema.Field(d)
		f.groupIdx = append(f.groupIdx, i)
		f.groupTypes = append(f.groupTypes, fd.Type)
	}
	for d, val := range q.Where {
		i := slices.Index(v.Dimensions, d)
		if i < 0 {
			return nil, fmt.Errorf("speed: where %q is not a dimension of %s", d, v.Name)
		}
		fd, _ := v.Schema.Field(d)
		f.whereIdx = append(f.whereIdx, i)
		f.whereEnc = append(f.whereEnc, string(appendDim(nil, fd.Type, &val)))
	}
	return f, nil
}

// Whole reports whether the speed layer has been keeping the view in
// Redis, so that a bucket in [B, now) without cells is a bucket without
// events, not lost data: every shard's offsets hash exists with at least
// one partition's offset, holds the view's current fingerprint (with its
// shard count), and no rebuild is under way. False when Redis lost (any
// shard's) data, no worker ever ran, a worker with another definition or
// shard count wrote it, or `speed rebuild` is replaying it.
func (r *Reader) Whole(ctx context.Context, v *schemas.View) (bool, error) {
	hashes, err := readOffsets(ctx, r.rdb, Shards(v))
	if err != nil {
		return false, fmt.Errorf("speed: read offsets view=%s: %w", v.Name, err)
	}
	return shardsWhole(v, hashes), nil
}

// HotRange returns the first bucket Redis holds for the view and the end of
// the last one; ok is false when it holds none.
func (r *Reader) HotRange(ctx context.Context, v *schemas.View) (first, end time.Time, ok bool, err error) {
	var lo, hi *redis.ZSliceCmd
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		lo = p.ZRangeWithScores(ctx, IndexKey(v.Name), 0, 0)
		hi = p.ZRangeWithScores(ctx, IndexKey(v.Name), -1, -1)
		return nil
	})
	if err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("speed: read index view=%s: %w", v.Name, err)
	}
	if len(lo.Val()) == 0 || len(hi.Val()) == 0 {
		return time.Time{}, time.Time{}, false, nil
	}
	first = time.UnixMicro(int64(lo.Val()[0].Score)).UTC()
	end = time.UnixMicro(int64(hi.Val()[0].Score)).UTC().Add(v.Granularity)
	return first, end, true, nil
}
