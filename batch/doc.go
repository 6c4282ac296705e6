// Package batch is the batch layer of DESIGN §2. It holds no code: its
// stages live in sub-packages, which talk to each other only through lake
// files.
//
//   - raw: the raw lake's format, shared by its writer and its readers —
//     file naming and the per-hour read plan that drops overlapping offsets,
//     the partitions' checkpoints and watermark, dead letters.
//   - compact: the compactor, the batch side's only Kafka consumer (Kafka →
//     raw Parquet files, checkpoints, dead letters, dirty markers), and the
//     merge of a closed hour's small files.
//   - recompute: raw → view hours with Arrow (dedup, aggregation), the
//     boundary B, and the cold path that serving uses for a range Redis no
//     longer holds.
//   - views: the view lake's format (view.parquet, _state.json) and the
//     cached Reader the serving layer reads [from, B) through.
//   - retention: the retention job, deleting hour partitions past their
//     retention but never at or after B.
//
// Serving depends on views (and, through cmd, on recompute's cold path),
// never on compact.
package batch
