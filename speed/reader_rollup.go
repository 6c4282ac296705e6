package speed

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// A query is answered from rollups: a bucket's cells rolled up to the
// query's shape (where and group_by), and, when a step spans several
// buckets, a unit's bucket rollups rolled up again (a unit is the step when
// it divides an hour, an hour when the step is whole hours, else a
// bucket). Both are cached with the versions they were computed from, so
// a query over closed minutes reads nothing from Redis but versions, and
// only the units holding a changed bucket are computed again.

// sketchRef is a uniq metric's sketch in a rollup: the union of cells'
// HyperLogLogs as Redis stores them (shared, read-only: a rollup of few
// small cells costs their references, not 16 KiB of registers) and of
// registers. Registers a rollup does not own belong to another cached
// rollup and are copied before they change.
//
// Registers that no longer change carry their histogram (see finish): the
// unit holding the live minute grows at every flush by a few cells, and
// its estimate then costs those cells' registers, not 16384.
type sketchRef struct {
	refs  []hll.Checked
	refSz int
	s     *hll.Sketch
	hist  *hll.Histogram // of s, once s no longer changes; nil until then
	own   bool
}

// Past these, a union's references are folded into registers: they would
// take more memory than the registers, or cost more to merge at every
// estimate.
const (
	collapseBytes = hll.Registers
	collapseRefs  = 32
)

func (r *sketchRef) empty() bool { return r.s == nil && len(r.refs) == 0 }

// collapse folds the references into registers of its own.
func (r *sketchRef) collapse() {
	w := new(hll.Sketch)
	if r.s != nil {
		*w = *r.s
	}
	for _, b := range r.refs {
		w.MergeChecked(b)
	}
	r.s, r.hist, r.own, r.refs, r.refSz = w, nil, true, nil, 0
}

// addBytes unions a cell's sketch in.
func (r *sketchRef) addBytes(b hll.Checked) {
	if b == nil {
		return
	}
	if r.s != nil && r.own {
		r.s.MergeChecked(b)
		r.hist = nil
		return
	}
	r.refs = append(r.refs, b)
	r.refSz += len(b)
	if r.refSz > collapseBytes || len(r.refs) > collapseRefs {
		r.collapse()
	}
}

// addRef unions another rollup's sketch in.
func (r *sketchRef) addRef(o *sketchRef) {
	if o.s != nil {
		switch {
		case r.s == nil:
			r.s, r.hist, r.own = o.s, o.hist, false
		case r.own:
			r.s.Merge(o.s)
			r.hist = nil
		default:
			r.collapse()
			r.s.Merge(o.s)
		}
	}
	for _, b := range o.refs {
		r.addBytes(b)
	}
}

// share is a copy of r that shares its registers (not owned) and
// references: a base that later additions do not change.
func (r *sketchRef) share() sketchRef {
	return sketchRef{refs: slices.Clone(r.refs), refSz: r.refSz, s: r.s, hist: r.hist}
}

// settle counts the registers once they no longer change (the rollup is
// finished), for the estimates to start from.
func (r *sketchRef) settle() {
	if r.s != nil && r.hist == nil {
		h := r.s.Histogram()
		r.hist = &h
	}
}

var sketchPool = sync.Pool{New: func() any { return new(hll.Sketch) }}

// union calls f with the union's registers (a pooled sketch: f must not
// keep it).
func (r *sketchRef) union(f func(*hll.Sketch)) {
	if len(r.refs) == 0 && r.s != nil {
		f(r.s)
		return
	}
	s := sketchPool.Get().(*hll.Sketch)
	defer sketchPool.Put(s)
	if r.s != nil {
		*s = *r.s
	} else {
		*s = hll.Sketch{}
	}
	for _, b := range r.refs {
		s.MergeChecked(b)
	}
	f(s)
}

var unionPool = sync.Pool{New: func() any { return new(hll.Union) }}

