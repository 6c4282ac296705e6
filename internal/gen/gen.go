// Package gen makes synthetic events for a schema: the traffic every test,
// benchmark and `lambdalake dev` drives through the system. The same seed
// gives the same events, and each event carries its Kind, so a test can
// compute the exact reference a layer must reproduce.
package gen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// Kind says what an event is meant to exercise.
type Kind uint8

const (
	Valid     Kind = iota // a new, well-formed event
	Duplicate             // an exact copy of an earlier valid event (same id)
	Malformed             // undecodable: bad JSON, wrong type, missing field, bad time
)

func (k Kind) String() string {
	return [...]string{"valid", "duplicate", "malformed"}[k]
}

// Config describes the traffic to make.
type Config struct {
	Schema *schemas.Schema
	// History: event times spread evenly over [From, To), in order but for
	// the out-of-order share. Live (From and To zero): event time is the
	// clock passed to Next.
	From, To time.Time
	Count    int64 // events in a history; needed to space them

	// Cardinality of each field's values; fields not named get
	// DefaultCardinality distinct values.
	Cardinality        map[string]int
	DefaultCardinality int

	OutOfOrder float64       // share of valid events delayed up to MaxDelay
	MaxDelay   time.Duration // how far back an out-of-order event lands
	Duplicates float64       // share of exact duplicates
	Malformed  float64       // share of undecodable records
	Seed       uint64
}

// Event is one generated record.
type Event struct {
	Value []byte
	// Key is the Kafka record key: the event id's text (as
	// schemas.Schema.AppendKey makes it from the decoded event), so every
	// copy of an event goes to one partition. nil for a schema without id
	// and for malformed records, which are spread as unkeyed.
	Key        []byte
	Kind       Kind
	OutOfOrder bool      // a valid event whose time was pushed back
	Time       time.Time // event time (zero for malformed)
}

// Counts tallies what was generated. Valid includes OutOfOrder; Total is
// Valid + Duplicate + Malformed.
type Counts struct {
	Total, Valid, Duplicate, Malformed, OutOfOrder int64
}

func (c *Counts) add(e *Event) {
	c.Total++
	switch e.Kind {
	case Valid:
		c.Valid++
		if e.OutOfOrder {
			c.OutOfOrder++
		}
	case Duplicate:
		c.Duplicate++
	case Malformed:
		c.Malformed++
	}
}

func (c Counts) String() string {
	return fmt.Sprintf("total=%d valid=%d duplicate=%d malformed=%d out_of_order=%d",
		c.Total, c.Valid, c.Duplicate, c.Malformed, c.OutOfOrder)
}

// recentValid is how many past valid events a duplicate may copy.
const recentValid = 1024

// Generator makes events. Not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	n      int64 // events made
	counts Counts
	recent []Event // valid events a duplicate may copy
	card   []int
	prefix string
	step   float64 // µs between history events
}

// New checks cfg and returns a generator.
func New(cfg Config) (*Generator, error) {
	if cfg.Schema == nil {
		return nil, errors.New("gen: no schema")
	}
	for _, share := range []float64{cfg.OutOfOrder, cfg.Duplicates, cfg.Malformed} {
		if share < 0 || share > 1 || math.IsNaN(share) {
			return nil, fmt.Errorf("gen: share %v not in [0, 1]", share)
		}
	}
	if cfg.Duplicates+cfg.Malformed > 1 {
		return nil, errors.New("gen: duplicate and malformed shares add up to more than 1")
	}
	if !cfg.From.IsZero() || !cfg.To.IsZero() {
		if !cfg.To.After(cfg.From) {
			return nil, errors.New("gen: history needs From before To")
		}
		if cfg.Count <= 0 {
			return nil, errors.New("gen: a history needs a count")
		}
	}
	if cfg.DefaultCardinality <= 0 {
		cfg.DefaultCardinality = 10
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		prefix: cfg.Schema.Name + "-" + strconv.FormatUint(cfg.Seed, 36) + "-"}
	for _, f := range cfg.Schema.Fields {
		c, ok := cfg.Cardinality[f.Name]
		if !ok {
			c = cfg.DefaultCardinality
		}
		if c <= 0 {
			return nil, fmt.Errorf("gen: cardinality of %s must be positive", f.Name)
		}
		g.card = append(g.card, c)
	}
	for name := range cfg.Cardinality {
		if cfg.Schema.FieldIndex(name) < 0 {
			return nil, fmt.Errorf("gen: schema %s has no field %q", cfg.Schema.Name, name)
		}
	}
	if cfg.Count > 0 && !cfg.From.IsZero() {
		g.step = float64(cfg.To.Sub(cfg.From).Microseconds()) / float64(cfg.Count)
	}
	return g, nil
}

