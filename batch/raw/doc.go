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
package raw
