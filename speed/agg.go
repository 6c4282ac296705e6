package speed

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// plan is a view compiled for the hot path: field positions instead of names.
type plan struct {
	view     *schemas.View
	gMicros  int64
	dimIdx   []int
	dimTypes []schemas.Type
	metrics  []metricPlan
}

type metricPlan struct {
	name     string
	agg      schemas.Agg
	field    int // -1 for count
	typ      schemas.Type
	optional bool
}

func newPlan(v *schemas.View) (*plan, error) {
	p := &plan{view: v, gMicros: v.Granularity.Microseconds()}
	if p.gMicros <= 0 {
		return nil, fmt.Errorf("speed: view %s: granularity %s", v.Name, v.Granularity)
	}
	for _, d := range v.Dimensions {
		i := v.Schema.FieldIndex(d)
		if i < 0 {
			return nil, fmt.Errorf("speed: view %s: no dimension field %q", v.Name, d)
		}
		p.dimIdx = append(p.dimIdx, i)
		p.dimTypes = append(p.dimTypes, v.Schema.Fields[i].Type)
	}
	for _, m := range v.Metrics {
		mp := metricPlan{name: m.Name, agg: m.Agg, field: -1}
		if m.Agg != schemas.Count {
			i := v.Schema.FieldIndex(m.Field)
			if i < 0 {
				return nil, fmt.Errorf("speed: view %s metric %s: no field %q", v.Name, m.Name, m.Field)
			}
			f := v.Schema.Fields[i]
			mp.field, mp.typ, mp.optional = i, f.Type, f.Optional
			if m.Agg != schemas.Uniq && !f.Type.Numeric() {
				return nil, fmt.Errorf("speed: view %s metric %s: %s over a %s field", v.Name, m.Name, m.Agg, f.Type)
			}
		}
		p.metrics = append(p.metrics, mp)
	}
	return p, nil
}

// acc is the running state of one metric in one cell. Which members are used
// depends on the metric: i for counts and int64 min/max, f for float64
// min/max, is and fs for sums (two monotone parts each, under the overflow
// rule of schemas.IntSum/FloatSum), reps for uniq (one value per
// HyperLogLog register, see hll.go).
type acc struct {
	i    int64
	f    float64
	is   schemas.IntSum
	fs   schemas.FloatSum
	has  bool // min/max/sum saw at least one non-null value
	reps []uniqRep
}

// cell is the pending aggregate of one (bucket, dimensions) of a view.
type cell struct {
	member string // "<bucket>:<dims>"
	bucket int64
	accs   []acc
}

// aggregator pre-aggregates the events of one view from one partition between
// two flushes, so Redis work grows with the cells touched, not the events.
type aggregator struct {
	plan  *plan
	cells map[string]*cell
	free  []*cell // cells of earlier flushes, reused with their storage
	buf   []byte
	vals  int   // uniq values held, to bound memory
	added int64 // events added since the last reset (counted as skipped if Redis rejects their flush)
}

// maxReusedReps bounds the uniq storage a reused cell keeps, so one burst
// into a single cell does not pin its memory for good.
const maxReusedReps = 1024

// newCell returns an empty cell, reusing a free one when there is one: a
// flush interval touches about the same cells as the last, and reusing
// them spares the allocator and the collector per-cell work.
func (a *aggregator) newCell(member string, bucket int64) *cell {
	n := len(a.free)
	if n == 0 {
		return &cell{member: member, bucket: bucket, accs: make([]acc, len(a.plan.metrics))}
	}
	c := a.free[n-1]
	a.free = a.free[:n-1]
	c.member, c.bucket = member, bucket
	for i := range c.accs {
		reps := c.accs[i].reps[:0]
		if cap(reps) > maxReusedReps {
			reps = nil
		}
		c.accs[i] = acc{reps: reps}
	}
	return c
}

func newAggregator(p *plan) *aggregator {
	return &aggregator{plan: p, cells: make(map[string]*cell)}
}

// bucket returns the bucket (Unix µs) the row belongs to.
func (a *aggregator) bucket(r *schemas.Row) int64 {
	return a.plan.view.Bucket(a.plan.view.Schema.TimeMicros(r))
}

