package speed

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/lambdalake/lambdalake/schemas"
)

// Key names (see the package doc for what each holds). Every key of a view
// starts with "ll:{view}:" so that all of them hash to one Redis Cluster slot.

func viewPrefix(view string) string { return "ll:{" + view + "}:" }

// BucketKey is the hash of one (bucket, dimensions) cell of a view: one field
// per count/sum/min/max metric.
func BucketKey(view string, member string) string { return viewPrefix(view) + "b:" + member }

// uniqKey is the HyperLogLog of one uniq metric in one (bucket, dimensions) cell.
func uniqKey(view string, member string, metric string) string {
	return viewPrefix(view) + "u:" + member + ":" + metric
}

// IndexKey is the sorted set of a view's cells: score = bucket start in Unix
// microseconds, member = "<bucket>:<dims>", the suffix of the cell's keys.
func IndexKey(view string) string { return viewPrefix(view) + "idx" }

// OffsetsKey is the hash of the next Kafka offset to apply, per
// "<topic>:<partition>" field, plus the view's fingerprint (field "_fp").
func OffsetsKey(view string) string { return viewPrefix(view) + "offsets" }

// fingerprintField is the field of OffsetsKey holding the fingerprint of the
// view definition the stored windows were computed with.
const fingerprintField = "_fp"

func offsetField(topic string, partition int) string {
	return topic + ":" + strconv.Itoa(partition)
}

// member is the index member (and key suffix) of one cell.
func member(bucket int64, dims string) string {
	return strconv.FormatInt(bucket, 10) + ":" + dims
}

// splitMember is the inverse of member.
func splitMember(m string) (bucket int64, dims string, err error) {
	b, d, ok := strings.Cut(m, ":")
	if !ok {
		return 0, "", fmt.Errorf("speed: bad index member %q", m)
	}
	bucket, err = strconv.ParseInt(b, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("speed: bad index member %q", m)
	}
	return bucket, d, nil
}

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