// Counts returns what has been generated so far.
func (g *Generator) Counts() Counts { return g.counts }

// Next makes one event. now is the event time in live mode.
func (g *Generator) Next(now time.Time) Event {
	i := g.n
	g.n++
	var e Event
	r := g.rng.Float64()
	switch {
	case r < g.cfg.Malformed:
		e = Event{Kind: Malformed, Value: g.malformed(now)}
	case r < g.cfg.Malformed+g.cfg.Duplicates && len(g.recent) > 0:
		src := g.recent[g.rng.IntN(len(g.recent))]
		e = Event{Kind: Duplicate, Value: append([]byte(nil), src.Value...), Key: src.Key}
	default:
		t := g.eventTime(i, now)
		if g.cfg.OutOfOrder > 0 && g.rng.Float64() < g.cfg.OutOfOrder && g.cfg.MaxDelay > 0 {
			t = t.Add(-time.Duration(g.rng.Int64N(int64(g.cfg.MaxDelay))))
			if !g.cfg.From.IsZero() && t.Before(g.cfg.From) {
				t = g.cfg.From
			}
			e.OutOfOrder = true
		}
		// The JSON carries milliseconds; report exactly what it carries.
		e.Kind, e.Time = Valid, t.Truncate(time.Millisecond)
		t = e.Time
		e.Value = g.valid(i, t, nil)
		if g.cfg.Schema.ID != "" {
			e.Key = g.appendID(nil, i)
		}
		if len(g.recent) < recentValid {
			g.recent = append(g.recent, Event{Value: e.Value, Key: e.Key})
		} else {
			g.recent[g.rng.IntN(recentValid)] = Event{Value: e.Value, Key: e.Key}
		}
	}
	g.counts.add(&e)
	return e
}

func (g *Generator) eventTime(i int64, now time.Time) time.Time {
	if g.cfg.From.IsZero() {
		return now.UTC()
	}
	// Spread evenly, jittered within the step, truncated to the
	// millisecond the JSON carries.
	us := float64(i)*g.step + g.rng.Float64()*g.step
	t := g.cfg.From.Add(time.Duration(us) * time.Microsecond).Truncate(time.Millisecond)
	if !t.Before(g.cfg.To) {
		t = g.cfg.To.Add(-time.Millisecond)
	}
	return t.UTC()
}

// valid appends one well-formed event to buf. skip names a field index to
// leave out (-1 for none) for the malformed variants.
func (g *Generator) valid(i int64, t time.Time, buf []byte) []byte {
	return g.encode(i, t, buf, -1, -1)
}

func (g *Generator) encode(i int64, t time.Time, b []byte, skip, wrong int) []byte {
	s := g.cfg.Schema
	b = append(b, '{')
	first := true
	for fi, f := range s.Fields {
		if fi == skip {
			continue
		}
		if f.Optional && g.rng.IntN(10) < 3 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, f.Name)
		b = append(b, ':')
		if fi == wrong {
			if f.Type == schemas.String {
				b = append(b, "12345"...)
			} else {
				b = append(b, `"oops"`...)
			}
			continue
		}
		switch {
		case f.Name == s.Time:
			if g.rng.IntN(10) == 0 {
				b = strconv.AppendInt(b, t.UnixMilli(), 10)
			} else {
				b = append(b, '"')
				b = t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
				b = append(b, '"')
			}
		case f.Name == s.ID && f.Type == schemas.String:
			b = append(b, '"')
			b = g.appendID(b, i)
			b = append(b, '"')
		case f.Name == s.ID:
			b = g.appendID(b, i) // a number: JSON and key alike
		default:
			b = g.value(b, fi, f, t)
		}
	}
	return append(b, '}')
}

