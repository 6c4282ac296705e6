package speed

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/lambdalake/lambdalake/schemas"
)

// Reader answers queries over the hot windows; the serving layer uses it for
// [B, to), and asks it whether those windows can be trusted (Whole). It is
// safe for concurrent use.
//
// Its cost grows with the answer, not with the cells in range: it reads
// the buckets' versions (one round trip), reads again only the buckets
// whose version changed since it last decoded them (one more, shared by
// every concurrent query that needs them), and answers from decoded
// buckets and rollups it keeps in memory (see the package doc, "Reading").
type Reader struct {
	rdb   redis.UniversalClient
	now   func() time.Time
	cache *lru
	m     *readMetrics
	plans sync.Map // *schemas.View -> *viewPlan

	mu       sync.Mutex
	fetching map[string]*fetchCall // bucket key@version being read
	flight   singleflight.Group    // rollups being computed
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Redis redis.UniversalClient
	// CacheBytes bounds the memory of decoded buckets and rollups kept
	// between queries (speed.read_cache; default DefaultReadCache). Below
	// zero: nothing is kept, every query reads what it needs.
	CacheBytes int64
	// Registerer gets the cache's metrics; nil: not exported.
	Registerer prometheus.Registerer
	Now        func() time.Time // default time.Now
}

// DefaultReadCache is the default bound of a Reader's cache.
const DefaultReadCache = 256 << 20

// NewReader returns a Reader. It panics if the metrics clash with other
// collectors registered under the same names (a programming error, as
// with prometheus.MustRegister).
func NewReader(cfg ReaderConfig) *Reader {
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultReadCache
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newReadMetrics(cfg.Registerer)
	if err != nil {
		panic(fmt.Sprintf("speed: reader metrics: %v", err))
	}
	return &Reader{rdb: cfg.Redis, now: cfg.Now, cache: newLRU(max(cfg.CacheBytes, 0), m), m: m,
		fetching: map[string]*fetchCall{}}
}

// CacheBytes is the estimated memory the Reader's cache holds now.
func (r *Reader) CacheBytes() int64 { return r.cache.bytesUsed() }

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
// sum/min/max and for decimal ones (the value × 10^scale), Float for
// float64 sum/min/max; Null when no event carried a
// value (e.g. min of an optional field that was always absent) or when a
// sum overflowed (schemas.IntSum, FloatSum).
type Row struct {
	T      time.Time
	Dims   []schemas.Value // in GroupBy order, typed as the schema field
	Values []schemas.Value
	// Overflow marks, per metric, a sum that overflowed (its Value is
	// Null); nil when no value of the row did.
	Overflow []bool
	// Sums are the row's sum metrics as their two parts (zero for the
	// other metrics; nil when the view has no sum), so a caller adding
	// this row to cells of the other layer applies the overflow rule as
	// if it had every cell: adding parts is what schemas.IntSum.Add of
	// each cell's value would give.
	Sums []SumParts
}

// SumParts is a rolled-up sum: Int for sums of int64 fields, Float for
// float64 fields.
type SumParts struct {
	Int   schemas.IntSum
	Float schemas.FloatSum
}

// Result is a query's rows, sorted by T then dimensions, and the
// granularity buckets in range that Redis holds data for (any shard,
// before Where, not past bucket end + hot_retention), so the caller can
// tell an empty bucket from a lost one and fill gaps from the lake.
type Result struct {
	Rows    []Row
	Buckets []time.Time
}

// Query rolls the cells of [From, To) up to Step and GroupBy. count, sum,
// min and max are exact (sums under the overflow rule); uniq is the
// estimate of the union of the cells' HyperLogLogs, computed in Go exactly
// as Redis' PFCOUNT would over the same keys.
func (r *Reader) Query(ctx context.Context, q Query) (*Result, error) {
	c, err := r.collect(ctx, q)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if c == nil {
		return res, nil
	}
	res.Buckets = c.buckets
	if c.aligned {
		n := 0
		for _, u := range c.units {
			if err := u.p.estimates(c.plan); err != nil {
				return nil, fmt.Errorf("speed: query view=%s: %w", q.View.Name, err)
			}
			n += len(u.p.groups)
		}
		rs := c.plan.rowSlabs(n, len(c.sh.groupIdx))
		res.Rows = make([]Row, 0, n)
		for _, u := range c.units {
			for gi := range u.p.groups {
				res.Rows = append(res.Rows, rs.row(u.t, &u.p.groups[gi], u.p.groups[gi].est))
			}
		}
		return res, nil
	}
	steps, err := c.fold()
	if err != nil {
		return nil, fmt.Errorf("speed: query view=%s: %w", q.View.Name, err)
	}
	ests := make([]int64, len(c.plan.uniq))
	rs := c.plan.rowSlabs(len(steps), len(c.sh.groupIdx))
	res.Rows = make([]Row, 0, len(steps))
	for _, s := range steps {
		for ui := range c.plan.uniq {
			n, err := s.g.sk[ui].estimate()
			if err != nil {
				return nil, fmt.Errorf("speed: query view=%s: %w", q.View.Name, err)
			}
			ests[ui] = n
		}
		res.Rows = append(res.Rows, rs.row(s.t, s.g, ests))
	}
	return res, nil
}

