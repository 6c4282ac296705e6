package speed

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// The v2 key layout (the package doc and SPEED.md's contract): every key of
// a view lives under the hash tag of one shard, so that one flush (cells,
// versions and the shard's offsets) stays in one Redis Cluster slot.

// MaxShards is the largest shard count a view may have (views.NAME.shards).
const MaxShards = 64

// Shard is one shard of a view: the hash tag its keys carry and the unit
// of one atomic flush. Kafka partition p of the view's topic belongs to
// shard p % Count.
type Shard struct {
	View  string
	Index int // 0 .. Count-1
	Count int // the view's shard count, ≥ 1
}

// ShardCount is the view's shard count (views.NAME.shards; 0 means 1).
func ShardCount(v *schemas.View) int { return max(v.Shards, 1) }

// Shards returns every shard of the view, in index order.
func Shards(v *schemas.View) []Shard {
	n := ShardCount(v)
	out := make([]Shard, n)
	for i := range out {
		out[i] = Shard{View: v.Name, Index: i, Count: n}
	}
	return out
}

// PartitionShard returns the shard holding Kafka partition p of the view.
func PartitionShard(v *schemas.View, partition int) Shard {
	n := ShardCount(v)
	return Shard{View: v.Name, Index: partition % n, Count: n}
}

// Tag is the shard's hash tag: "{view}" for a view with one shard (the
// key names of the v1 layout), "{view:i}" otherwise.
func (s Shard) Tag() string {
	if s.Count <= 1 {
		return "{" + s.View + "}"
	}
	return "{" + s.View + ":" + strconv.Itoa(s.Index) + "}"
}

func (s Shard) prefix() string { return "ll:" + s.Tag() + ":" }

// BucketKey is the hash of every cell of one bucket (start in Unix µs) of
// this shard: fields CellField, NegField and EmptyCellField.
func (s Shard) BucketKey(bucket int64) string {
	return s.prefix() + "m:" + strconv.FormatInt(bucket, 10)
}

// UniqKey is the HyperLogLog of one uniq metric of one cell.
func (s Shard) UniqKey(bucket int64, dims, metric string) string {
	return s.prefix() + "u:" + strconv.FormatInt(bucket, 10) + ":" + dims + ":" + metric
}

// VersionKey is the hash of the buckets of one hour (start in Unix µs) this
// shard holds: field <bucket> (decimal µs) → a version every flush touching
// that bucket increments.
func (s Shard) VersionKey(hour int64) string {
	return s.prefix() + "v:" + strconv.FormatInt(hour, 10)
}

// OffsetsKey is the hash of this shard's partitions' next offsets
// ("<topic>:<partition>" → offset, "-1" while a rebuild runs) and the
// fingerprint its windows were built with (field "_fp", see shardFingerprint).
func (s Shard) OffsetsKey() string { return s.prefix() + "offsets" }

// HourOf is the start of the hour holding a bucket (Unix µs): the hour of
// its VersionKey.
func HourOf(bucket int64) int64 { return schemas.Floor(bucket, microsPerHour) }

const microsPerHour = int64(time.Hour / time.Microsecond)

// CellField is the field of a count, min or max metric, or of a sum's
// positive part, of the cell with encoded dimensions dims in a BucketKey.
func CellField(dims, metric string) string { return dims + ":" + metric }

// NegField is the field of a sum's negative part; it exists once a
// negative value came, and never beside an overflowed sum.
func NegField(dims, metric string) string { return dims + ":" + metric + negFieldSuffix }

// EmptyCellField marks a cell that exists though it has no other field
// (every count/sum/min/max value was null, or the view has only uniq
// metrics); its value is "0".
func EmptyCellField(dims string) string { return dims + ":" + emptyCellMetric }

const (
	negFieldSuffix  = ":n"
	emptyCellMetric = "_"
)

// Overflowed is the value of a sum's field once the sum overflowed
// (schemas.IntSum, schemas.FloatSum: sticky).
const Overflowed = "ovf"