// add folds one decoded event into its cell.
func (a *aggregator) add(r *schemas.Row, bucket int64) {
	p := a.plan
	b := strconv.AppendInt(a.buf[:0], bucket, 10)
	b = append(b, ':')
	for i, fi := range p.dimIdx {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendDim(b, p.dimTypes[i], &r.Values[fi])
	}
	a.buf = b
	c, ok := a.cells[string(b)] // no allocation for the lookup
	if !ok {
		c = a.newCell(string(b), bucket)
		a.cells[c.member] = c
	}
	a.added++
	for i := range p.metrics {
		m := &p.metrics[i]
		s := &c.accs[i]
		if m.agg == schemas.Count {
			s.i++
			continue
		}
		v := &r.Values[m.field]
		if v.Null {
			continue // an absent optional value takes no part in sum/min/max/uniq
		}
		switch m.agg {
		case schemas.Sum:
			if m.typ == schemas.Float64 {
				s.fs.Add(v.Float)
			} else {
				s.is.Add(v.Int)
			}
			s.has = true
		case schemas.Min, schemas.Max:
			if m.typ == schemas.Float64 {
				if !s.has || schemas.Replaces(m.agg, v.Float, s.f) {
					s.f = v.Float
				}
			} else if !s.has || schemas.Replaces(m.agg, v.Int, s.i) {
				s.i = v.Int
			}
			s.has = true
		case schemas.Uniq:
			e := schemas.UniqElement(m.typ, v)
			s.reps = append(s.reps, uniqRep{hllPatLen(e), e})
			a.vals++
			if n := len(s.reps); n >= 1024 && n&(n-1) == 0 {
				// Many values in one cell: fold those of one register so
				// memory follows the 16384 registers, not the events.
				s.reps = compactReps(s.reps)
				a.vals -= n - len(s.reps)
			}
		}
	}
}

// size is how much the aggregator holds, in cells plus uniq values.
func (a *aggregator) size() int { return len(a.cells) + a.vals }

func (a *aggregator) reset() {
	for _, c := range a.cells {
		a.free = append(a.free, c)
	}
	clear(a.cells)
	a.vals, a.added = 0, 0
}

// span is the Kafka offset range [from, to) of one partition that a flush
// covers for one view.
type span struct {
	field    string // "<topic>:<partition>"
	from, to int64
}

// hllAdd is one PFADD of a flush: a uniq metric of one cell.
type hllAdd struct {
	key   string
	expMs int64
	vals  []any
}

// Script operations on one field of a bucket hash (see applyScript).
const (
	opInt      = "i" // count, or an int64 sum's positive part: add exactly
	opIntNeg   = "I" // an int64 sum's negative part (after its "i")
	opFloat    = "f" // a float64 sum's positive part: add in double, '%.17g'
	opFloatNeg = "F" // a float64 sum's negative part (after its "f")
	opOverflow = "o" // the flush's own partial sum overflowed: the sum is overflowed
	opIntMin   = "n" // int64 min, compared exactly as decimal text
	opIntMax   = "x"
	opFloatMin = "m" // float64 min, compared as doubles
	opFloatMax = "M"
	opExists   = "e" // read a field of the cell (for the "t" that follows)
	opTouch    = "t" // write "<dims>:_" = "0" unless an "e" since the last "t" found a field
)

