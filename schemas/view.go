package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Agg is an aggregation function. Every Agg is a mergeable monoid, so the
// same definition runs per event in the speed layer, per hour in batch, and
// across buckets and dimensions at query time.
type Agg uint8

const (
	AggInvalid Agg = iota
	Count
	Sum
	Min
	Max
	Uniq
)

var aggNames = [...]string{AggInvalid: "invalid", Count: "count", Sum: "sum", Min: "min", Max: "max", Uniq: "uniq"}

func (a Agg) String() string {
	if int(a) < len(aggNames) {
		return aggNames[a]
	}
	return fmt.Sprintf("Agg(%d)", uint8(a))
}

// ParseAgg maps a config aggregation name to an Agg.
func ParseAgg(s string) (Agg, error) {
	for a, name := range aggNames {
		if a != int(AggInvalid) && name == s {
			return Agg(a), nil
		}
	}
	return AggInvalid, fmt.Errorf("unknown agg %q (want count, sum, min, max or uniq)", s)
}

// Metric is one output column of a view.
type Metric struct {
	Name  string
	Agg   Agg
	Field string // empty for count
}

// View is an aggregation over one schema, declared once and computed by both
// layers.
type View struct {
	Name         string
	Schema       *Schema
	Granularity  time.Duration // divides an hour
	Dimensions   []string
	Metrics      []Metric
	HotRetention time.Duration
	Lateness     time.Duration
	Retention    time.Duration // how long batch view hours are kept; 0 = forever
	// Shards spreads the speed layer's hot keys over this many Redis hash
	// tags (Kafka partition p goes to shard p % Shards); 0 or 1: one.
	Shards int
}

// Bucket returns the start of the bucket holding micros (Unix
// microseconds): Floor to the granularity.
func (v *View) Bucket(micros int64) int64 {
	return Floor(micros, v.Granularity.Microseconds())
}

// Metric returns the named metric.
func (v *View) Metric(name string) (Metric, bool) {
	for _, m := range v.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// HasDimension reports whether name is one of the view's dimensions.
func (v *View) HasDimension(name string) bool {
	for _, d := range v.Dimensions {
		if d == name {
			return true
		}
	}
	return false
}

// Fingerprint is a short hash of everything that changes a view's numbers:
// the schema fields it reads (with their types), the id and time fields,
// the granularity, dimensions and metrics. Retention and lateness are not
// part of it: they change what is kept, not what is computed.
func (v *View) Fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "view=%s\nschema=%s\ntime=%s\nid=%s\ngranularity=%s\n", v.Name, v.Schema.Name, v.Schema.Time, v.Schema.ID, v.Granularity)
	for _, d := range v.Dimensions {
		f, _ := v.Schema.Field(d)
		fmt.Fprintf(&b, "dim=%s:%s\n", d, f.Type)
	}
	for _, m := range v.Metrics {
		f, _ := v.Schema.Field(m.Field)
		fmt.Fprintf(&b, "metric=%s:%s(%s:%s)\n", m.Name, m.Agg, m.Field, f.Type)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}