// estimate is PFCOUNT's figure for the sketch (0 when empty): a union of a
// few small cells costs their registers (hll.Union), not 16 KiB, and so
// do a few cells over settled registers.
func (r *sketchRef) estimate() (int64, error) {
	switch {
	case r.empty():
		return 0, nil
	case r.s == nil && len(r.refs) == 1:
		n, err := hll.EstimateBytes(r.refs[0])
		return int64(n), err
	case len(r.refs) == 0 && r.hist != nil:
		return int64(r.hist.Estimate()), nil
	case len(r.refs) == 0:
		return int64(r.s.Estimate()), nil
	}
	u := unionPool.Get().(*hll.Union)
	defer unionPool.Put(u)
	u.Reset()
	for _, b := range r.refs {
		u.AddChecked(b)
	}
	switch {
	case r.s == nil:
		return int64(u.Estimate()), nil
	case r.hist != nil:
		return int64(u.EstimateOver(r.s, r.hist)), nil
	}
	u.AddSketch(r.s)
	return int64(u.Estimate()), nil
}

// encoded is the sketch in Redis's encoding (nil when empty).
func (r *sketchRef) encoded() []byte {
	switch {
	case r.empty():
		return nil
	case r.s == nil && len(r.refs) == 1:
		return r.refs[0]
	}
	var b []byte
	r.union(func(s *hll.Sketch) { b = s.Marshal() })
	return b
}

// size counts the referenced bytes too (several rollups may count the
// same ones: the bound errs high).
func (r *sketchRef) size() int64 {
	n := int64(24*len(r.refs) + r.refSz)
	if r.s != nil && r.own {
		n += hll.Registers
	}
	if r.hist != nil {
		n += 256
	}
	return n
}

// pgroup is one group of a rollup: the group_by values and every metric.
type pgroup struct {
	key  string          // the group_by values' encodings joined by ","
	dims []schemas.Value // typed, in group_by order
	acc  []rval          // per metric (uniq: unused)
	sk   []sketchRef     // per uniq metric
	est  []int64         // per uniq metric, once computed (or kept from the rollup it grew from)
	// grew: a sketch got something since the group was seeded from an
	// older rollup (its estimate must be computed again).
	grew bool
}

// partial is a rollup of the buckets of one span (a bucket or a unit) to a
// query shape, immutable once cached.
type partial struct {
	vers   []int64 // what it was computed from (see unitVersions)
	groups []pgroup
	size   int64

	once   sync.Once
	estErr error
}

func (pt *partial) bytes() int64 { return pt.size }

// estimates computes the groups' uniq figures once.
func (pt *partial) estimates(p *viewPlan) error {
	pt.once.Do(func() {
		for gi := range pt.groups {
			g := &pt.groups[gi]
			if g.est != nil {
				continue
			}
			est := make([]int64, len(p.uniq))
			for ui := range p.uniq {
				n, err := g.sk[ui].estimate()
				if err != nil {
					pt.estErr = err
					return
				}
				est[ui] = n
			}
			g.est = est
		}
	})
	return pt.estErr
}

// groupBuilder rolls cells or rollups up into groups.
type groupBuilder struct {
	p      *viewPlan
	sh     *shape
	idx    map[string]int
	groups []pgroup
	kb     []byte
}

func newGroupBuilder(p *viewPlan, sh *shape) *groupBuilder {
	return &groupBuilder{p: p, sh: sh, idx: map[string]int{}}
}

// group returns the group of key, made with dims() when new. The pointer
// is valid until the next call.
func (b *groupBuilder) group(key []byte, dims func() ([]schemas.Value, error)) (*pgroup, error) {
	if gi, ok := b.idx[string(key)]; ok {
		return &b.groups[gi], nil
	}
	d, err := dims()
	if err != nil {
		return nil, err
	}
	k := string(key)
	b.idx[k] = len(b.groups)
	b.groups = append(b.groups, pgroup{key: k, dims: d, acc: make([]rval, len(b.p.v.Metrics)), sk: make([]sketchRef, len(b.p.uniq))})
	return &b.groups[len(b.groups)-1], nil
}

// cellGroup returns the group of a cell (by its split dimensions).
func (b *groupBuilder) cellGroup(parts []string) (*pgroup, error) {
	b.kb = b.kb[:0]
	for k, i := range b.sh.groupIdx {
		if k > 0 {
			b.kb = append(b.kb, ',')
		}
		b.kb = append(b.kb, parts[i]...)
	}
	return b.group(b.kb, func() ([]schemas.Value, error) {
		var dims []schemas.Value
		for k, i := range b.sh.groupIdx {
			dv, err := dimValue(b.sh.groupTypes[k], parts[i])
			if err != nil {
				return nil, err
			}
			dims = append(dims, dv)
		}
		return dims, nil
	})
}

