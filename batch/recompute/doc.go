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
// Sums follow the overflow rule both layers share (schemas.IntSum,
// FloatSum): an overflowed sum is written null with its {metric}_overflow
// flag set (package views), never wrapped or infinite.
//
// Time is bounded (DESIGN §2): the watermark read from the checkpoints is
// clamped to the wall clock minus lateness, so no hour after the wall
// clock's closes and B never passes its hour. A B already past it (moved
// by far-future events before admission existed) is left alone, reported
// (ErrBoundaryAhead, lambdalake_recompute_boundary_ahead_total) and
// repaired only by an operator: RepairBoundary resets the hours that cannot
// be final under the wall clock and sets B from the lake state, earlier;
// its caller publishes it with internal/boundary.Override.
//
// Sealed hours (raw.Seal: retention has begun deleting their raw data) are
// never recomputed — not for a dirty marker, a changed input nor a new view
// definition — and never hold B back: what is left of them is not the hour.
// After a definition change a sealed hour keeps the file and the definition
// it was computed with, which readers refuse to serve under the new one
// (views.ErrSealedDefinition).
//
// _state.json is written conditionally over the version the run read
// (views.WriteState): a runner that lost its lease while another wrote is
// refused.
//
// A run may be shared by several runners (Options.Leases, shared.go): each
// hour is computed under its own lease, so N runners compute N hours at
// once and never one hour twice at once; each hour is merged into
// _state.json on its own (conditional write, retried on a refusal, never
// over an entry written under a later lease: HourState.Token), and B is
// moved under the view's boundary lease by each runner after its hours —
// the last one to finish moves it past every hour. Without Leases the
// caller holds the view alone (backfill, repair, `lambdalake batch
// recompute`), and the state is written whole as before.
//
// ComputeHourRows is the same computation for one hour without writing
// anything: the serving layer's cold path for a hot range Redis no longer
// holds.
package recompute
