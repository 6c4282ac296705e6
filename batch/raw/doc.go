// Package raw is the raw lake's format as its writer and its readers share
// it (DESIGN §2 and §3): the compactor (package compact) writes
// raw/{schema}/dt=/hr=/ files named with the Kafka offsets they hold, the
// partitions' checkpoints and the dead letters; recompute, the cold path,
// merge and the jobs read them through this package.
//
// A crash between a flush's upload and its checkpoint can leave files that
// overlap later ones. PlanHour lists an hour's files and says which offsets
// an earlier file already holds, so every reader drops the overlap the same
// way and no record counts twice. Watermark is the compactor group's
// event-time watermark, from the checkpoints: an hour whose end it has
// passed is closed and recompute may take it.
//
// The compactor owns its checkpoints and writes them conditionally
// (ReadCheckpointVersion, WriteCheckpoint: If-Match on the ETag read,
// If-None-Match on create), so a compactor that lost the partition cannot
// move them. Dead letters carry a reason (ReasonMalformed, ReasonFuture,
// ReasonExpired); DeadLetterSummary counts them by schema, reason and
// ingest hour for operators. Seal records the hours retention has begun
// deleting, which recompute never rebuilds (_sealed/{schema}.json).
package raw
