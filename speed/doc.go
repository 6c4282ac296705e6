// Package speed is the speed layer of DESIGN §2: a Kafka consumer-group
// worker that keeps each view's recent event-time windows ("hot" buckets) in
// Redis, and the Reader the serving layer uses to answer [B, to) from them.
//
// # Flow
//
// Worker.Run joins the consumer group speed.group on the topics of the
// configured views' schemas. Each assigned partition gets its own loop: it
// reads the partition from the offsets stored in Redis (never from Kafka's
// committed offsets, which are advisory only), decodes every record once with
// the schema, and feeds it to every view on that schema. Each view assigns the
// event to its bucket by event time and pre-aggregates it in memory for
// speed.flush_interval (default 200ms). One flusher per topic then takes
// what every partition holds (the partitions go on filling a second buffer
// meanwhile, and wait once that holds speed.max_pending cells and uniq
// values: backpressure) and applies it per view, cells shared by partitions
// merged, together with every partition's new offset, in one MULTI/EXEC
// transaction around one Lua script (one atomic step).
//
// # Exactly-once effect
//
// Every view stores, per partition, the next offset it has to apply. A flush
// covers a contiguous offset range [from, to) per partition, and the script
// applies it only if every stored offset is exactly its from, then stores the
// tos; otherwise it changes nothing and the partitions reload the stored
// offsets and re-seek. After a crash the worker seeks to the smallest stored
// offset over the partition's views and skips, per view, records below that
// view's own offset, so no record is applied twice and none is lost. Redis
// errors are retried with backoff (internal/backoff: 100ms doubling to 5s)
// and nothing is stored as applied that was not. Kafka commits are made (at
// most once a second) only so that Kafka tooling shows a meaningful lag.
//
// uniq values go in the same transaction as PFADDs ahead of the script, not
// inside it: PFADD is idempotent, so the PFADDs of a refused (replayed) flush
// change no sketch, and Redis need not turn every value into a Lua string.
// The worker keeps one value per HyperLogLog register and cell (the one with
// the longest run, computed with Redis' own hash), which sets the same
// registers as every value would, so a flush carries at most 16384 values
// per cell.
//
// The speed layer counts what arrives: duplicates (same event id) are
// counted again; the batch layer dedups by id and replaces these figures once
// an hour closes.
//
// # Skips
//
// Counted in lambdalake_speed_skipped_total{view,reason}:
//   - malformed: not decodable with the schema (the batch layer keeps it);
//   - boundary: bucket before the view's boundary B (batch owns it);
//   - late: bucket end + hot_retention already past (its keys would expire at once);
//   - future: event time more than hot_retention ahead of the wall clock.
//
// # Redis keys
//
// Every key of a view carries the hash tag {view}, so a view's flush and its
// multi-key reads stay in one Redis Cluster slot; the same code runs on a
// single Redis or a cluster. <bucket> is the bucket start in Unix
// microseconds; <dims> is the view's dimension values in declaration order,
// each query-escaped, joined by "," (a null is "!", bools are true/false).
//
//	ll:{view}:b:<bucket>:<dims>           hash, one field per count/sum/min/max metric
//	ll:{view}:u:<bucket>:<dims>:<metric>  HyperLogLog of a uniq metric
//	ll:{view}:idx                         sorted set, member "<bucket>:<dims>", score <bucket>
//	ll:{view}:offsets                     hash, "<topic>:<partition>" -> next offset; "_fp" -> fingerprint
//	ll:{view}:boundary                    string, B in Unix microseconds (internal/boundary's)
//
// Cell keys expire at bucket end + hot_retention. The index expires with its
// newest cell and drops members older than now - hot_retention on each
// flush, so a read finds a range's cells without SCAN. The offsets hash
// expires 2 x hot_retention after the view's last flush. The boundary key
// shares the view's hash tag but is not speed's: package internal/boundary
// owns it (batch recompute publishes B there, forward only); the worker
// reads it every flush with boundary.Read and skips buckets before it.
//
// # Reading
//
// The Reader is the speed layer's whole API to the serving layer, which
// never reads these keys itself. Reader.Query reads a view's cells for
// [from, to) through the index, filters on dimension values (typed values,
// parsed once by the caller with schemas.ParseDimValue and encoded here as
// the cells' keys are), rolls buckets up to a step (schemas.Floor) and
// dimensions up to a group_by, and reports which granularity buckets Redis
// holds any cell for. Reader.Sketches gives the merged uniq sketches per
// group, for merging with batch's sketches across the boundary; it and
// Query share one scan of the index. Reader.Whole answers whether the hot
// windows can be trusted at all: the offsets hash exists, carries the
// view's fingerprint and no rebuild is under way; if not, the serving
// layer treats [B, now) as lost (a gap it may fill from the lake) rather
// than as empty. Reader.HotRange is the range of buckets Redis holds.
//
// # Numbers
//
// count, and sum/min/max over int64 fields, are exact. Sums over float64
// fields accumulate with HINCRBYFLOAT (long double in Redis), applied once
// per flush to a per-flush float64 partial sum, so they match a float64
// reference to a relative 1e-9, not bit for bit. min/max of float64 are
// stored as the shortest decimal that round-trips, so they are exact (min and
// max compare as Lua doubles, so int64 values beyond 2^53 may compare
// inexactly; in Go both layers order them with schemas.Replaces). uniq
// values are counted under schemas.AppendUniqElement's text, the one batch
// hashes for its sketches. uniq is a Redis HyperLogLog (about 0.8%
// standard error); a roll-up across buckets or dimensions is a multi-key
// PFCOUNT (a union).
//
// # Rebuild
//
// Reset (`lambdalake speed rebuild --view V`) marks the view's offsets as
// rebuilding (running workers pause that view's partitions), deletes the
// cells found through the index, and sets the offsets to Kafka's offsets at
// now - hot_retention, so workers replay the hot window (an idle worker
// notices within a second). The command then goes on consuming as a worker
// for the views on that view's schema, unless given --exit. A worker that starts and finds a different view
// fingerprint does the same by itself; workers still running the older
// definition then stop feeding the view and say so in their log. Stop old
// workers before deploying a changed view: one flush in flight at the switch
// may still add values to the new uniq sketches.
package speed