// addCell folds one cell (every shard's part of it merged) into its group.
func (b *groupBuilder) addCell(parts []string, vals []rval, sketches []hll.Checked) error {
	g, err := b.cellGroup(parts)
	if err != nil {
		return err
	}
	b.foldValues(g, vals)
	for ui := range sketches {
		g.sk[ui].addBytes(sketches[ui])
	}
	return nil
}

// seed starts the groups from an older rollup of the same span whose
// buckets have only grown since: its sketches (shared) and estimates, but
// not its other metrics, which addPartial folds again from every bucket.
// HyperLogLogs only ever gain registers, so the old sketches unioned with
// the changed buckets' are the new ones.
func (b *groupBuilder) seed(old *partial) {
	for gi := range old.groups {
		og := &old.groups[gi]
		b.kb = append(b.kb[:0], og.key...)
		g, _ := b.group(b.kb, func() ([]schemas.Value, error) { return og.dims, nil })
		for ui := range og.sk {
			g.sk[ui] = og.sk[ui].share()
		}
		g.est = og.est
	}
}

// foldValues folds a cell's count, sum, min and max values into its group.
func (b *groupBuilder) foldValues(g *pgroup, vals []rval) {
	for mi, m := range b.p.v.Metrics {
		if m.Agg != schemas.Uniq {
			g.acc[mi].add(m.Agg, b.p.float[mi], &vals[mi])
		}
	}
}

// addMergedCell is addCell for a cell merged from several shards: its
// sketches (made for it alone) pass to the group.
func (b *groupBuilder) addMergedCell(parts []string, vals []rval, sks []sketchRef) error {
	g, err := b.cellGroup(parts)
	if err != nil {
		return err
	}
	b.foldValues(g, vals)
	for ui := range sks {
		o := &sks[ui]
		if g.sk[ui].empty() {
			g.sk[ui] = *o
			continue
		}
		g.sk[ui].addRef(o)
	}
	return nil
}

// addPartial folds a rollup of the same shape into the groups; sketches
// false leaves the sketches out (they are in the seed already).
func (b *groupBuilder) addPartial(pt *partial, sketches bool) error {
	for gi := range pt.groups {
		pg := &pt.groups[gi]
		b.kb = append(b.kb[:0], pg.key...)
		g, err := b.group(b.kb, func() ([]schemas.Value, error) { return pg.dims, nil })
		if err != nil {
			return err
		}
		for mi, m := range b.p.v.Metrics {
			if m.Agg != schemas.Uniq {
				g.acc[mi].merge(m.Agg, b.p.float[mi], &pg.acc[mi])
			}
		}
		if !sketches {
			continue
		}
		for ui := range pg.sk {
			if pg.sk[ui].empty() {
				continue
			}
			g.sk[ui].addRef(&pg.sk[ui])
			g.grew = true
		}
	}
	return nil
}

// finish sorts the groups by their group_by values and sizes them.
func (b *groupBuilder) finish(vers []int64) *partial {
	types := b.sh.groupTypes
	slices.SortFunc(b.groups, func(x, y pgroup) int {
		for k := range x.dims {
			if c := schemas.CompareValues(types[k], x.dims[k], y.dims[k]); c != 0 {
				return c
			}
		}
		return 0
	})
	pt := &partial{vers: vers, groups: b.groups, size: int64(96 + 8*len(vers))}
	for gi := range b.groups {
		g := &b.groups[gi]
		if g.grew {
			g.est, g.grew = nil, false
		}
		pt.size += int64(150+len(g.key)+40*len(g.dims)+24*len(g.acc)) + int64(64*len(g.sk)+8*len(g.est))
		for ui := range g.sk {
			g.sk[ui].settle()
			pt.size += g.sk[ui].size()
		}
	}
	return pt
}

