package speed

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// applyScript applies the count/sum/min/max part of one flush of one view,
// covering one offset range per partition, and moves each partition's stored
// offset from the range's start to its end, atomically. The offset move is a
// compare-and-set: if any stored offset is not exactly the start of its
// range, the flush is either already applied (a replay after a crash) or
// stale (another worker, or a rebuild, moved it), and nothing is written.
//
// KEYS: 1 offsets hash, 2 index zset, then one hash per cell.
// ARGV: 1 #ranges, then per range: offsets field, from, to; then h = 2+3n:
// h #cells, h+1 index prune score (µs), h+2 latest cell expiry (ms), h+3 now
// (ms), h+4 offsets expiry (ms); then per cell: expiry (ms), score, member,
// #ops, ops as (op, field, value) with op i=HINCRBY f=HINCRBYFLOAT n=min
// x=max.
//
// Returns {1} when applied, {0, field, stored} when not (stored is "" if absent).
const applyScript = `
local nr = tonumber(ARGV[1])
for r = 0, nr - 1 do
  local f, from = ARGV[2 + 3*r], ARGV[3 + 3*r]
  local cur = redis.call('HGET', KEYS[1], f)
  if cur ~= from then
    return {0, f, cur or ''}
  end
end
local h = 2 + 3*nr
local a = h + 5
local k = 3
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
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[h+1])
local idxExp = tonumber(ARGV[h+2])
if idxExp > 0 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl == -1 or (ttl >= 0 and tonumber(ARGV[h+3]) + ttl < idxExp) then
    redis.call('PEXPIREAT', KEYS[2], idxExp)
  end
end
for r = 0, nr - 1 do
  redis.call('HSET', KEYS[1], ARGV[2 + 3*r], ARGV[4 + 3*r])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[h+4])
return {1}
`

// offsetsTTL is how long a view's offsets outlive its last flush. Windows
// expire at most hot_retention after their bucket, so once a view has seen
// nothing for twice that, restarting from now - hot_retention is exact.
func offsetsTTL(v *schemas.View) time.Duration { return 2 * v.HotRetention }

// errConflict says a stored offset was not where the flush started.
type errConflict struct {
	view, field string
	stored      string
}

var _ error = (*errConflict)(nil)

func (e *errConflict) Error() string {
	return fmt.Sprintf("speed: view=%s %s: stored offset %q is not where the flush starts", e.view, e.field, e.stored)
}

// apply applies one flush of a view: the PFADDs of its uniq metrics, then
// applyScript, in one MULTI/EXEC transaction. The PFADDs are outside the
// offset guard on purpose: PFADD is idempotent, so a refused (replayed)
// flush re-adding values changes no sketch, and leaving the values out of
// the script spares Redis turning each into a Lua string. A conflict is
// returned as *errConflict.
func apply(ctx context.Context, rdb redis.UniversalClient, p *plan, aggs []*aggregator, spans []span, now time.Time) error {
	keys, args, hlls := flushArgs(p, aggs, spans, now.UnixMilli())
	var res *redis.Cmd
	_, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		for _, h := range hlls {
			tx.PFAdd(ctx, h.key, h.vals...)
			tx.PExpireAt(ctx, h.key, time.UnixMilli(h.expMs))
		}
		// The script text rides along (Redis caches it by hash): EVALSHA
		// cannot fall back to EVAL inside a transaction.
		res = tx.Eval(ctx, applyScript, keys, args...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("speed: apply flush view=%s (%d partitions): %w", p.view.Name, len(spans), err)
	}
	out, err := res.Slice()
	if err != nil {
		return fmt.Errorf("speed: apply flush view=%s: %w", p.view.Name, err)
	}
	if len(out) > 0 {
		if ok, _ := out[0].(int64); ok == 1 {
			return nil
		}
	}
	c := &errConflict{view: p.view.Name}
	if len(out) > 2 {
		c.field, _ = out[1].(string)
		c.stored, _ = out[2].(string)
	}
	return c
}
