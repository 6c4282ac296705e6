package speed

import (
	"strconv"

	"github.com/lambdalake/lambdalake/schemas"
)

// The v2 key layout as the Reader reads it (the package doc, "Redis keys").
// The writer's helpers live in keys.go; these are the read side's, named
// apart so both can grow without stepping on each other.

// viewShards is the number of hot shards of a view (at least 1).
func viewShards(v *schemas.View) int {
	return max(1, v.Shards)
}

// hotKeys names the keys of one shard of a view: every one carries the
// shard's hash tag, {view} for a one-shard view, {view:s} otherwise.
type hotKeys struct{ prefix string } // "ll:{tag}:"

func shardKeys(view string, shard, shards int) hotKeys {
	if shards <= 1 {
		return hotKeys{"ll:{" + view + "}:"}
	}
	return hotKeys{"ll:{" + view + ":" + strconv.Itoa(shard) + "}:"}
}

// bucket is the hash of every cell of one bucket: "<dims>:<metric>" fields.
func (k hotKeys) bucket(bucket int64) string {
	return k.prefix + "m:" + strconv.FormatInt(bucket, 10)
}

// versions is the hash bucket -> version of the buckets of one hour.
func (k hotKeys) versions(hour int64) string {
	return k.prefix + "v:" + strconv.FormatInt(hour, 10)
}

// uniq is the HyperLogLog of one uniq metric of one cell.
func (k hotKeys) uniq(bucket int64, dims, metric string) string {
	return k.prefix + "u:" + strconv.FormatInt(bucket, 10) + ":" + dims + ":" + metric
}

// offsets is the shard's hash of stored Kafka offsets and fingerprint.
func (k hotKeys) offsets() string { return k.prefix + "offsets" }

// Field names inside a bucket hash, after "<dims>:".
const (
	negSuffix   = ":n" // a sum's negative part
	emptyField  = "_"  // the cell exists though every metric was null
	overflowVal = "ovf"
)

const hourMicros = int64(3600_000_000)