// bucketPartial rolls one bucket up to a shape from its shards' decoded
// cells (nil for a shard without the bucket). A cell present in several
// shards is first merged part by part, so its sums are what one shard
// would hold; then cells add up under the rollup rule.
func (p *viewPlan) bucketPartial(sh *shape, shards []*bucketData, vers []int64) (*partial, error) {
	b := newGroupBuilder(p, sh)
	nm, nu := len(p.v.Metrics), len(p.uniq)
	var live []*bucketData
	for _, d := range shards {
		if d != nil && len(d.dims) > 0 {
			live = append(live, d)
		}
	}
	if len(live) == 1 {
		d := live[0]
		lo, hi := sh.cellRange(d.dims)
		for ci := lo; ci < hi; ci++ {
			if !sh.match(d.parts[ci]) {
				continue
			}
			if err := b.addCell(d.parts[ci], d.vals[ci*nm:(ci+1)*nm], sketchesOf(d, ci, nu)); err != nil {
				return nil, err
			}
		}
		return b.finish(vers), nil
	}
	// Several shards: a merge of their sorted cells.
	pos, end := make([]int, len(live)), make([]int, len(live))
	for s, d := range live {
		pos[s], end[s] = sh.cellRange(d.dims)
	}
	vals := make([]rval, nm)
	merged := make([]sketchRef, nu)
	for {
		var next string
		found := false
		for s, d := range live {
			if pos[s] < end[s] && (!found || d.dims[pos[s]] < next) {
				next, found = d.dims[pos[s]], true
			}
		}
		if !found {
			break
		}
		clear(vals)
		clear(merged)
		var parts []string
		for s, d := range live {
			ci := pos[s]
			if ci >= end[s] || d.dims[ci] != next {
				continue
			}
			pos[s]++
			parts = d.parts[ci]
			if !sh.match(parts) {
				continue
			}
			for mi, m := range p.v.Metrics {
				vals[mi].merge(m.Agg, p.float[mi], &d.vals[ci*nm+mi])
			}
			for ui := range nu {
				merged[ui].addBytes(sketchOf(d, ci, ui, nu))
			}
		}
		if !sh.match(parts) {
			continue
		}
		if err := b.addMergedCell(parts, vals, merged); err != nil {
			return nil, err
		}
	}
	return b.finish(vers), nil
}

func sketchOf(d *bucketData, ci, ui, nu int) hll.Checked {
	if d.hll == nil {
		return nil
	}
	return d.hll[ci*nu+ui]
}

func sketchesOf(d *bucketData, ci, nu int) []hll.Checked {
	if d.hll == nil || nu == 0 {
		return nil
	}
	return d.hll[ci*nu : (ci+1)*nu]
}

// unitOf is the span of the rollups a query of this step is made of: the
// step when it divides an hour, an hour when the step is whole hours, else
// one bucket.
func unitOf(g, step time.Duration) time.Duration {
	switch {
	case step <= time.Hour && time.Hour%step == 0:
		return step
	case step%time.Hour == 0:
		return time.Hour
	}
	return g
}

// unitSpan is one unit of a query: the buckets [b0, b1) of the snapshot,
// within [lo, hi), in the step starting at t.
type unitSpan struct {
	t, lo, hi int64
	b0, b1    int
}

// collected is a query resolved into rollups, in time order.
type collected struct {
	plan    *viewPlan
	sh      *shape
	aligned bool // a unit is a whole step: its groups are the answer's rows
	buckets []time.Time
	units   []unitPart
}

type unitPart struct {
	t int64 // the step holding the unit
	p *partial
}

