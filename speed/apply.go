package speed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// applyScript applies the count/sum/min/max part of one flush of one view
// shard, covering one offset range per partition of the shard, and moves
// each partition's stored offset from the range's start to its end,
// atomically. The offset move is a compare-and-set: if any stored offset is
// not exactly the start of its range, the flush is either already applied
// (a replay after a crash) or stale (another worker, or a rebuild, moved
// it), and nothing is written.
//
// The script reads and checks everything before its first write, and no
// write after that can fail: an int64 addition that could overflow runs as
// HINCRBY under redis.pcall (an overflow makes the sum "ovf"), a float64
// sum that reaches ±Inf becomes "ovf", every other write is to a key whose
// type was checked. So a flush is applied whole or not at all. Anything it
// cannot interpret (a key of another type, a field that is not a number, a
// malformed argument) makes it return an error starting with LLREJECT
// before any write: a deterministic refusal the worker does not retry.
//
// Cells are added in Lua where that is exact (integers below 10^15 on
// both sides, doubles for floats) and written with one HSET per bucket, so
// a cell costs Redis no command of its own.
//
// KEYS: 1 the shard's offsets hash, then one hash per bucket (in ARGV's
// order), then the version hashes (one per hour).
// ARGV: 1 #ranges, then per range: offsets field, from, to; then h = 2+3n:
// h #buckets, h+1 offsets expiry (ms); then per bucket: bucket (µs, the
// version field), KEYS index of its version hash, bucket expiry (ms),
// version expiry (ms), #ops, then ops as (op, field, value), see the op*
// constants in agg.go. A sum's "I"/"F" (negative part) follows its
// "i"/"f"; "e"s precede their "t".
//
// Returns {1, overflowed} when applied (overflowed: sums that became
// "ovf"), {0, field, stored} when the offsets did not match (stored is ""
// if absent), or an LLREJECT error.
const applyScript = `
local nr = tonumber(ARGV[1])
for r = 0, nr - 1 do
  local f, from = ARGV[2 + 3*r], ARGV[3 + 3*r]
  local cur = redis.call('HGET', KEYS[1], f)
  if cur ~= from then
    return {0, f, cur or ''}
  end
end

local tonumber, format, find, sub, byte, floor, huge = tonumber, string.format, string.find, string.sub, string.byte, math.floor, math.huge
local function reject(why)
  return redis.error_reply('LLREJECT ' .. why)
end
-- digit strings, exactly (no sign, no leading zeros beyond a lone "0")
local function ucmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  local x, y
  if #a <= 15 then
    x, y = tonumber(a), tonumber(b)
  else
    x, y = tonumber(sub(a, 1, 10)), tonumber(sub(b, 1, 10))
    if x == y then x, y = tonumber(sub(a, 11)), tonumber(sub(b, 11)) end
  end
  if x < y then return -1 elseif x > y then return 1 end
  return 0
end
-- canonical decimal int64 text
local function isint(s)
  if s == '0' then return true end
  if not find(s, '^%-?[1-9]%d*$') then return false end
  local neg = byte(s, 1) == 45
  local m = neg and sub(s, 2) or s
  if #m < 19 then return true end
  return #m == 19 and ucmp(m, neg and '9223372036854775808' or '9223372036854775807') <= 0
end
local function icmp(a, b)
  local na, nb = byte(a, 1) == 45, byte(b, 1) == 45
  if na ~= nb then return na and -1 or 1 end
  if na then return -ucmp(sub(a, 2), sub(b, 2)) end
  return ucmp(a, b)
end
-- an integer Lua adds exactly (with another such, the sum is below 2^53)
local function small(x)
  return x and x == floor(x) and x > -1e15 and x < 1e15
end
local function finite(x)
  return x ~= nil and x == x and x ~= huge and x ~= -huge
end

local h = 2 + 3*nr
local nb = tonumber(ARGV[h])
local a = h + 2
local plans = {}
local vseen = {}
local novf = 0
-- A sum overflowed: its field reads "ovf" (a later pair of an HSET wins)
-- and its negative part goes.
local function ovf(p, main)
  p.nkv = p.nkv + 2
  p.kv[p.nkv - 1], p.kv[p.nkv] = main, 'ovf'
  p.dels[#p.dels + 1] = main .. ':n'
  novf = novf + 1
end

-- Pass 1: check everything and compute the new values; no write.
for b = 1, nb do
  local key = KEYS[1 + b]
  local p = {key = key, bucket = ARGV[a], vkey = KEYS[tonumber(ARGV[a+1])], exp = ARGV[a+2], vexp = ARGV[a+3],
    kv = {}, nkv = 0, dels = {}, incrs = {}}
  local nops = tonumber(ARGV[a+4])
  a = a + 5
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'hash' and t ~= 'none' then return reject(key .. ' is a ' .. t) end
  if not vseen[p.vkey] then
    t = redis.call('TYPE', p.vkey)['ok']
    if t ~= 'hash' and t ~= 'none' then return reject(p.vkey .. ' is a ' .. t) end
    vseen[p.vkey] = true
  end
  local ver = redis.call('HGET', p.vkey, p.bucket)
  if ver and not (isint(ver) and #ver <= 15) then return reject(p.vkey .. ' ' .. p.bucket .. ' holds ' .. ver) end
  local fields = {}
  for j = 1, nops do fields[j] = ARGV[a + 3*j - 2] end
  local cur = {}
  for c = 1, nops, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, c, math.min(c + 999, nops)))
    for k = 1, #part do cur[c + k - 1] = part[k] end
  end
  local kv, nkv, incrs = p.kv, 0, p.incrs
  local main, mainCur, exists = nil, nil, false
  for j = 1, nops do
    local op, f, v = ARGV[a], ARGV[a+1], ARGV[a+2]
    a = a + 3
    local c = cur[j]
    if op == 'i' or op == 'I' then
      if op == 'i' then main, mainCur = f, c end
      if mainCur ~= 'ovf' then
        local x, y = tonumber(v), 0
        if c then y = tonumber(c) end
        if #v <= 15 and small(x) and (not c or #c <= 15) and small(y) then
          nkv = nkv + 2
          kv[nkv - 1], kv[nkv] = f, format('%d', x + y)
        elseif isint(v) and (not c or isint(c)) then
          -- exact int64 in Redis; an overflow makes the sum "ovf"
          incrs[#incrs + 1] = f
          incrs[#incrs + 1] = v
          incrs[#incrs + 1] = main
        else
          return reject(key .. ' ' .. f .. ': ' .. tostring(c) .. ' + ' .. v)
        end
      end
    elseif op == 'f' or op == 'F' then
      if op == 'f' then main, mainCur = f, c end
      if mainCur ~= 'ovf' then
        local x, y = tonumber(v), 0
        if c then y = tonumber(c) end
        if not finite(x) or not finite(y) then return reject(key .. ' ' .. f .. ': ' .. tostring(c) .. ' + ' .. v) end
        local s = x + y
        if s ~= huge and s ~= -huge then
          nkv = nkv + 2
          kv[nkv - 1], kv[nkv] = f, format('%.17g', s)
        else
          p.nkv = nkv
          ovf(p, main)
          nkv = p.nkv
          mainCur = 'ovf'
        end
      end
    elseif op == 'o' then
      main, mainCur = f, 'ovf'
      if c ~= 'ovf' then
        p.nkv = nkv
        ovf(p, f)
        nkv = p.nkv
      end
    elseif op == 'n' or op == 'x' then
      if not isint(v) or (c and not isint(c)) then return reject(key .. ' ' .. f .. ': ' .. tostring(c) .. ' vs ' .. v) end
      if not c or (op == 'n' and icmp(v, c) < 0) or (op == 'x' and icmp(v, c) > 0) then
        nkv = nkv + 2
        kv[nkv - 1], kv[nkv] = f, v
      end
    elseif op == 'm' or op == 'M' then
      local x, y = tonumber(v), nil
      if c then y = tonumber(c) end
      if not finite(x) or (c and not finite(y)) then return reject(key .. ' ' .. f .. ': ' .. tostring(c) .. ' vs ' .. v) end
      if not c or (op == 'm' and x < y) or (op == 'M' and x > y) then
        nkv = nkv + 2
        kv[nkv - 1], kv[nkv] = f, v
      end
    elseif op == 'e' then
      if c then exists = true end
    elseif op == 't' then
      if not exists then
        nkv = nkv + 2
        kv[nkv - 1], kv[nkv] = f, '0'
      end
      exists = false
    else
      return reject('unknown op ' .. tostring(op))
    end
  end
  p.nkv = nkv
  plans[b] = p
end

-- Pass 2: write. Nothing here can fail.
local vexp = {}
for b = 1, nb do
  local p = plans[b]
  local incrs = p.incrs
  for i = 1, #incrs, 3 do
    local r = redis.pcall('HINCRBY', p.key, incrs[i], incrs[i+1])
    if type(r) == 'table' and r.err then ovf(p, incrs[i+2]) end
  end
  local kv, nkv = p.kv, p.nkv
  for c = 1, nkv, 2000 do
    redis.call('HSET', p.key, unpack(kv, c, math.min(c + 1999, nkv)))
  end
  for c = 1, #p.dels, 1000 do
    redis.call('HDEL', p.key, unpack(p.dels, c, math.min(c + 999, #p.dels)))
  end
  redis.call('PEXPIREAT', p.key, p.exp)
  redis.call('HINCRBY', p.vkey, p.bucket, 1)
  vexp[p.vkey] = p.vexp
end
for k, e in pairs(vexp) do
  redis.call('PEXPIREAT', k, e)
end
if nr > 0 then
  local offs = {}
  for r = 0, nr - 1 do
    offs[#offs + 1] = ARGV[2 + 3*r]
    offs[#offs + 1] = ARGV[4 + 3*r]
  end
  redis.call('HSET', KEYS[1], unpack(offs))
  redis.call('PEXPIREAT', KEYS[1], ARGV[h+1])
end
return {1, novf}
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

// errRejected says Redis refused a flush for a reason that retrying cannot
// change (see deterministic); nothing of its counts was written.
type errRejected struct {
	view string
	err  error
}

func (e *errRejected) Error() string {
	return fmt.Sprintf("speed: view=%s: flush rejected: %v", e.view, e.err)
}

func (e *errRejected) Unwrap() error { return e.err }

// applied is what an applied flush reports.
type applied struct {
	overflowed int64 // sums that became overflowed ("ovf")
	uniqErrs   []error
}

// apply applies one flush of a view shard: the PFADDs of its uniq metrics,
// then applyScript, in one MULTI/EXEC transaction. The PFADDs are outside
// the offset guard on purpose: PFADD is idempotent, so a refused (replayed)
// flush re-adding values changes no sketch, and leaving the values out of
// the script spares Redis turning each into a Lua string. A conflict is
// returned as *errConflict, a deterministic refusal as *errRejected; a
// PFADD that Redis refuses (a uniq key of another type) does not undo the
// flush and is reported in applied.uniqErrs. With no aggregators it only
// moves the offsets (how a rejected flush is skipped).
func apply(ctx context.Context, rdb redis.UniversalClient, p *plan, sh Shard, aggs []*aggregator, spans []span, now time.Time) (applied, error) {
	keys, args, hlls := flushArgs(p, sh, aggs, spans, now.UnixMilli())
	var res *redis.Cmd
	var adds []*redis.IntCmd
	_, err := rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		for _, h := range hlls {
			adds = append(adds, tx.PFAdd(ctx, h.key, h.vals...))
			tx.PExpireAt(ctx, h.key, time.UnixMilli(h.expMs))
		}
		// The script text rides along (Redis caches it by hash): EVALSHA
		// cannot fall back to EVAL inside a transaction.
		res = tx.Eval(ctx, applyScript, keys, args...)
		return nil
	})
	var out applied
	if err != nil && res.Err() == nil {
		// The script ran; what failed is a PFADD of a uniq key of
		// another type: deterministic, and the rest stands.
		for _, a := range adds {
			if e := a.Err(); e != nil {
				if !isServerError(e) {
					return out, fmt.Errorf("speed: apply flush view=%s shard=%s: %w", p.view.Name, sh.Tag(), err)
				}
				out.uniqErrs = append(out.uniqErrs, e)
			}
		}
		if len(out.uniqErrs) == 0 {
			return out, fmt.Errorf("speed: apply flush view=%s shard=%s: %w", p.view.Name, sh.Tag(), err)
		}
	} else if err != nil {
		if deterministic(res.Err()) {
			return out, &errRejected{view: p.view.Name, err: res.Err()}
		}
		return out, fmt.Errorf("speed: apply flush view=%s shard=%s (%d partitions): %w", p.view.Name, sh.Tag(), len(spans), err)
	}
	r, err := res.Slice()
	if err != nil {
		return out, fmt.Errorf("speed: apply flush view=%s shard=%s: %w", p.view.Name, sh.Tag(), err)
	}
	if len(r) > 0 {
		if ok, _ := r[0].(int64); ok == 1 {
			if len(r) > 1 {
				out.overflowed, _ = r[1].(int64)
			}
			return out, nil
		}
	}
	c := &errConflict{view: p.view.Name}
	if len(r) > 2 {
		c.field, _ = r[1].(string)
		c.stored, _ = r[2].(string)
	}
	return out, c
}

// isServerError says err is an error reply from Redis, not a failure to
// reach it.
func isServerError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}

// transientReplies are the error replies that say Redis cannot take the
// flush now (memory full, loading, a failover or resharding under way, a
// long script elsewhere): retried, whatever else the message says.
var transientReplies = []string{"OOM", "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN",
	"READONLY", "NOREPLICAS", "MOVED", "ASK", "NOAUTH", "NOPERM", "WRONGPASS"}

// deterministic says the script's error is one retrying cannot change: its
// own refusal (LLREJECT: something in Redis or in the flush it cannot
// interpret) or a Lua error (a bug, or a command inside it refusing). Only
// these make a flush be skipped; every other error is retried.
func deterministic(err error) bool {
	if err == nil || !isServerError(err) {
		return false
	}
	msg := err.Error()
	for _, p := range transientReplies {
		if strings.HasPrefix(msg, p+" ") || msg == p {
			return false
		}
	}
	return strings.HasPrefix(msg, "LLREJECT") || strings.Contains(msg, "user_script") ||
		strings.Contains(msg, "Error running script") || strings.Contains(msg, "Error compiling script")
}
