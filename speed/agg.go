package speed

import (
	"fmt"
	"strconv"

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
// depends on the metric: i for counts and int64 sum/min/max, f for float64
// sum/min/max, set for uniq.
type acc struct {
	i   int64
	f   float64
	has bool // min/max/sum saw at least one non-null value
	set map[string]struct{}
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
	buf   []byte
	vals  int // uniq values held, to bound memory
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
		c = &cell{member: string(b), bucket: bucket, accs: make([]acc, len(p.metrics))}
		a.cells[c.member] = c
	}
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
				s.f += v.Float
			} else {
				s.i += v.Int
			}
			s.has = true
		case schemas.Min:
			if m.typ == schemas.Float64 {
				if !s.has || v.Float < s.f {
					s.f = v.Float
				}
			} else if !s.has || v.Int < s.i {
				s.i = v.Int
			}
			s.has = true
		case schemas.Max:
			if m.typ == schemas.Float64 {
				if !s.has || v.Float > s.f {
					s.f = v.Float
				}
			} else if !s.has || v.Int > s.i {
				s.i = v.Int
			}
			s.has = true
		case schemas.Uniq:
			if s.set == nil {
				s.set = make(map[string]struct{})
			}
			k := uniqElement(m.typ, v)
			if _, dup := s.set[k]; !dup {
				s.set[k] = struct{}{}
				a.vals++
			}
		}
	}
}

// uniqElement is the text a value is counted under in a HyperLogLog: strings
// as they are, numbers in decimal, bools as true/false, timestamps as Unix µs.
func uniqElement(t schemas.Type, v *schemas.Value) string {
	switch t {
	case schemas.String:
		return v.Str
	case schemas.Float64:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case schemas.Bool:
		return strconv.FormatBool(v.Int != 0)
	default:
		return strconv.FormatInt(v.Int, 10)
	}
}

// size is how much the aggregator holds, in cells plus distinct uniq values.
func (a *aggregator) size() int { return len(a.cells) + a.vals }

func (a *aggregator) reset() {
	clear(a.cells)
	a.vals = 0
}

// flushArgs encodes the pending cells as the KEYS and ARGV of applyScript.
// field/from/to identify the Kafka range covered; expiry is per bucket:
// bucket end + hot_retention.
func (a *aggregator) flushArgs(field string, from, to int64, nowMs int64) (keys []string, args []any) {
	v := a.plan.view
	retMs := v.HotRetention.Milliseconds()
	gMs := v.Granularity.Milliseconds()
	keys = make([]string, 0, 2+len(a.cells)*2)
	keys = append(keys, OffsetsKey(v.Name), IndexKey(v.Name))
	args = make([]any, 0, 16+len(a.cells)*(4+3*len(a.plan.metrics)))
	// Header; counts are patched in once known.
	args = append(args, field, strconv.FormatInt(from, 10), strconv.FormatInt(to, 10), "0", "0",
		strconv.FormatInt(pruneBefore(nowMs, retMs, gMs)*1000, 10), "0", strconv.FormatInt(nowMs, 10),
		strconv.FormatInt(nowMs+offsetsTTL(v).Milliseconds(), 10))
	var maxExp int64
	nHash := 0
	for _, c := range a.cells {
		exp := c.bucket/1000 + gMs + retMs
		maxExp = max(maxExp, exp)
		nOps := 0
		// The member rides along so the index is updated without string
		// work in Lua; the op count is patched in below.
		args = append(args, strconv.FormatInt(exp, 10), strconv.FormatInt(c.bucket, 10), c.member, "0")
		nOpsAt := len(args) - 1
		for i := range a.plan.metrics {
			m := &a.plan.metrics[i]
			s := &c.accs[i]
			var op, val string
			switch m.agg {
			case schemas.Count:
				op, val = "i", strconv.FormatInt(s.i, 10)
			case schemas.Uniq:
				continue
			default:
				if !s.has {
					continue
				}
				val = formatNum(m.typ, s)
				switch {
				case m.agg == schemas.Sum && m.typ == schemas.Float64:
					op = "f"
				case m.agg == schemas.Sum:
					op = "i"
				case m.agg == schemas.Min:
					op = "n"
				default:
					op = "x"
				}
			}
			args = append(args, op, m.name, val)
			nOps++
		}
		args[nOpsAt] = strconv.Itoa(nOps)
		keys = append(keys, BucketKey(v.Name, c.member))
		nHash++
	}
	nHLL := 0
	for _, c := range a.cells {
		exp := c.bucket/1000 + gMs + retMs
		for i := range a.plan.metrics {
			m := &a.plan.metrics[i]
			if m.agg != schemas.Uniq || len(c.accs[i].set) == 0 {
				continue
			}
			keys = append(keys, UniqKey(v.Name, c.member, m.name))
			args = append(args, strconv.FormatInt(exp, 10), strconv.Itoa(len(c.accs[i].set)))
			for e := range c.accs[i].set {
				args = append(args, e)
			}
			nHLL++
		}
	}
	args[3], args[4], args[6] = strconv.Itoa(nHash), strconv.Itoa(nHLL), strconv.FormatInt(maxExp, 10)
	return keys, args
}

func formatNum(t schemas.Type, s *acc) string {
	if t == schemas.Float64 {
		return strconv.FormatFloat(s.f, 'g', -1, 64)
	}
	return strconv.FormatInt(s.i, 10)
}

// pruneBefore is the first bucket start (ms) whose keys can still exist; index
// members below it point at expired keys and are dropped.
func pruneBefore(nowMs, retMs, gMs int64) int64 { return nowMs - retMs - gMs }