// collect resolves a query into its units' rollups: versions first, then
// the rollups still valid from the cache, then the buckets the others need
// (read once for all), then the missing rollups (each computed once for
// concurrent queries). nil for an empty range.
func (r *Reader) collect(ctx context.Context, q Query) (*collected, error) {
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
	sh, err := resolveShape(v, q)
	if err != nil {
		return nil, err
	}
	p := r.plan(v)
	lo, hi := v.Bucket(q.From.UnixMicro()), q.To.UnixMicro()
	sn, err := r.snapshot(ctx, p, lo, hi)
	if err != nil {
		return nil, err
	}
	stepUs, unit := step.Microseconds(), unitOf(v.Granularity, step).Microseconds()
	c := &collected{plan: p, sh: sh, aligned: unit == stepUs}
	for _, b := range sn.buckets {
		c.buckets = append(c.buckets, time.UnixMicro(b).UTC())
	}
	var spans []unitSpan
	for i := 0; i < len(sn.buckets); {
		u := schemas.Floor(sn.buckets[i], unit)
		j := i
		for j < len(sn.buckets) && sn.buckets[j] < u+unit {
			j++
		}
		spans = append(spans, unitSpan{t: schemas.Floor(u, stepUs), lo: max(u, lo), hi: min(u+unit, hi), b0: i, b1: j})
		i = j
	}
	oneBucket := unit == v.Granularity.Microseconds()

	// What the cache holds at these versions.
	units := make([]*partial, len(spans))
	bparts := map[int]*partial{} // bucket index -> rollup
	need := map[int]bool{}       // bucket rollups to compute
	hits, misses := 0, 0
	for k, s := range spans {
		if oneBucket {
			if pt := r.cachedPartial(p.bucketPartialKey(sn, sh, sn.buckets[s.b0]), bucketVersions(sn, p, s.b0)); pt != nil {
				units[k] = pt
				hits++
			} else {
				need[s.b0] = true
				misses++
			}
			continue
		}
		if pt := r.cachedPartial(p.unitPartialKey(sn, sh, s), unitVersions(sn, p, s)); pt != nil {
			units[k] = pt
			hits++
			continue
		}
		misses++
		for bi := s.b0; bi < s.b1; bi++ {
			if pt := r.cachedPartial(p.bucketPartialKey(sn, sh, sn.buckets[bi]), bucketVersions(sn, p, bi)); pt != nil {
				bparts[bi] = pt
				hits++
			} else {
				need[bi] = true
				misses++
			}
		}
	}
	r.m.lookups.WithLabelValues("rollup", "hit").Add(float64(hits))
	r.m.lookups.WithLabelValues("rollup", "miss").Add(float64(misses))

	// The buckets the missing rollups are made of, read at once.
	if len(need) > 0 {
		var refs []bucketRef
		for bi := range need {
			for s := range p.shards {
				if sn.version(bi, s, p.shards) > 0 {
					refs = append(refs, bucketRef{bi, s})
				}
			}
		}
		data, err := r.decoded(ctx, p, sn, refs)
		if err != nil {
			return nil, err
		}
		byBucket := map[int][]*bucketData{}
		for i, ref := range refs {
			if byBucket[ref.bi] == nil {
				byBucket[ref.bi] = make([]*bucketData, p.shards)
			}
			byBucket[ref.bi][ref.shard] = data[i]
		}
		for bi := range need {
			key := p.bucketPartialKey(sn, sh, sn.buckets[bi])
			vers := bucketVersions(sn, p, bi)
			pt, err := r.computePartial(key, vers, func() (*partial, error) {
				return p.bucketPartial(sh, byBucket[bi], vers)
			})
			if err != nil {
				return nil, fmt.Errorf("speed: view=%s bucket %d: %w", v.Name, sn.buckets[bi], err)
			}
			bparts[bi] = pt
		}
	}
	for k, s := range spans {
		if units[k] != nil {
			continue
		}
		if oneBucket {
			units[k] = bparts[s.b0]
			continue
		}
		key, vers := p.unitPartialKey(sn, sh, s), unitVersions(sn, p, s)
		// The unit holding the live minute changes at every flush: its
		// sketches grow from the previous rollup's by the changed buckets'.
		var old *partial
		if e, ok := r.cache.get(key); ok {
			old = e.(*partial)
		}
		changed := grownSince(old, vers, p.shards)
		pt, err := r.computePartial(key, vers, func() (*partial, error) {
			b := newGroupBuilder(p, sh)
			if changed != nil {
				b.seed(old)
			}
			for bi := s.b0; bi < s.b1; bi++ {
				if err := b.addPartial(bparts[bi], changed == nil || changed[sn.buckets[bi]]); err != nil {
					return nil, err
				}
			}
			return b.finish(vers), nil
		})
		if err != nil {
			return nil, fmt.Errorf("speed: view=%s: %w", v.Name, err)
		}
		units[k] = pt
	}
	for k, s := range spans {
		c.units = append(c.units, unitPart{t: s.t, p: units[k]})
	}
	return c, nil
}