// rowSlabs hands out the slices of a query's rows from one allocation per
// kind: an answer of thousands of rows costs a few allocations, not a few
// per row.
type rowSlabs struct {
	p    *viewPlan
	dims []schemas.Value
	vals []schemas.Value
	sums []SumParts
}

func (p *viewPlan) rowSlabs(rows, dims int) *rowSlabs {
	nm := len(p.v.Metrics)
	rs := &rowSlabs{p: p, dims: make([]schemas.Value, rows*dims), vals: make([]schemas.Value, rows*nm)}
	if p.hasSum {
		rs.sums = make([]SumParts, rows*nm)
	}
	return rs
}

// take cuts the next n values off a slab (capacity n, so that appending
// to one row's slice cannot overwrite the next row's).
func take[T any](slab *[]T, n int) []T {
	out := (*slab)[:n:n]
	*slab = (*slab)[n:]
	return out
}

// row makes a Row of a rolled-up group; ests are the group's uniq
// estimates in plan.uniq order.
func (rs *rowSlabs) row(t int64, g *pgroup, ests []int64) Row {
	p := rs.p
	v := p.v
	row := Row{T: time.UnixMicro(t).UTC(), Values: take(&rs.vals, len(v.Metrics))}
	if len(g.dims) > 0 {
		row.Dims = take(&rs.dims, len(g.dims))
		copy(row.Dims, g.dims)
	}
	if p.hasSum {
		row.Sums = take(&rs.sums, len(v.Metrics))
	}
	ui := 0
	for mi, m := range v.Metrics {
		a := &g.acc[mi]
		switch {
		case m.Agg == schemas.Uniq:
			row.Values[mi] = schemas.Value{Int: ests[ui]}
			ui++
		case m.Agg == schemas.Count:
			row.Values[mi] = schemas.Value{Int: a.int()}
		case !a.has:
			row.Values[mi] = schemas.Value{Null: true}
		case m.Agg == schemas.Sum:
			var ok bool
			if p.float[mi] {
				row.Sums[mi].Float = a.floatSum()
				var f float64
				f, ok = row.Sums[mi].Float.Value()
				row.Values[mi] = schemas.Value{Float: f}
			} else {
				row.Sums[mi].Int = a.intSum()
				var n int64
				n, ok = row.Sums[mi].Int.Value()
				row.Values[mi] = schemas.Value{Int: n}
			}
			if !ok {
				row.Values[mi] = schemas.Value{Null: true}
				if row.Overflow == nil {
					row.Overflow = make([]bool, len(v.Metrics))
				}
				row.Overflow[mi] = true
			}
		case p.float[mi]:
			row.Values[mi] = schemas.Value{Float: a.float()}
		default:
			row.Values[mi] = schemas.Value{Int: a.int()}
		}
	}
	return row
}

// viewPlan is what the Reader derives once from a view definition.
type viewPlan struct {
	v         *schemas.View
	keyPrefix string // cache keys: "name|fingerprint|"
	shards    int
	keys      []Shard // per shard
	metricIdx map[string]int
	float     []bool // per metric: float64 values
	uniq      []int  // metric indexes of the uniq metrics
	uniqIdx   []int  // per metric: index in uniq, -1 if not uniq
	hasSum    bool
}

func (r *Reader) plan(v *schemas.View) *viewPlan {
	if p, ok := r.plans.Load(v); ok {
		return p.(*viewPlan)
	}
	p := &viewPlan{v: v, keyPrefix: v.Name + "|" + v.Fingerprint() + "|", shards: ShardCount(v), metricIdx: map[string]int{}}
	for s := range p.shards {
		p.keys = append(p.keys, Shard{View: v.Name, Index: s, Count: p.shards})
	}
	for mi, m := range v.Metrics {
		p.metricIdx[m.Name] = mi
		p.float = append(p.float, v.MetricType(m) == schemas.Float64)
		p.uniqIdx = append(p.uniqIdx, -1)
		switch m.Agg {
		case schemas.Uniq:
			p.uniqIdx[mi] = len(p.uniq)
			p.uniq = append(p.uniq, mi)
		case schemas.Sum:
			p.hasSum = true
		}
	}
	r.plans.Store(v, p)
	return p
}

