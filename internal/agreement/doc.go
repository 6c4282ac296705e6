// Package agreement holds the test that keeps the two layers' aggregations
// in agreement (DESIGN §1: one definition, two layers). The serving layer
// merges batch cells before the boundary B with speed cells after it, so
// for the same events both layers must produce the same cell: the same
// bucket, the same dimension values, the same count, sums, minimums and
// maximums, and uniq sketches with the same registers. The rules behind
// that live once in package schemas; this test feeds the same events to
// the speed layer (a real worker, Kafka and Redis) and to batch's hour
// aggregation (recompute's code over raw files in a local lake) and
// compares every cell, so a rule copied into one layer cannot drift
// silently. A randomized test (extremes_test.go, seed logged, AGREE_SEED
// to rerun) does the same with extreme values — int64 limits, floats near
// ±1e308 and subnormal, nulls, duplicates, far past and future times,
// overlapping raw files — against an exact reference, overflow flags
// included. It has no code of its own.
package agreement