// cachedPartial returns the rollup under key if it was computed from vers.
func (r *Reader) cachedPartial(key string, vers []int64) *partial {
	e, ok := r.cache.get(key)
	if !ok {
		return nil
	}
	pt := e.(*partial)
	if !slices.Equal(pt.vers, vers) {
		return nil
	}
	return pt
}

// computePartial computes a rollup once for every concurrent query asking
// for it at the same versions, and caches it.
func (r *Reader) computePartial(key string, vers []int64, compute func() (*partial, error)) (*partial, error) {
	fk := make([]byte, 0, len(key)+16*len(vers))
	fk = append(fk, key...)
	for _, x := range vers {
		fk = append(fk, '@')
		fk = strconv.AppendInt(fk, x, 10)
	}
	val, err, _ := r.flight.Do(string(fk), func() (any, error) {
		if pt := r.cachedPartial(key, vers); pt != nil {
			return pt, nil // computed by a flight that just ended
		}
		pt, err := compute()
		if err != nil {
			return nil, err
		}
		r.cache.put(key, pt)
		return pt, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*partial), nil
}

func (p *viewPlan) bucketPartialKey(sn *snapshot, sh *shape, bucket int64) string {
	return p.keyPrefix + sn.epoch + "|p|" + sh.key + "|" + strconv.FormatInt(bucket, 10)
}

func (p *viewPlan) unitPartialKey(sn *snapshot, sh *shape, s unitSpan) string {
	return p.keyPrefix + sn.epoch + "|u|" + sh.key + "|" + strconv.FormatInt(s.lo, 10) + "|" + strconv.FormatInt(s.hi, 10)
}

// bucketVersions are a bucket's versions per shard.
func bucketVersions(sn *snapshot, p *viewPlan, bi int) []int64 {
	return slices.Clone(sn.vers[bi*p.shards : (bi+1)*p.shards])
}

// unitVersions are the span's buckets, each followed by its versions per
// shard: a bucket that appears changes them as a new version does.
func unitVersions(sn *snapshot, p *viewPlan, s unitSpan) []int64 {
	out := make([]int64, 0, (s.b1-s.b0)*(1+p.shards))
	for bi := s.b0; bi < s.b1; bi++ {
		out = append(out, sn.buckets[bi])
		out = append(out, sn.vers[bi*p.shards:(bi+1)*p.shards]...)
	}
	return out
}

// grownSince returns the buckets of vers that are new or changed since
// old (a rollup of the same span), or nil when old cannot be grown into
// vers: none, or a bucket of it is gone or older (expired, or the data was
// replaced), or nothing changed.
func grownSince(old *partial, vers []int64, shards int) map[int64]bool {
	if old == nil {
		return nil
	}
	w := 1 + shards
	ov := old.vers
	changed := map[int64]bool{}
	i := 0
	for j := 0; j < len(vers); j += w {
		b := vers[j]
		if i < len(ov) && ov[i] < b {
			return nil // an old bucket is gone
		}
		if i < len(ov) && ov[i] == b {
			for s := 1; s < w; s++ {
				switch {
				case vers[j+s] < ov[i+s]:
					return nil
				case vers[j+s] > ov[i+s]:
					changed[b] = true
				}
			}
			i += w
			continue
		}
		changed[b] = true
	}
	if i < len(ov) || len(changed) == 0 {
		return nil
	}
	return changed
}

// stepGroup is one group of one step of a query whose units are smaller
// than its step.
type stepGroup struct {
	t int64
	g *pgroup
}

// fold rolls the units up into their steps.
func (c *collected) fold() ([]stepGroup, error) {
	var out []stepGroup
	for i := 0; i < len(c.units); {
		t := c.units[i].t
		b := newGroupBuilder(c.plan, c.sh)
		for ; i < len(c.units) && c.units[i].t == t; i++ {
			if err := b.addPartial(c.units[i].p, true); err != nil {
				return nil, err
			}
		}
		pt := b.finish(nil)
		for gi := range pt.groups {
			out = append(out, stepGroup{t: t, g: &pt.groups[gi]})
		}
	}
	return out, nil
}