// rval is one metric of a cell, or of a rollup of cells, in 24 bytes (a
// rollup cache holds millions): x is a count, an int64 min/max, a float64
// min/max's bits, or a sum's positive part; y a sum's negative part (int64
// or float64 bits, by the metric's type).
type rval struct {
	x, y uint64
	has  bool // a value came (sum, min, max)
	ovf  bool // a sum overflowed
}

func (a *rval) int() int64         { return int64(a.x) }
func (a *rval) float() float64     { return math.Float64frombits(a.x) }
func (a *rval) setInt(i int64)     { a.x = uint64(i) }
func (a *rval) setFloat(f float64) { a.x = math.Float64bits(f) }

func (a *rval) intSum() schemas.IntSum {
	return schemas.IntSum{Pos: int64(a.x), Neg: int64(a.y), Overflow: a.ovf}
}

func (a *rval) setIntSum(s schemas.IntSum) {
	a.x, a.y, a.ovf = uint64(s.Pos), uint64(s.Neg), s.Overflow
}

func (a *rval) floatSum() schemas.FloatSum {
	return schemas.FloatSum{Pos: math.Float64frombits(a.x), Neg: math.Float64frombits(a.y), Overflow: a.ovf}
}

func (a *rval) setFloatSum(s schemas.FloatSum) {
	a.x, a.y, a.ovf = math.Float64bits(s.Pos), math.Float64bits(s.Neg), s.Overflow
}

// merge folds another part of the same cell (another shard's) or another
// rollup of the same group: sums add part by part.
func (a *rval) merge(agg schemas.Agg, float bool, o *rval) {
	switch agg {
	case schemas.Count:
		a.x += o.x
		return
	case schemas.Sum:
		if !o.has {
			return
		}
		if float {
			s := a.floatSum()
			s.Merge(o.floatSum())
			a.setFloatSum(s)
		} else {
			s := a.intSum()
			s.Merge(o.intSum())
			a.setIntSum(s)
		}
	case schemas.Min, schemas.Max:
		if !o.has {
			return
		}
		if !a.has || (float && schemas.Replaces(agg, o.float(), a.float())) || (!float && schemas.Replaces(agg, o.int(), a.int())) {
			a.x = o.x
		}
	}
	a.has = true
}

// add folds a whole cell into a rollup: a sum adds the cell's value
// (schemas.IntSum.Add), the rule for rollups across cells.
func (a *rval) add(agg schemas.Agg, float bool, c *rval) {
	if agg != schemas.Sum {
		a.merge(agg, float, c)
		return
	}
	if !c.has {
		return
	}
	a.has = true
	if float {
		s := a.floatSum()
		if x, ok := c.floatSum().Value(); ok {
			s.Add(x)
		} else {
			s.Overflow = true
		}
		a.setFloatSum(s)
		return
	}
	s := a.intSum()
	if x, ok := c.intSum().Value(); ok {
		s.Add(x)
	} else {
		s.Overflow = true
	}
	a.setIntSum(s)
}

// shape is a query's group_by and where on the view's dimension positions,
// where values in their key encoding (appendDim), so a cell is matched on
// its encoded dimensions without decoding them.
type shape struct {
	key        string // for cache keys
	groupIdx   []int
	groupTypes []schemas.Type
	whereIdx   []int
	whereEnc   []string
	// first is set when where fixes the first dimension: the encoded
	// tuples of the cells it matches all begin with first (the value and,
	// with more dimensions, the ","), so in a bucket's sorted cells they
	// are one run, found by binary search (cellRange) instead of a scan.
	first    string
	hasFirst bool
	oneDim   bool // the view has one dimension: the run's tuples equal first
}

// cellRange is the run of sorted encoded tuples dims that can match:
// all of them, or those beginning with the first dimension's where value.
func (s *shape) cellRange(dims []string) (lo, hi int) {
	if !s.hasFirst {
		return 0, len(dims)
	}
	lo = sort.SearchStrings(dims, s.first)
	in := func(d string) bool { return strings.HasPrefix(d, s.first) }
	if s.oneDim {
		in = func(d string) bool { return d == s.first }
	}
	hi = lo + sort.Search(len(dims)-lo, func(i int) bool { return !in(dims[lo+i]) })
	return lo, hi
}