// flushArgs encodes the pending cells of several aggregators of one view
// (one per partition of one shard) as the KEYS and ARGV of applyScript and
// the PFADDs that go with it, merging cells the partitions share so Redis
// sees each cell once, and grouping them by bucket: one hash per bucket.
// Expiry is per bucket: bucket end + hot_retention; per hour for the
// version hashes: hour end + hot_retention.
func flushArgs(p *plan, sh Shard, aggs []*aggregator, spans []span, nowMs int64) (keys []string, args []any, hlls []hllAdd) {
	v := p.view
	retMs := v.HotRetention.Milliseconds()
	gMs := v.Granularity.Milliseconds()
	groups := make(map[string][]*cell)
	byBucket := make(map[int64][]string)
	var buckets []int64
	for _, a := range aggs {
		for m, c := range a.cells {
			g, ok := groups[m]
			if !ok {
				if _, seen := byBucket[c.bucket]; !seen {
					buckets = append(buckets, c.bucket)
				}
				byBucket[c.bucket] = append(byBucket[c.bucket], m)
			}
			groups[m] = append(g, c)
		}
	}
	slices.Sort(buckets)
	keys = make([]string, 0, 1+2*len(buckets))
	keys = append(keys, sh.OffsetsKey())
	for _, b := range buckets {
		keys = append(keys, sh.BucketKey(b))
	}
	// Version hashes follow the bucket hashes, one per hour.
	hourKey := make(map[int64]int, 2)
	for _, b := range buckets {
		h := HourOf(b)
		if _, ok := hourKey[h]; !ok {
			keys = append(keys, sh.VersionKey(h))
			hourKey[h] = len(keys) // Lua's KEYS index
		}
	}
	args = make([]any, 0, 3+3*len(spans)+5*len(buckets)+len(groups)*3*(len(p.metrics)+1))
	args = append(args, strconv.Itoa(len(spans)))
	for _, sp := range spans {
		args = append(args, sp.field, strconv.FormatInt(sp.from, 10), strconv.FormatInt(sp.to, 10))
	}
	args = append(args, strconv.Itoa(len(buckets)), strconv.FormatInt(nowMs+offsetsTTL(v).Milliseconds(), 10))
	hourUs := time.Hour.Microseconds()
	var merged acc
	for _, b := range buckets {
		h := HourOf(b)
		args = append(args, strconv.FormatInt(b, 10), strconv.Itoa(hourKey[h]),
			strconv.FormatInt(b/1000+gMs+retMs, 10), strconv.FormatInt((h+hourUs)/1000+retMs, 10), "0")
		nOpsAt := len(args) - 1
		nOps := 0
		op := func(op, field, value string) {
			args = append(args, op, field, value)
			nOps++
		}
		for _, m := range byBucket[b] {
			cs := groups[m]
			dims := m[strings.IndexByte(m, ':')+1:]
			cellOps := nOps
			for i := range p.metrics {
				mp := &p.metrics[i]
				if mp.agg == schemas.Uniq {
					continue
				}
				merged = acc{}
				for _, c := range cs {
					mergeAcc(&merged, &c.accs[i], mp)
				}
				switch {
				case mp.agg == schemas.Count:
					op(opInt, CellField(dims, mp.name), strconv.FormatInt(merged.i, 10))
				case !merged.has:
				case mp.agg == schemas.Sum && mp.typ == schemas.Float64:
					if merged.fs.Overflow {
						op(opOverflow, CellField(dims, mp.name), "")
						break
					}
					op(opFloat, CellField(dims, mp.name), strconv.FormatFloat(merged.fs.Pos, 'g', -1, 64))
					if merged.fs.Neg != 0 {
						op(opFloatNeg, NegField(dims, mp.name), strconv.FormatFloat(merged.fs.Neg, 'g', -1, 64))
					}
				case mp.agg == schemas.Sum:
					if merged.is.Overflow {
						op(opOverflow, CellField(dims, mp.name), "")
						break
					}
					op(opInt, CellField(dims, mp.name), strconv.FormatInt(merged.is.Pos, 10))
					if merged.is.Neg != 0 {
						op(opIntNeg, NegField(dims, mp.name), strconv.FormatInt(merged.is.Neg, 10))
					}
				case mp.typ == schemas.Float64:
					o := opFloatMax
					if mp.agg == schemas.Min {
						o = opFloatMin
					}
					op(o, CellField(dims, mp.name), strconv.FormatFloat(merged.f, 'g', -1, 64))
				default:
					o := opIntMax
					if mp.agg == schemas.Min {
						o = opIntMin
					}
					op(o, CellField(dims, mp.name), strconv.FormatInt(merged.i, 10))
				}
			}
			if nOps == cellOps {
				// Every value was null (or the view has only uniq
				// metrics): the cell still exists, so the bucket hash
				// lists it, unless an earlier flush gave it a field.
				for i := range p.metrics {
					if p.metrics[i].agg != schemas.Uniq {
						op(opExists, CellField(dims, p.metrics[i].name), "")
					}
				}
				op(opTouch, EmptyCellField(dims), "0")
			}
		}
		args[nOpsAt] = strconv.Itoa(nOps)
	}
	var reps []uniqRep
	for _, b := range buckets {
		exp := b/1000 + gMs + retMs
		for _, m := range byBucket[b] {
			cs := groups[m]
			dims := m[strings.IndexByte(m, ':')+1:]
			for i := range p.metrics {
				if p.metrics[i].agg != schemas.Uniq {
					continue
				}
				reps = reps[:0]
				for _, c := range cs {
					reps = append(reps, c.accs[i].reps...)
				}
				if len(reps) == 0 {
					continue
				}
				reps = compactReps(reps)
				add := hllAdd{key: sh.UniqKey(b, dims, p.metrics[i].name), expMs: exp, vals: make([]any, len(reps))}
				for j, r := range reps {
					add.vals[j] = r.v
				}
				hlls = append(hlls, add)
			}
		}
	}
	return keys, args, hlls
}

// mergeAcc folds src into dst for a count/sum/min/max metric.
func mergeAcc(dst, src *acc, m *metricPlan) {
	switch m.agg {
	case schemas.Count:
		dst.i += src.i
		return
	}
	if !src.has {
		return
	}
	switch m.agg {
	case schemas.Sum:
		dst.is.Merge(src.is)
		dst.fs.Merge(src.fs)
	case schemas.Min, schemas.Max:
		if !dst.has || schemas.Replaces(m.agg, src.i, dst.i) {
			dst.i = src.i
		}
		if !dst.has || schemas.Replaces(m.agg, src.f, dst.f) {
			dst.f = src.f
		}
	}
	dst.has = true
}
