// Package batch is the batch layer of DESIGN §2. It holds no code: its
// stages live in sub-packages, which talk to each other only through lake
// files.
//
//   - raw: the raw lake's format, shared by its writer and its readers —
//     file naming and the per-hour read plan that drops overlapping offsets,
//     the partitions' checkpoints and watermark, dead letters (with their
//     reason) and their summary, the seal of the hours retention deletes.
//   - compact: the compactor, the batch side's only Kafka consumer (Kafka →
//     raw Parquet files, checkpoints, dead letters, dirty markers), and the
//     merge of a closed hour's small files. It admits events by their time
//     (DESIGN §2, "Event time is bounded") and clamps its watermark to the
//     wall clock.
//   - recompute: raw → view hours with Arrow (dedup, aggregation with the
//     overflow rule of sums), the boundary B (never past the wall clock,
//     and its operator repair), and the cold path that serving uses for a
//     range Redis no longer holds. Sealed hours are never rebuilt.
//   - views: the view lake's format (view.parquet with its overflow flags,
//     _state.json written conditionally) and the cached Reader the serving
//     layer reads [from, B) through.
//   - retention: the retention job, sealing hours before it deletes their
//     raw data, deleting hour partitions past their retention but never at
//     or after B.
//
// The objects a stage owns — checkpoints, the seal, _state.json — are
// written conditionally (If-Match on the ETag read, If-None-Match on
// create), so a writer that lost its partition or its lease is refused
// (DESIGN §2, "Objects a job owns are written conditionally").
//
// Serving depends on views (and, through cmd, on recompute's cold path),
// never on compact.
package batch
