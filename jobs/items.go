package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ItemLeaser hands out the item leases of a shared job's run (Job.Shared):
// one lease per (view, item) — for recompute an item is an hour — so the
// runners sharing a run each take items nobody holds, and no item is
// worked on by two runners at once. Item leases are fenced as job leases
// are: each carries a fencing token above every earlier item lease's of the
// job, which the work records beside what it writes (recompute: the hour's
// entry in _state.json) so a runner that lost an item cannot overwrite the
// work of the one that took it over.
//
// While an exclusive run holds the job's lock (backfill and repair share
// recompute's), Try refuses every item, and that run waits for the items in
// flight when it took the lock (Runner.run: drain).
type ItemLeaser struct {
	rdb     redis.UniversalClient
	k       keys
	job     string
	runner  string
	ttl     time.Duration
	history int
}

// ItemLease is a held item lease of a shared run.
type ItemLease struct {
	*Lease
	leaser     *ItemLeaser
	view, item string
	start      time.Time
}

// Try takes the lease of (view, item) without waiting; ok is false if
// another runner holds it or an exclusive run holds the job's lock.
func (il *ItemLeaser) Try(ctx context.Context, view, item string) (*ItemLease, bool, error) {
	k := il.k
	lock := k.itemLock(il.job, view, item)
	res, err := itemAcquireScript.Run(ctx, il.rdb, []string{lock, k.itemFence(il.job), k.lock(il.job), k.held(il.job)},
		il.runner, il.ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("jobs: acquire %s of %s/%s: %w", il.job, view, item, err)
	}
	token, _ := res[0].(int64)
	if token == 0 {
		return nil, false, nil
	}
	l := startLease(il.rdb, lock, il.runner, token, il.ttl, []string{k.held(il.job)}, itemRenewScript, itemReleaseScript)
	return &ItemLease{Lease: l, leaser: il, view: view, item: item, start: time.Now().UTC()}, true, nil
}

// Done records the item's work when there was some (worked: the item was
// done by this lease; err: it failed) and releases the lease. The record's
// end is taken before the release, so records of one item by different
// leases never overlap unless the leases did.
func (l *ItemLease) Done(ctx context.Context, worked bool, workErr error) error {
	rec := ItemRecord{Job: l.leaser.job, View: l.view, Item: l.item, Runner: l.leaser.runner, Token: l.Token(),
		Start: l.start, End: time.Now().UTC(), Outcome: OutcomeOK}
	switch {
	case errors.Is(workErr, ErrLeaseLost):
		rec.Outcome = OutcomeLostLease
	case workErr != nil:
		rec.Outcome = OutcomeFailed
	}
	if workErr != nil {
		rec.Error = workErr.Error()
	}
	relErr := l.Release(ctx)
	if !worked && workErr == nil {
		return relErr
	}
	return errors.Join(relErr, recordItem(ctx, l.leaser.rdb, l.leaser.k, l.leaser.history, rec))
}

// ItemRecord is one item of a shared run worked on by one lease: for
// recompute, one hour of a view recomputed by one runner, from taking the
// hour's lease to releasing it.
type ItemRecord struct {
	Job     string    `json:"job"`
	View    string    `json:"view"`
	Item    string    `json:"item"`
	Runner  string    `json:"runner"`
	Token   int64     `json:"token"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
}

func recordItem(ctx context.Context, rdb redis.UniversalClient, k keys, capacity int, r ItemRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("jobs: encode item record: %w", err)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, k.itemHistory(), b)
		p.LTrim(ctx, k.itemHistory(), 0, int64(capacity-1))
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: record %s of %s/%s: %w", r.Job, r.View, r.Item, err)
	}
	return nil
}

// ItemHistory returns up to n recent item records of shared runs, newest
// first. namespace is the runners' Config.Namespace ("" for the default).
func ItemHistory(ctx context.Context, rdb redis.UniversalClient, namespace string, n int) ([]ItemRecord, error) {
	k := keys{ns: namespaceOr(namespace)}
	raw, err := rdb.LRange(ctx, k.itemHistory(), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: read item history: %w", err)
	}
	out := make([]ItemRecord, 0, len(raw))
	for _, s := range raw {
		var r ItemRecord
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return nil, fmt.Errorf("jobs: item record %q: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// HeldItems returns the item locks of a shared job held now and their
// holders ("runner:token"), by lock key.
func HeldItems(ctx context.Context, rdb redis.UniversalClient, namespace, job string) (map[string]string, error) {
	k := keys{ns: namespaceOr(namespace)}
	if _, err := heldScript.Run(ctx, rdb, []string{k.held(job)}).Int(); err != nil {
		return nil, fmt.Errorf("jobs: held items of %s: %w", job, err)
	}
	locks, err := rdb.ZRange(ctx, k.held(job), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: held items of %s: %w", job, err)
	}
	out := map[string]string{}
	for _, l := range locks {
		v, err := rdb.Get(ctx, l).Result()
		if errors.Is(err, redis.Nil) {
			continue // released or expired since
		}
		if err != nil {
			return nil, fmt.Errorf("jobs: held items of %s: %w", job, err)
		}
		out[l] = v
	}
	return out, nil
}

// drainPoll is how often an exclusive run checks for items still in flight.
const drainPoll = 100 * time.Millisecond

// drain waits until no item lease of the shared job is held (new ones are
// refused while the caller holds the job's exclusive lock), or the lease
// lost, or ctx ended.
func drain(ctx context.Context, rdb redis.UniversalClient, k keys, job string, lease *Lease) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		n, err := heldScript.Run(ctx, rdb, []string{k.held(job)}).Int()
		if err != nil {
			return fmt.Errorf("jobs: wait for %s items in flight: %w", job, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jobs: wait for %d %s items in flight: %w", n, job, ctx.Err())
		case <-lease.Lost():
			return ErrLeaseLost
		case <-t.C:
		}
	}
}
