package speed

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// applyScript applies one flush of one view from one partition, and moves the
// partition's stored offset from ARGV[2] to ARGV[3], atomically. The offset
// move is a compare-and-set: if the stored offset is not exactly the start of
// the flush, the flush is either already applied (a replay after a crash) or
// stale (another worker, or a rebuild, moved it), and nothing is written.
//
// KEYS: 1 offsets hash, 2 index zset, then one hash per cell, then one HLL per
// (cell, uniq metric).
// ARGV: 1 offsets field, 2 from, 3 to, 4 #cells, 5 #HLLs, 6 index prune score
// (µs), 7 latest cell expiry (ms), 8 now (ms), 9 offsets expiry (ms); then per
// cell: expiry (ms), score, member, #ops, ops as (op, field, value) with op
// i=HINCRBY f=HINCRBYFLOAT n=min x=max; then per HLL: expiry (ms), #elements,
// elements.
//
// Returns {1} when applied, {0, stored} when not (stored is "" if absent).
var applyScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur ~= ARGV[2] then
  return {0, cur or ''}
end
local a = 10
local k = 3
for _ = 1, tonumber(ARGV[4]) do
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
for _ = 1, tonumber(ARGV[5]) do
  local key = KEYS[k]
  k = k + 1
  local exp, n = ARGV[a], tonumber(ARGV[a+1])
  a = a + 2
  local j = 0
  while j < n do
    local m = math.min(n - j, 4000)
    redis.call('PFADD', key, unpack(ARGV, a + j, a + j + m - 1))
    j = j + m
  end
  a = a + n
  redis.call('PEXPIREAT', key, exp)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
local idxExp = tonumber(ARGV[7])
if idxExp > 0 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl >= 0 and tonumber(ARGV[8]) + ttl < idxExp then
    redis.call('PEXPIREAT', KEYS[2], idxExp)
  elseif ttl == -1 then
    redis.call('PEXPIREAT', KEYS[2], idxExp)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[9])
return {1}
`)

// offsetsTTL is how long a view's offsets outlive its last flush. Windows
// expire at most hot_retention after their bucket, so once a view has seen
// nothing for twice that, restarting from now - hot_retention is exact.
func offsetsTTL(v *schemas.View) time.Duration { return 2 * v.HotRetention }

// errConflict says the stored offset was not where the flush started.
type errConflict struct {
	view, field string
	from        int64
	stored      string
}

func (e *errConflict) Error() string {
	return fmt.Sprintf("speed: view=%s %s: stored offset %q, flush starts at %d", e.view, e.field, e.stored, e.from)
}

// apply runs applyScript for the aggregator's pending cells covering Kafka
// offsets [from, to) of one partition. A conflict is returned as *errConflict.
func apply(ctx context.Context, rdb redis.Scripter, a *aggregator, topic string, partition int, from, to int64, now time.Time) error {
	field := offsetField(topic, partition)
	keys, args := a.flushArgs(field, from, to, now.UnixMilli())
	res, err := applyScript.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return fmt.Errorf("speed: apply flush view=%s %s [%d,%d): %w", a.plan.view.Name, field, from, to, err)
	}
	if len(res) > 0 {
		if ok, _ := res[0].(int64); ok == 1 {
			return nil
		}
	}
	stored := ""
	if len(res) > 1 {
		stored, _ = res[1].(string)
	}
	return &errConflict{view: a.plan.view.Name, field: field, from: from, stored: stored}
}
