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
// the schema, judges its event time with the schema's admission rule
// (schemas.Schema.Admit, the rule the compactor applies too) and feeds what
// is admitted to every view on that schema. Each view assigns the event to
// its bucket by event time and pre-aggregates it in memory for
// speed.flush_interval (default 200ms). One flusher per topic then takes
// what every partition holds (the partitions go on filling a second buffer
// meanwhile, and wait once that holds speed.max_pending cells and uniq
// values: backpressure) and applies it per view and shard: the cells of a
// shard's partitions, merged where they share a cell, together with those
// partitions' new offsets, in one MULTI/EXEC transaction around one Lua
// script (one atomic step). A view's shards are independent steps, applied
// side by side.
//
// # Shards
//
// views.NAME.shards (default 1, at most 64) spreads a view's hot data over
// Redis hash tags: Kafka partition p belongs to shard p % shards, and every
// key of shard s carries the tag {view:s} ({view} when there is one shard,
// so a one-shard view keeps the v1 key names). A shard's offsets live in
// its own slot beside its cells, so each shard's flush stays one atomic
// step on one Cluster node, and the busiest view can use as many nodes as
// it has shards. The same (bucket, dimensions) cell exists once per shard
// that received events for it; readers fan out to the shards and merge
// (sums add part by part, min/max compare, HyperLogLogs union). A worker
// refuses (at start, and `speed rebuild` too) a view with more shards than
// its topic has partitions: such a shard would never hold offsets, so the
// view could never be called whole. Which Cluster node a shard lands on
// follows the CRC16 of its tag: with as many shards as masters, an even
// spread is luck (for 3 on 3 masters, 2 names in 9); several shards per
// master spread a view's load evenly enough.
//
// Changing the shard count changes where partitions' offsets and cells
// live, so it is handled like a changed definition: each shard's offsets
// hash records the fingerprint with the shard count ("<fp>/<shards>", the
// plain fingerprint for one shard), and a worker that starts with another
// count, or finds offsets under a tag its count does not use, rebuilds the
// view (below): it clears the hot data under every tag, old and new, and
// replays from now - hot_retention into the new shards. Workers still
// running the old count then find the new fingerprint and stop feeding the
// view. Stop them before deploying the change, as for any view change.
//
// # Exactly-once effect
//
// Every view shard stores, per partition, the next offset it has to apply.
// A flush covers a contiguous offset range [from, to) per partition, and
// the script applies it only if every stored offset is exactly its from,
// then stores the tos; otherwise it changes nothing and the partitions
// reload the stored offsets and re-seek. After a crash the worker seeks to
// the smallest stored offset over the partition's views and skips, per
// view, records below that view's own offset, so no record is applied
// twice and none is lost. Redis errors are retried with backoff
// (internal/backoff: 100ms doubling to 5s) and nothing is stored as
// applied that was not. Kafka commits are made (at most once a second)
// only so that Kafka tooling shows a meaningful lag.
//
// The script checks everything before its first write and nothing after
// it can fail, so a flush is written whole or not at all (see applyScript).
// Overflow is not a failure: it is the rule below. What the script cannot
// interpret — a key of another type in the view's namespace, a field that is
// not a number — it refuses (an LLREJECT error) before writing anything.
// Such a refusal, or a Lua error, is deterministic: retrying cannot change
// it, and retrying forever would stall the partition. So the worker logs
// it, counts the flush in lambdalake_speed_rejected_flushes_total and its
// events in lambdalake_speed_skipped_total{reason="rejected"}, and moves on:
// a second atomic step moves the shard's offsets past the flush (the same
// compare-and-set) with nothing else written. For exactly-once this means:
// a rejected flush's records are counted zero times in the hot windows,
// never twice — at most once, and only for that flush; the batch layer,
// which does not read Redis, still has them, and replaces the hour once it
// closes. Its uniq values may already be in their HyperLogLogs (PFADD runs
// before the script in the same transaction; it is idempotent). Errors
// that say Redis cannot take the flush now (OOM, LOADING, BUSY, READONLY,
// TRYAGAIN, CLUSTERDOWN, MASTERDOWN, a lost connection, ...) are retried,
// never skipped; if even the offsets-only step is refused (the shard's
// offsets hash itself is not a hash), that is retried too: the one thing
// the worker will not write past. A PFADD Redis refuses (a uniq key of
// another type) does not undo its flush; it is logged and counted in
// lambdalake_speed_uniq_errors_total.
//
// uniq values go in the same transaction as PFADDs ahead of the script, not
// inside it: PFADD is idempotent, so the PFADDs of a refused (replayed)
// flush change no sketch, and Redis need not turn every value into a Lua
// string. The worker keeps one value per HyperLogLog register and cell (the
// one with the longest run, computed with Redis' own hash), which sets the
// same registers as every value would, so a flush carries at most 16384
// values per cell.
//
// # De-duplication
//
// A schema with schemas.NAME.dedup_window skips copies of events (dedup.go):
// the rule is the batch layer's, schemas.Schema.SameEvent — the same id
// value (its AppendKey text, also the Kafka key of keyed producers, so all
// copies share a partition) and the same UTC event hour; the first copy
// read counts. Each partition loop keeps a dedupWindow: per event hour, a
// set of 64-bit fingerprints (hash/maphash of the id text, open addressing,
// at most 3/4 full) of the ids it applied. Every admitted record passes it,
// whichever views still need the record, so the window holds what the raw
// lake holds; a repeat is skipped by every view with reason duplicate.
//
// The window is event time, in whole hours: an hour is held while it
// ended less than dedup_window ago (the current hour always), because the
// batch rule is per event hour — every bucket of a held hour equals what
// recompute will write, however far apart its copies arrive. An event of
// an hour not held is applied unchecked and not remembered.
//
// Exactly-once is kept across restarts by reading the window back, not by
// storing it: on every (re)assignment or reload a partition seeks to the
// first record written at or after (oldest held hour − max_future − 5m)
// (readBackFrom, by Kafka record time), and records below the lowest stored
// offset only pass the window (id and time decoded, admission judged),
// applying nothing; from the stored offset on it goes as before. So the
// first record applied is judged against the set the previous owner had.
//
// Memory: Config.DedupMaxBytes (speed.dedup_max_bytes) shared evenly by the
// generation's partitions. A table that must grow past its share drops the
// partition's oldest hours first (older than its own; the window shrinks,
// lambdalake_speed_dedup_shrunk_hours_total, a warning naming the hour); if
// that is not enough the id is not remembered
// (lambdalake_speed_dedup_unremembered_total). Buckets of held hours stay
// exact; a bucket of a dropped hour counts between the de-duplicated
// figure and every copy. Gauges per partition: lambdalake_speed_dedup_bytes,
// _dedup_ids, _dedup_window_start_seconds; lambdalake_speed_dedup_max_bytes
// the bound; lambdalake_speed_dedup_replayed_total the records read back.
//
// Without dedup_window the speed layer counts what arrives, duplicates
// included; the batch layer dedups by id and replaces these figures once
// an hour closes.
//
// # Skips
//
// Counted in lambdalake_speed_skipped_total{view,reason}:
//   - malformed: not decodable with the schema (the batch layer keeps it);
//   - future: more than the schema's max_future (default 15m) ahead of the
//     wall clock (schemas.Future; the compactor dead-letters it "future");
//   - expired: in an hour the raw lake's retention has sealed
//     (schemas.Expired; dead-lettered "expired");
//   - duplicate: a copy of an event the partition applied within the
//     schema's dedup_window (above);
//   - late: bucket end + hot_retention already past (its keys would expire at once);
//   - boundary: bucket before the view's boundary B (batch owns it);
//   - rejected: admitted, but its flush was rejected by Redis (above).
//
// Admission comes first, so an event refused by the rule both layers share
// never reaches Redis, whatever the view.
//
// # Redis keys
//
// The v2 layout (SPEED.md's contract). T is the shard's tag, {view} or
// {view:s}; <bucket> is the bucket start in Unix microseconds; <dims> is the
// view's dimension values in declaration order, each query-escaped, joined
// by "," (a null is "!", bools are true/false), so neither ':' nor '{'
// occurs in it ("" for a view without dimensions).
//
//	ll:T:m:<bucket>                   hash: every cell of the bucket in this shard
//	    "<dims>:<metric>"             count, sum's positive part, min, max (decimal;
//	                                  floats '%.17g' or Go's shortest text, ints exact)
//	    "<dims>:<metric>:n"           a sum's negative part, once a negative value came
//	    "<dims>:_" = "0"              the cell exists though it has no other field
//	ll:T:u:<bucket>:<dims>:<metric>   HyperLogLog of a uniq metric (PFADD)
//	ll:T:v:<hour>                     hash: <bucket> -> version, incremented by every
//	                                  flush touching the bucket; the list of buckets
//	ll:T:offsets                      hash: "<topic>:<partition>" -> next offset ("-1"
//	                                  while rebuilding); "_fp" -> fingerprint[/shards]
//	ll:{view}:boundary                string, B in Unix microseconds (internal/boundary's)
//
// Bucket hashes and HyperLogLogs expire at bucket end + hot_retention,
// version hashes at hour end + hot_retention, an offsets hash 2 x
// hot_retention after its shard's last flush. A sum's field holding "ovf"
// is an overflowed sum (below). The boundary key shares the one-shard tag
// but is not speed's: package internal/boundary owns it (batch recompute
// publishes B there, forward only); the worker reads it every flush with
// boundary.Read and skips buckets before it.
//
// Why this layout (measured with BenchmarkApplyFlush: one flush of 60,000
// events of two minutes, 10 tenants x 20 countries, count + float sum + min
// + max + uniq, on a Redis of its own): the v1 layout kept a hash per cell
// and a sorted-set index, and its script spent about six Redis commands
// per cell (HINCRBY, HINCRBYFLOAT, HGET/HSET for min and max, PEXPIREAT,
// ZADD). The v2 script reads a bucket's fields with one HMGET, adds in Lua
// where that is exact and writes them back with one HSET: 1,226 Redis
// commands per flush instead of 4,824 (800 of them the PFADDs and their
// PEXPIREATs, as before), 5.3-6.3 ms of script time instead of 7.3-9.1 ms.
// The transaction as a whole (about 24 ms) is dominated by the PFADDs into
// 400 HyperLogLogs, which neither layout avoids. Reads get one HGETALL per
// bucket instead of one per cell. In Redis memory, a view of 12,200 cells
// (61 minutes x 200) holds 12,263 keys instead of 24,402: 15.7 bytes per
// event instead of 16.5 at 500,000 events, 6.2 instead of 6.4 at 2,000,000
// (bench speed; the HyperLogLogs are most of it).
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
// count, and sum/min/max over int64 and decimal(P,S) fields, are exact. A
// decimal is its scaled int64 (the value × 10^S, schemas.Value.Int), so
// every rule below for int64 is the decimal's too: a decimal(18,2) sum is
// the int64 sum of its cents, HINCRBY included, and overflows when a part
// leaves int64 (a decimal's P is at most 18, so every value fits; sums of
// more than about nine maximal decimal(18,S) values may not). The stored
// text is the scaled integer; the scale is the view's (View.MetricType),
// and only answers print the point (schemas.AppendDecimal). Sums follow the
// overflow rule of schemas.IntSum/FloatSum: each sum is two monotone parts,
// the positives (the metric's field) and the negatives (its ":n" field,
// once one came), pre-aggregated per flush in Go with IntSum/FloatSum and
// added in the script part by part. An int64 part is added in Lua when both
// sides are below 10^15 (exact in a double), else with HINCRBY under
// redis.pcall: Redis refuses an overflowing HINCRBY without writing, and the
// script then marks the sum. A float64 part is added in Lua in double
// precision and written with '%.17g', which round-trips (HINCRBYFLOAT keeps
// 17 decimal places, so a sum of 9.8e-301 read 0); a part reaching ±Inf
// marks the sum. A marked sum's field reads "ovf" and its ":n" field goes:
// sticky, whatever comes later, counted in
// lambdalake_speed_overflowed_sums_total; readers answer it as null, listed
// as overflowed. A flush whose own partial sum already overflowed sends the
// mark directly. Float sums are added in another order than batch's, so
// they match it to a relative 1e-9, not bit for bit. min/max of float64 are
// stored as the shortest decimal that round-trips and compared as doubles;
// of int64 and decimals they are compared exactly, as decimal text in Lua (the v1 script
// compared doubles, wrong above 2^53). uniq values are counted under
// schemas.AppendUniqElement's text, the one batch hashes for its sketches;
// uniq is a Redis HyperLogLog (about 0.8% standard error).
//
// ReadCells reads the layout back at its stored grain (every shard merged,
// no roll-up, no cache): tests, benchmarks and operators' tools use it; the
// serving layer asks the Reader.
//
// # Rebuild
//
// Reset (`lambdalake speed rebuild --view V`) looks at every tag the view
// may have been written under ({view} and {view:0} .. {view:63}), marks
// every partition's offset "rebuilding" (running workers pause that view's
// partitions) and drops the fingerprints, deletes the view's hot data
// under all those tags (found with SCAN on every master: the layout keeps
// no list of all keys, so a rebuild costs a pass over the keyspace; v1
// cells and index included), and sets the current shards' offsets to
// Kafka's offsets at now - hot_retention with the fingerprint, so workers
// replay the hot window (an idle worker notices within a second). Offsets
// hashes of tags the current shard count does not use keep only the new
// fingerprint, so a worker still running the old count stops feeding the
// view instead of starting it afresh. The command then goes on consuming
// as a worker for the views on that view's schema, unless given --exit. A
// worker that starts and finds another fingerprint, another shard count,
// offsets under a tag its count does not use, or the v1 layout's index,
// does the same by itself; workers still running the older definition
// then stop feeding the view and say so in their log. Stop old workers
// before deploying a changed view: one flush in flight at the switch may
// still add values to the new uniq sketches.
package speed