// appendID appends the id of event i: the prefix and i for a string id
// (unique across seeds), i alone for a numeric one (int64, float64,
// decimal). It is both the JSON
// value's text and the record key, which is the decoded id's text.
func (g *Generator) appendID(b []byte, i int64) []byte {
	f, _ := g.cfg.Schema.Field(g.cfg.Schema.ID)
	if f.Type == schemas.String {
		b = append(b, g.prefix...)
		return strconv.AppendInt(b, i, 10)
	}
	if f.Type.Kind() == schemas.Decimal { // i with S zero decimals, as UniqElement prints it
		return schemas.AppendDecimal(b, i*pow10(f.Type.Scale()), f.Type.Scale())
	}
	return strconv.AppendInt(b, i, 10)
}

func (g *Generator) value(b []byte, fi int, f schemas.Field, t time.Time) []byte {
	k := g.rng.IntN(g.card[fi])
	switch f.Type {
	case schemas.String:
		b = append(b, '"')
		b = append(b, f.Name...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(k), 10)
		return append(b, '"')
	case schemas.Int64:
		return strconv.AppendInt(b, int64(g.rng.IntN(1000)), 10)
	case schemas.Float64:
		// Cents, so sums are exact enough to compare across engines.
		return strconv.AppendFloat(b, float64(g.rng.IntN(100000))/100, 'f', -1, 64)
	case schemas.Bool:
		return strconv.AppendBool(b, k%2 == 0)
	case schemas.Timestamp:
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	if f.Type.Kind() == schemas.Decimal {
		return g.decimal(b, f.Type)
	}
	return append(b, "null"...)
}

// decimal appends an amount of a decimal(P,S) field like the float64 ones
// (cents up to 999.99) within the type: at most min(S, 2) decimals and
// P − S integer digits. One in ten is a JSON string, the form producers
// that keep money away from floats send.
func (g *Generator) decimal(b []byte, t schemas.Type) []byte {
	dec := min(t.Scale(), 2)
	digits := min(t.Precision()-t.Scale(), 3) + dec
	n := g.rng.Int64N(pow10(digits))
	if g.rng.IntN(10) == 0 {
		b = append(b, '"')
		b = schemas.AppendDecimal(b, n, dec)
		return append(b, '"')
	}
	return schemas.AppendDecimal(b, n, dec)
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// malformed makes one record the decoder must reject, of a rotating variety.
func (g *Generator) malformed(now time.Time) []byte {
	s := g.cfg.Schema
	t := g.eventTime(g.n, now)
	switch g.rng.IntN(5) {
	case 0: // truncated JSON
		v := g.valid(-1, t, nil)
		return v[:len(v)/2]
	case 1: // a field of the wrong type
		return g.encode(-1, t, nil, -1, g.firstNonTime())
	case 2: // the time field missing
		return g.encode(-1, t, nil, s.TimeIndex(), -1)
	case 3: // an unparsable time
		v := g.encode(-1, t, nil, s.TimeIndex(), -1)
		return append(append(v[:len(v)-1], `,"`+s.Time+`":"not-a-time"`...), '}')
	default: // not JSON at all
		return []byte("\x00garbage-" + strconv.FormatInt(g.n, 10))
	}
}

func (g *Generator) firstNonTime() int {
	for i, f := range g.cfg.Schema.Fields {
		if f.Name != g.cfg.Schema.Time && !f.Optional {
			return i
		}
	}
	return g.cfg.Schema.TimeIndex()
}
