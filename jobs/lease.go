package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeaseLost is the cause of a job context cancelled because its runner
// no longer holds the lease: another runner may own the job now.
var ErrLeaseLost = errors.New("jobs: lease lost")

// errNotAcquired says the lock is held, or the slot already ran.
type errNotAcquired struct{ reason string }

func (e *errNotAcquired) Error() string { return "jobs: not acquired: " + e.reason }

var _ error = (*errNotAcquired)(nil)

var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'busy'} end
if ARGV[3] ~= '' then
  local last = tonumber(redis.call('GET', KEYS[3]) or '-1')
  if tonumber(ARGV[3]) <= last then return {0, 'done'} end
  redis.call('SET', KEYS[3], ARGV[3])
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return {token, 'ok'}
`)

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

type keys struct{ ns string }

func (k keys) prefix() string          { return "ll:{" + k.ns + "}:" }
func (k keys) lock(job string) string  { return k.prefix() + "lock:" + job }
func (k keys) fence(job string) string { return k.prefix() + "fence:" + job }
func (k keys) slot(job string) string  { return k.prefix() + "slot:" + job }
func (k keys) history() string         { return k.prefix() + "history" }

// Item leases of a shared job (ItemLeaser): one lock per (view, item)
// under the job's name, one fencing counter for all of them, and the set of
// held item locks with their expiry, which an exclusive run of the job's
// lock waits to drain.
func (k keys) itemLock(job, view, item string) string {
	return k.prefix() + "lock:" + job + "/" + view + "/" + item
}
func (k keys) itemFence(job string) string { return k.prefix() + "fence:" + job + "/items" }
func (k keys) held(job string) string      { return k.prefix() + "held:" + job }
func (k keys) itemHistory() string         { return k.prefix() + "items" }

// Item leases (ItemLeaser.Try). KEYS: the item lock, the item fence, the
// job's exclusive lock, the held set. An item is refused while an
// exclusive run of the job's lock (backfill, repair) holds it; a taken
// item is entered in the held set with its expiry (Redis' clock), so that
// run can wait for the items in flight when it started.
var itemAcquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 'exclusive'} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'busy'} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]), KEYS[1])
return {token, 'ok'}
`)

var itemRenewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]), KEYS[1])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

var itemReleaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], KEYS[1])
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// heldScript drops the expired entries of a held set (their holders died)
// and returns how many items are still held.
var heldScript = redis.NewScript(`
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t[1] * 1000 + math.floor(t[2] / 1000))
return redis.call('ZCARD', KEYS[1])
`)

// Lease is a held job lock or item lock. It renews itself every third of
// its duration until Release; when a renewal finds the lock gone or
// someone else's, or the lease runs out while Redis is unreachable, Lost
// is closed.
type Lease struct {
	rdb   redis.UniversalClient
	key   string
	value string
	token int64
	ttl   time.Duration
	// extra are keys the renew and release scripts take after key (an
	// item lease's held set); renewS and releaseS default to the job
	// lock's scripts.
	extra            []string
	renewS, releaseS *redis.Script

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// acquire takes a lock for one slot of a job (slot zero: a manual run,
// which does not consume a slot). Jobs sharing a lock keep their own slots.
func acquire(ctx context.Context, rdb redis.UniversalClient, k keys, lock, job, runner string, ttl time.Duration, slot time.Time) (*Lease, error) {
	slotArg := ""
	if !slot.IsZero() {
		slotArg = strconv.FormatInt(slot.UnixMilli(), 10)
	}
	res, err := acquireScript.Run(ctx, rdb, []string{k.lock(lock), k.fence(lock), k.slot(job)},
		runner, ttl.Milliseconds(), slotArg).Slice()
	if err != nil {
		return nil, fmt.Errorf("jobs: acquire %s: %w", job, err)
	}
	token, _ := res[0].(int64)
	if token == 0 {
		reason, _ := res[1].(string)
		return nil, &errNotAcquired{reason: reason}
	}
	return startLease(rdb, k.lock(lock), runner, token, ttl, nil, renewScript, releaseScript), nil
}

// startLease makes the Lease of a lock just taken and starts its renewal,
// which Release stops.
func startLease(rdb redis.UniversalClient, key, runner string, token int64, ttl time.Duration, extra []string, renewS, releaseS *redis.Script) *Lease {
	l := &Lease{rdb: rdb, key: key, value: runner + ":" + strconv.FormatInt(token, 10), token: token, ttl: ttl,
		extra: extra, renewS: renewS, releaseS: releaseS,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l
}

// Token is the fencing token of this lease: larger than every earlier one.
func (l *Lease) Token() int64 { return l.token }

// Lost is closed when the lease is lost.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Check verifies, against Redis, that the lease is still held: jobs call it
// before each commit point (a state write, a boundary move) so a runner
// that lost its lease does not overwrite a newer runner's work.
func (l *Lease) Check(ctx context.Context) error {
	select {
	case <-l.lost:
		return ErrLeaseLost
	default:
	}
	v, err := l.rdb.Get(ctx, l.key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("jobs: check lease: %w", err)
	}
	if v != l.value {
		l.markLost()
		return ErrLeaseLost
	}
	return nil
}

func (l *Lease) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	deadline := time.Now().Add(l.ttl)
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		n, err := l.renewS.Run(ctx, l.rdb, append([]string{l.key}, l.extra...), l.value, l.ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err == nil && n == 1:
			deadline = time.Now().Add(l.ttl)
		case err == nil:
			l.markLost() // expired and maybe taken by another runner
			return
		case time.Now().After(deadline):
			l.markLost() // Redis unreachable for a whole lease
			return
		}
	}
}

// Release stops renewal and frees the lock if this lease still holds it.
func (l *Lease) Release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	if err := l.releaseS.Run(ctx, l.rdb, append([]string{l.key}, l.extra...), l.value).Err(); err != nil {
		return fmt.Errorf("jobs: release %s: %w", l.key, err)
	}
	return nil
}