func (s *shape) match(parts []string) bool {
	for k, i := range s.whereIdx {
		if parts[i] != s.whereEnc[k] {
			return false
		}
	}
	return true
}

func resolveShape(v *schemas.View, q Query) (*shape, error) {
	s := &shape{}
	var kb strings.Builder
	kb.WriteString("g")
	for _, d := range q.GroupBy {
		i := slices.Index(v.Dimensions, d)
		if i < 0 {
			return nil, fmt.Errorf("speed: group_by %q is not a dimension of %s", d, v.Name)
		}
		fd, _ := v.Schema.Field(d)
		s.groupIdx = append(s.groupIdx, i)
		s.groupTypes = append(s.groupTypes, fd.Type)
		kb.WriteString("," + strconv.Itoa(i))
	}
	type cond struct {
		i   int
		enc string
	}
	var conds []cond
	for d, val := range q.Where {
		i := slices.Index(v.Dimensions, d)
		if i < 0 {
			return nil, fmt.Errorf("speed: where %q is not a dimension of %s", d, v.Name)
		}
		fd, _ := v.Schema.Field(d)
		conds = append(conds, cond{i, string(appendDim(nil, fd.Type, &val))})
	}
	slices.SortFunc(conds, func(a, b cond) int { return a.i - b.i })
	kb.WriteString("|w")
	for _, c := range conds {
		s.whereIdx = append(s.whereIdx, c.i)
		s.whereEnc = append(s.whereEnc, c.enc)
		kb.WriteString("," + strconv.Itoa(c.i) + "=" + c.enc)
	}
	if len(conds) > 0 && conds[0].i == 0 {
		// "," never occurs inside an encoded value (appendDim), so with
		// more dimensions the prefix ends where the value does; with one,
		// the tuples of the run equal the value.
		s.first, s.hasFirst, s.oneDim = conds[0].enc, true, len(v.Dimensions) == 1
		if !s.oneDim {
			s.first += ","
		}
	}
	s.key = kb.String()
	return s, nil
}

// Whole reports whether the speed layer has been keeping the view in
// Redis, so that a bucket in [B, now) without cells is a bucket without
// events, not lost data: every shard's offsets hash exists with at least
// one partition's offset, holds the view's current fingerprint (with its
// shard count), and no rebuild is under way. False when Redis lost (any
// shard's) data, no worker ever ran, a worker with another definition or
// shard count wrote it, or `speed rebuild` is replaying it. A rebuild also
// drops the view's cached buckets and rollups.
func (r *Reader) Whole(ctx context.Context, v *schemas.View) (bool, error) {
	hashes, err := readOffsets(ctx, r.rdb, Shards(v))
	if err != nil {
		return false, fmt.Errorf("speed: read offsets view=%s: %w", v.Name, err)
	}
	for _, m := range hashes {
		if isRebuilding(m) {
			r.cache.dropPrefix(r.plan(v).keyPrefix)
			break
		}
	}
	return shardsWhole(v, hashes), nil
}

func isRebuilding(m map[string]string) bool {
	for k, val := range m {
		if k != fingerprintField && val == rebuilding {
			return true
		}
	}
	return false
}

// HotRange returns the first bucket Redis holds for the view and the end of
// the last one (over every shard, from the buckets' versions); ok is false
// when it holds none.
func (r *Reader) HotRange(ctx context.Context, v *schemas.View) (first, end time.Time, ok bool, err error) {
	p := r.plan(v)
	now := r.now().UnixMicro()
	g := v.Granularity.Microseconds()
	oldest := now - v.HotRetention.Microseconds() - g // bucket end + hot_retention must be after now
	maxFuture := v.Schema.MaxFuture
	if maxFuture <= 0 {
		maxFuture = schemas.DefaultMaxFuture
	}
	newest := now + maxFuture.Microseconds() + microsPerHour // a writer's clock may run ahead of ours
	var cmds []*redis.StringSliceCmd
	_, err = r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, k := range p.keys {
			for h := schemas.Floor(oldest, microsPerHour); h <= newest; h += microsPerHour {
				cmds = append(cmds, pl.HKeys(ctx, k.VersionKey(h)))
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("speed: read versions view=%s: %w", v.Name, err)
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, c := range cmds {
		for _, f := range c.Val() {
			b, err := strconv.ParseInt(f, 10, 64)
			if err != nil || b <= oldest {
				continue
			}
			lo, hi = min(lo, b), max(hi, b)
		}
	}
	if lo > hi {
		return time.Time{}, time.Time{}, false, nil
	}
	return time.UnixMicro(lo).UTC(), time.UnixMicro(hi + g).UTC(), true, nil
}
