// Package batch is the batch layer of DESIGN §2: it turns Kafka into a raw
// Parquet lake (compaction) and the raw lake into exact, hour-by-hour views
// (recompute), and serves those views to the serving layer.
//
// Compaction (compact*.go, deadletter.go, merge.go, rawread.go) is a Kafka
// consumer group writing raw/{schema}/dt=/hr=/ files named with the offsets
// they hold, then the partition's checkpoint with its event-time watermark.
// PlanHour lists an hour's files and which offsets an earlier file already
// holds, so overlaps left by a crash are read once.
//
// Recompute (recompute*.go) takes each closed hour (the watermark passed
// its end) whose input changed, that is dirty (late data), or — after the
// view's fingerprint changed — every retained hour. It reads the hour with
// Arrow (only the columns the view needs), drops overlapping offsets and
// duplicate ids, aggregates to bucket × dimensions (view_agg.go), writes
// views/{view}/dt=/hr=/view.parquet in one PUT (view_file.go), records the
// hour in views/{view}/_state.json (state.go) and advances the boundary B,
// mirrored to Redis. Uniq metrics carry an exact count and a Redis-format
// HyperLogLog (internal/hll) so queries that roll rows up can merge them
// with the speed layer's sketches.
//
// ViewReader (view_reader.go) gives the serving layer a view's rows for
// [from, B), from an in-memory cache of immutable hour versions.
package batch