// SplitField splits a field of a BucketKey into the cell's encoded
// dimensions and the metric; neg says it is a sum's negative part, and
// metric is "" for an EmptyCellField. ok is false for anything else.
// Metric names are identifiers and dimensions are query-escaped, so
// neither holds a ':'.
func SplitField(f string) (dims, metric string, neg, ok bool) {
	dims, rest, found := strings.Cut(f, ":")
	if !found || rest == "" {
		return "", "", false, false
	}
	if rest == emptyCellMetric {
		return dims, "", false, true
	}
	metric, tail, found := strings.Cut(rest, ":")
	switch {
	case metric == "":
		return "", "", false, false
	case !found:
		return dims, metric, false, true
	case ":"+tail == negFieldSuffix:
		return dims, metric, true, true
	}
	return "", "", false, false
}

// fingerprintField is the field of a shard's OffsetsKey holding the
// fingerprint its windows were built with.
const fingerprintField = "_fp"

// shardFingerprint is what a shard's "_fp" holds: the view's fingerprint,
// and for more than one shard the shard count after a "/", so that a
// changed shard count reads as a changed definition (a rebuild). One shard
// stores the plain fingerprint, as the v1 layout did.
func shardFingerprint(v *schemas.View) string {
	if n := ShardCount(v); n > 1 {
		return v.Fingerprint() + "/" + strconv.Itoa(n)
	}
	return v.Fingerprint()
}

func offsetField(topic string, partition int) string {
	return topic + ":" + strconv.Itoa(partition)
}

// v1IndexKey is the sorted set every view of the v1 layout (one hash per
// cell) had; the worker only looks for it, to clear v1 data by a rebuild.
func v1IndexKey(view string) string { return "ll:{" + view + "}:idx" }

// Dimension values are encoded one after the other, separated by ",", each
// query-escaped (so neither "," nor ":" nor "{" occur inside one); a null is
// "!", which escaping never produces. Bools are "true"/"false", int64s decimal.
const nullDim = "!"

// appendDim appends the encoding of one dimension value of type t.
func appendDim(b []byte, t schemas.Type, v *schemas.Value) []byte {
	if v.Null {
		return append(b, nullDim...)
	}
	switch t {
	case schemas.Int64:
		return strconv.AppendInt(b, v.Int, 10)
	case schemas.Bool:
		return strconv.AppendBool(b, v.Int != 0)
	default:
		return appendEscaped(b, v.Str)
	}
}

// appendEscaped is url.QueryEscape without the allocation for the common
// case of a value that needs no escaping.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return append(b, url.QueryEscape(s)...)
		}
	}
	return append(b, s...)
}

// decodeDims splits an encoded dimension tuple of n values.
func decodeDims(enc string, n int) ([]string, error) {
	if n == 0 {
		if enc != "" {
			return nil, fmt.Errorf("speed: dims %q for a view without dimensions", enc)
		}
		return nil, nil
	}
	parts := strings.Split(enc, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("speed: dims %q: %d values, want %d", enc, len(parts), n)
	}
	return parts, nil
}

// dimValue turns one encoded dimension back into a typed value.
func dimValue(t schemas.Type, enc string) (schemas.Value, error) {
	if enc == nullDim {
		return schemas.Value{Null: true}, nil
	}
	switch t {
	case schemas.Int64:
		n, err := strconv.ParseInt(enc, 10, 64)
		if err != nil {
			return schemas.Value{}, fmt.Errorf("speed: bad int dimension %q", enc)
		}
		return schemas.Value{Int: n}, nil
	case schemas.Bool:
		b, err := strconv.ParseBool(enc)
		if err != nil {
			return schemas.Value{}, fmt.Errorf("speed: bad bool dimension %q", enc)
		}
		if b {
			return schemas.Value{Int: 1}, nil
		}
		return schemas.Value{}, nil
	default:
		s, err := url.QueryUnescape(enc)
		if err != nil {
			return schemas.Value{}, fmt.Errorf("speed: bad string dimension %q", enc)
		}
		return schemas.Value{Str: s}, nil
	}
}
