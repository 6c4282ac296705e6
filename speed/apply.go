package speed

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// applyScript applies one flush of one view, covering one offset range per
// partition, and moves each partition's stored offset from the range's start
// to its end, atomically. The offset move is a compare-and-set: if any stored
// offset is not exactly the start of its range, the flush is either already
// applied (a replay after a crash) or stale (another worker, or a rebuild,
// moved it), and nothing is written.
//
// KEYS: 1 offsets hash, 2 index zset, 3 scratch key, then one hash per cell,
// then one HLL per (cell, uniq metric).
// ARGV: 1 #ranges, then per range: offsets field, from, to; then h = 2+3n:
// h #cells, h+1 #HLLs, h+2 index prune score (µs), h+3 latest cell expiry
// (ms), h+4 now (ms), h+5 offsets expiry (ms); then per cell: expiry (ms),
// score, member, #ops, ops as (op, field, value) with op i=HINCRBY
// f=HINCRBYFLOAT n=min x=max; then per HLL: expiry (ms), the cell's new
// registers as a Redis HLL object (merged into an existing one, or stored).
//
// Returns {1} when applied, {0, field, stored} when not (stored is "" if absent).
var applyScript = redis.NewScript(`
local nr = tonumber(ARGV[1])
for r = 0, nr - 1 do
  local f, from = ARGV[2 + 3*r], ARGV[3 + 3*r]
  local cur = redis.call('HGET', KEYS[1], f)
  if cur ~= from then
    return {0, f, cur or ''}
  end
end
local h = 2 + 3*nr
local a = h + 6
local k = 4
for _ = 1, tonumber(ARGV[h]) do
  local key = KEYS[k]
  k = k + 1
  local exp, score, member, nops = ARGV[a], ARGV[a+1], ARGV[a+2], tonumber(ARGV[a+3])
  a = a + 4
  for _ = 1, nops do
    local op, f, v = ARGV[a], ARGV[a+1], ARGV[a+2]
    a = a + 3
    if op == 'i' then
      redis.call('HINCRBY', key, f, v)
    elseif op == 'f' then
      redis.call('HINCRBYFLOAT', key, f, v)
    else
      local c = redis.call('HGET', key, f)
      if not c or (op == 'n' and tonumber(v) < tonumber(c)) or (op == 'x' and tonumber(v) > tonumber(c)) then
        redis.call('HSET', key, f, v)
      end
    end
  end
  if nops == 0 then
    -- a cell whose metrics were all null still exists for the index
    redis.call('HINCRBY', key, '_n', 0)
  end
  redis.call('PEXPIREAT', key, exp)
  redis.call('ZADD', KEYS[2], score, member)
end
local nh = tonumber(ARGV[h+1])
for _ = 1, nh do
  local key = KEYS[k]
  k = k + 1
  if redis.call('EXISTS', key) == 1 then
    redis.call('SET', KEYS[3], ARGV[a+1])
    redis.call('PFMERGE', key, KEYS[3])
  else
    redis.call('SET', key, ARGV[a+1])
  end
  redis.call('PEXPIREAT', key, ARGV[a])
  a = a + 2
end
if nh > 0 then
  redis.call('DEL', KEYS[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[h+2])
local idxExp = tonumber(ARGV[h+3])
if idxExp > 0 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl == -1 or (ttl >= 0 and tonumber(ARGV[h+4]) + ttl < idxExp) then
    redis.call('PEXPIREAT', KEYS[2], idxExp)
  end
end
for r = 0, nr - 1 do
  redis.call('HSET', KEYS[1], ARGV[2 + 3*r], ARGV[4 + 3*r])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[h+5])
return {1}
`)

// offsetsTTL is how long a view's offsets outlive its last flush. Windows
// expire at most hot_retention after their bucket, so once a view has seen
// nothing for twice that, restarting from now - hot_retention is exact.
func offsetsTTL(v *schemas.View) time.Duration { return 2 * v.HotRetention }

// errConflict says a stored offset was not where the flush started.
type errConflict struct {
	view, field string
	stored      string
}

func (e *errConflict) Error() string {
	return fmt.Sprintf("speed: view=%s %s: stored offset %q is not where the flush starts", e.view, e.field, e.stored)
}

// apply runs applyScript for the pending cells of a view's aggregators (one
// per partition) covering spans. A conflict is returned as *errConflict.
func apply(ctx context.Context, rdb redis.Scripter, p *plan, aggs []*aggregator, spans []span, now time.Time) error {
	keys, args := flushArgs(p, aggs, spans, now.UnixMilli())
	res, err := applyScript.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return fmt.Errorf("speed: apply flush view=%s (%d partitions): %w", p.view.Name, len(spans), err)
	}
	if len(res) > 0 {
		if ok, _ := res[0].(int64); ok == 1 {
			return nil
		}
	}
	c := &errConflict{view: p.view.Name}
	if len(res) > 2 {
		c.field, _ = res[1].(string)
		c.stored, _ = res[2].(string)
	}
	return c
}
