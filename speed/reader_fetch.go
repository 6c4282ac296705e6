package speed

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/hll"
	"github.com/lambdalake/lambdalake/schemas"
)

// snapshot is what one query read of a view's bucket versions: the buckets
// of [lo, hi) that Redis holds in any shard, and their version per shard.
type snapshot struct {
	epoch   string  // the shards' stored fingerprints: part of every cache key
	buckets []int64 // bucket starts, sorted
	vers    []int64 // [bucket index * shards + shard]: version, 0 when that shard lacks the bucket
}

func (sn *snapshot) version(bi, shard, shards int) int64 { return sn.vers[bi*shards+shard] }

// snapshot reads, in one round trip, every shard's offsets hash (for the
// stored fingerprint, and to notice a rebuild) and the version hashes of
// the hours [lo, hi) touches. Buckets past bucket end + hot_retention are
// left out: their keys have expired or are about to.
func (r *Reader) snapshot(ctx context.Context, p *viewPlan, lo, hi int64) (*snapshot, error) {
	v := p.v
	g := v.Granularity.Microseconds()
	oldest := r.now().UnixMicro() - v.HotRetention.Microseconds() - g
	offs := make([]*redis.MapStringStringCmd, p.shards)
	var hours [][]*redis.MapStringStringCmd
	_, err := r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for s, k := range p.keys {
			offs[s] = pl.HGetAll(ctx, k.OffsetsKey())
			var hs []*redis.MapStringStringCmd
			for h := schemas.Floor(lo, microsPerHour); h < hi; h += microsPerHour {
				hs = append(hs, pl.HGetAll(ctx, k.VersionKey(h)))
			}
			hours = append(hours, hs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("speed: read versions view=%s: %w", v.Name, err)
	}
	sn := &snapshot{}
	var epoch strings.Builder
	for s, c := range offs {
		m := c.Val()
		if isRebuilding(m) {
			// The buckets are being replayed and their versions start
			// again: nothing decoded before may be reused.
			r.cache.dropPrefix(p.keyPrefix)
		}
		if s > 0 {
			epoch.WriteByte(',')
		}
		epoch.WriteString(m[fingerprintField])
	}
	sn.epoch = epoch.String()
	byBucket := map[int64][]int64{}
	for s, hs := range hours {
		for _, c := range hs {
			for f, val := range c.Val() {
				b, err := strconv.ParseInt(f, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("speed: versions view=%s: bad bucket %q", v.Name, f)
				}
				if b < lo || b >= hi || b <= oldest {
					continue
				}
				ver, err := strconv.ParseInt(val, 10, 64)
				if err != nil || ver <= 0 {
					return nil, fmt.Errorf("speed: versions view=%s bucket %d: bad version %q", v.Name, b, val)
				}
				vs := byBucket[b]
				if vs == nil {
					vs = make([]int64, p.shards)
					byBucket[b] = vs
					sn.buckets = append(sn.buckets, b)
				}
				vs[s] = ver
			}
		}
	}
	slices.Sort(sn.buckets)
	sn.vers = make([]int64, 0, len(sn.buckets)*p.shards)
	for _, b := range sn.buckets {
		sn.vers = append(sn.vers, byBucket[b]...)
	}
	return sn, nil
}

// bucketData is one shard's bucket as decoded from Redis: its cells, sorted
// by their encoded dimensions, with every metric's value and the uniq
// metrics' sketches (Redis's encoding, as GET returns it).
type bucketData struct {
	version int64
	dims    []string      // per cell: "<dims>", the fields' prefix
	parts   [][]string    // per cell: dims split into the view's dimensions
	vals    []rval        // [cell * metrics + metric]
	hll     []hll.Checked // [cell * uniq metrics + uniq index]; nil: no sketch
	size    int64
}

func (b *bucketData) bytes() int64 { return b.size }

type bucketRef struct{ bi, shard int }

// fetchCall is one read of a bucket at a version that concurrent queries
// share: the live bucket costs one read per flush, not one per query.
type fetchCall struct {
	done chan struct{}
	data *bucketData
	err  error
}

func (p *viewPlan) bucketKey(sn *snapshot, bucket int64, shard int) string {
	return p.keyPrefix + sn.epoch + "|b" + strconv.Itoa(shard) + "|" + strconv.FormatInt(bucket, 10)
}

// decoded returns the refs' buckets at (at least) the snapshot's versions:
// from the cache, from a read another query has under way, or read now,
// all the missing ones in one pipelined round trip (two with uniq metrics:
// the sketches' keys are known once the cells are).
func (r *Reader) decoded(ctx context.Context, p *viewPlan, sn *snapshot, refs []bucketRef) ([]*bucketData, error) {
	out := make([]*bucketData, len(refs))
	var mine, waits []int
	calls := make([]*fetchCall, len(refs))
	hit, miss := 0, 0
	for i, ref := range refs {
		key := p.bucketKey(sn, sn.buckets[ref.bi], ref.shard)
		ver := sn.version(ref.bi, ref.shard, p.shards)
		if e, ok := r.cache.get(key); ok && e.(*bucketData).version >= ver {
			out[i] = e.(*bucketData)
			hit++
			continue
		}
		miss++
		fk := key + "@" + strconv.FormatInt(ver, 10)
		r.mu.Lock()
		fc, ok := r.fetching[fk]
		if !ok {
			fc = &fetchCall{done: make(chan struct{})}
			r.fetching[fk] = fc
			mine = append(mine, i)
		} else {
			waits = append(waits, i)
		}
		r.mu.Unlock()
		calls[i] = fc
	}
	r.m.lookups.WithLabelValues("bucket", "hit").Add(float64(hit))
	r.m.lookups.WithLabelValues("bucket", "miss").Add(float64(miss))
	if len(mine) > 0 {
		// Others may be waiting on this read: it does not end with this
		// query's context.
		err := r.fetch(context.WithoutCancel(ctx), p, sn, refs, mine, calls)
		for _, i := range mine {
			fc := calls[i]
			if err != nil {
				fc.err = err
			}
			out[i] = fc.data
			r.mu.Lock()
			delete(r.fetching, p.bucketKey(sn, sn.buckets[refs[i].bi], refs[i].shard)+"@"+strconv.FormatInt(sn.version(refs[i].bi, refs[i].shard, p.shards), 10))
			r.mu.Unlock()
			close(fc.done)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, i := range waits {
		fc := calls[i]
		select {
		case <-fc.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if fc.err != nil {
			return nil, fc.err
		}
		out[i] = fc.data
	}
	return out, nil
}

// fetch reads the buckets refs[mine] and decodes them into their calls.
func (r *Reader) fetch(ctx context.Context, p *viewPlan, sn *snapshot, refs []bucketRef, mine []int, calls []*fetchCall) error {
	v := p.v
	hashes := make([]*redis.MapStringStringCmd, len(mine))
	_, err := r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for k, i := range mine {
			hashes[k] = pl.HGetAll(ctx, p.keys[refs[i].shard].BucketKey(sn.buckets[refs[i].bi]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("speed: read buckets view=%s: %w", v.Name, err)
	}
	data := make([]*bucketData, len(mine))
	for k, i := range mine {
		ref := refs[i]
		d, err := p.decodeBucket(sn.version(ref.bi, ref.shard, p.shards), hashes[k].Val())
		if err != nil {
			return fmt.Errorf("speed: view=%s bucket %d shard %d: %w", v.Name, sn.buckets[ref.bi], ref.shard, err)
		}
		data[k] = d
	}
	if len(p.uniq) > 0 {
		if err := r.fetchSketches(ctx, p, sn, refs, mine, data); err != nil {
			return err
		}
	}
	r.m.fetched.Add(float64(len(mine)))
	for k, i := range mine {
		ref := refs[i]
		data[k].size += data[k].sizeOfCells()
		calls[i].data = data[k]
		r.cache.put(p.bucketKey(sn, sn.buckets[ref.bi], ref.shard), data[k])
	}
	return nil
}

// fetchSketches reads the uniq sketches of the decoded buckets' cells as
// bytes, one MGET per bucket (its keys share the shard's slot).
func (r *Reader) fetchSketches(ctx context.Context, p *viewPlan, sn *snapshot, refs []bucketRef, mine []int, data []*bucketData) error {
	cmds := make([]*redis.SliceCmd, len(mine))
	_, err := r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for k, i := range mine {
			d := data[k]
			if len(d.dims) == 0 {
				continue
			}
			ref := refs[i]
			keys := make([]string, 0, len(d.dims)*len(p.uniq))
			for _, dims := range d.dims {
				for _, mi := range p.uniq {
					keys = append(keys, p.keys[ref.shard].UniqKey(sn.buckets[ref.bi], dims, p.v.Metrics[mi].Name))
				}
			}
			cmds[k] = pl.MGet(ctx, keys...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("speed: read sketches view=%s: %w", p.v.Name, err)
	}
	for k, c := range cmds {
		if c == nil {
			continue
		}
		d := data[k]
		d.hll = make([]hll.Checked, len(d.dims)*len(p.uniq))
		for j, x := range c.Val() {
			s, ok := x.(string)
			if !ok {
				continue // no value of that metric in that cell (or expired since)
			}
			// Checked once here: every rollup after merges it unchecked.
			b, err := hll.Check([]byte(s))
			if err != nil {
				return fmt.Errorf("speed: read sketches view=%s: %s: %w", p.v.Name, c.Args()[1+j], err)
			}
			d.hll[j] = b
			d.size += int64(len(s))
		}
	}
	return nil
}

// decodeBucket turns a bucket hash into cells. Fields of metrics the view
// does not have are ignored (the stored fingerprint tells a definition
// change; the reader only reads what it knows).
func (p *viewPlan) decodeBucket(version int64, h map[string]string) (*bucketData, error) {
	v := p.v
	nm := len(v.Metrics)
	cellOf := make(map[string]int, len(h)/max(1, nm))
	var dims []string
	var vals []rval
	for f, val := range h {
		d, rest, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("bad field %q", f)
		}
		ci, ok := cellOf[d]
		if !ok {
			ci = len(dims)
			cellOf[d] = ci
			dims = append(dims, d)
			vals = append(vals, make([]rval, nm)...)
		}
		if rest == emptyCellMetric {
			continue
		}
		name, neg := strings.CutSuffix(rest, negFieldSuffix)
		mi, ok := p.metricIdx[name]
		if !ok {
			continue
		}
		if err := p.decodeValue(&vals[ci*nm+mi], mi, neg, val); err != nil {
			return nil, fmt.Errorf("field %q: %w", f, err)
		}
	}
	// Cells sorted by their encoding: shards of one bucket merge in one pass.
	order := make([]int, len(dims))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(dims[a], dims[b]) })
	d := &bucketData{version: version, dims: make([]string, len(dims)), parts: make([][]string, len(dims)), vals: make([]rval, len(vals))}
	for k, ci := range order {
		d.dims[k] = dims[ci]
		parts, err := decodeDims(dims[ci], len(v.Dimensions))
		if err != nil {
			return nil, err
		}
		d.parts[k] = parts
		copy(d.vals[k*nm:(k+1)*nm], vals[ci*nm:(ci+1)*nm])
	}
	return d, nil
}

// decodeValue reads one stored field into a cell's metric.
func (p *viewPlan) decodeValue(a *rval, mi int, neg bool, s string) error {
	m := p.v.Metrics[mi]
	float := p.float[mi]
	if neg && m.Agg != schemas.Sum {
		return fmt.Errorf("a negative part of a %s metric", m.Agg)
	}
	if m.Agg == schemas.Sum && s == Overflowed {
		a.ovf, a.has = true, true
		return nil
	}
	var i int64
	var f float64
	var err error
	if float {
		f, err = strconv.ParseFloat(s, 64)
	} else {
		i, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil {
		return fmt.Errorf("bad value %q", s)
	}
	switch m.Agg {
	case schemas.Count:
		a.setInt(i)
	case schemas.Sum:
		// Add puts a value in its part by its sign; a float part that is
		// infinite marks the sum overflowed.
		if float {
			x := a.floatSum()
			x.Add(f)
			a.setFloatSum(x)
		} else {
			x := a.intSum()
			x.Add(i)
			a.setIntSum(x)
		}
	case schemas.Min, schemas.Max:
		if float {
			a.setFloat(f)
		} else {
			a.setInt(i)
		}
	default:
		return fmt.Errorf("a field for a %s metric", m.Agg)
	}
	a.has = true
	return nil
}

// sizeOfCells estimates what the cells hold beyond their sketches' bytes.
func (b *bucketData) sizeOfCells() int64 {
	n := int64(96 + 24*len(b.hll) + 24*len(b.vals))
	for i, d := range b.dims {
		n += int64(16+len(d)) + int64(24+16*len(b.parts[i]))
	}
	return n
}
