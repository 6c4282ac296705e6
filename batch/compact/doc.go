// Package compact is the continuous half of the batch layer (DESIGN §2):
// Kafka → the raw Parquet lake. It holds the only Kafka consumer of the
// batch side; the formats it writes are package raw's, and recompute,
// serving and the jobs read them through that package.
//
// A Compactor is a Kafka consumer group that writes each partition's
// records into Parquet files under raw/{schema}/dt=/hr=/, one file per
// (partition, event hour, flush), named with the offsets it holds.
// A flush uploads the files, then writes the partition's checkpoint
// (_checkpoints/..., the source of truth for where to resume, with the
// partition's event-time watermark), then commits the Kafka offsets, which
// are advisory. A crash between upload and checkpoint re-reads from the old
// checkpoint and writes files that overlap the earlier ones; readers
// (raw.PlanHour) drop records whose (partition, offset) an earlier file holds,
// and Merge (merge.go, the merge job) later rewrites a closed hour's files
// into one per partition.
//
// Every decoded event is judged by the schema's admission rule
// (schemas.Schema.Admit) with the wall clock (Config.Now) before anything
// else (DESIGN §2, "Event time is bounded"): undecodable records and events
// admission refuses go to deadletter/ with their reason (malformed, future,
// expired), counted in lambdalake_compact_deadletters_total{schema,reason};
// a refused event never reaches a raw file nor moves the partition's latest
// event time. The watermark never passes the wall clock at the cut minus
// lateness, whatever the data says, so hours close by the wall clock's
// hour at the latest; a checkpoint left past the wall clock by data from
// before admission is brought back at the next flush.
//
// The checkpoint is the compactor's own object and is written
// conditionally, over the version the partition's owner read (If-Match;
// If-None-Match when there was none): a compactor that lost the partition
// in a rebalance it has not seen yet, still flushing, is refused at once
// (lambdalake_compact_checkpoints_refused_total), and its partition stops
// rather than move the new owner's checkpoint.
//
// Memory is bounded by one byte budget per process; while S3 is down the
// flushes retry forever (internal/backoff) and consumption waits instead of
// growing.
//
// Decisions DESIGN.md leaves open:
//   - A flush writes every buffered hour of its partition at once: the
//     checkpoint can only move past records that are all stored.
//   - max_file_rows and max_file_bytes count one hour file's buffered rows
//     and bytes (the JSON size plus a fixed per-row overhead, the same
//     measure as the budget), not the compressed Parquet size.
//   - Half the budget buffered makes the largest partition flush; the whole
//     budget (buffered plus being written) makes every partition wait. A
//     partition adds its bytes to the budget every 64 KiB, so the budget
//     may be overshot by that much per partition.
//   - Raw files hold one row group sorted by (event time, offset). Integer
//     and timestamp columns are DELTA_BINARY_PACKED, strings
//     DELTA_BYTE_ARRAY, all zstd (fastest level): sorted times and offsets
//     shrink to a few bits per row before zstd sees them. DuckDB, Spark,
//     Trino and Arrow read these encodings.
//   - A dead letter's hour is its Kafka timestamp's hour (a malformed one
//     has no event time, a refused one must not be filed under it); raw
//     rows' _ingested_at is that Kafka timestamp too, so a re-read writes
//     identical rows.
//   - Admission reads the clock every 64 records, whenever a record's Kafka
//     time is later than the last reading, and again before refusing an
//     event: a stale reading never refuses what the clock admits.
//   - Merge writes one file per (hour, partition), named with the offset
//     range it covers, so merged files are raw files like any other.
package compact
