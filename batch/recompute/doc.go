// Package recompute is the scheduled half of the batch layer (DESIGN §2):
// it turns the raw lake (package raw) into exact view hours (package views).
//
// For each closed hour (the compactor's watermark passed its end) whose
// input changed, that is dirty (late data), or — after the view's
// fingerprint changed — every retained hour, a Recomputer reads the hour's
// raw files with Arrow (only the columns the view needs), drops overlapping
// offsets and duplicate ids (the smallest (partition, offset) wins),
// aggregates to bucket × dimensions (aggregate.go), writes
// views/{view}/dt=/hr=/view.parquet in one PUT, records the hour in
// views/{view}/_state.json and advances the boundary B, which a
// BoundaryMirror publishes to Redis. Uniq metrics carry an exact count and
// a Redis-format HyperLogLog (internal/hll) so queries that roll rows up
// can merge them with the speed layer's sketches.
//
// ComputeHourRows is the same computation for one hour without writing
// anything: the serving layer's cold path for a hot range Redis no longer
// holds.
package recompute
