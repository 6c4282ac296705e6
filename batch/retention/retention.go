// Package retention is the batch layer's retention job (DESIGN §2, jobs):
// it deletes the hour partitions of the raw lake (raw files, dirty markers,
// dead letters) and of the views that are older than their retention. It
// works on the lake layout alone; B comes from the caller. Raw hours and
// view hours at or after a view's B stay whatever their age: recompute has
// not finished with them.
//
// Before it deletes any raw data of an hour it seals the hour (raw.Seal,
// _sealed/{schema}.json): recompute never rebuilds a sealed hour from what
// is left, so a view hour outlives its raw data unchanged (views usually
// keep longer than raw files). Admission refuses events for such hours
// already (`expired`); the seal is what holds if one got through anyway.
package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Config says what the retention job may remove.
type Config struct {
	Store   lake.Store
	Schemas []*schemas.Schema // Retention applies to raw files, dead letters and dirty markers
	Views   []*schemas.View   // Retention applies to view files
	// Boundary returns a view's boundary B (ok=false: none yet). Retention
	// never removes an hour at or after B: batch has not finished with it.
	Boundary func(ctx context.Context, view string) (b time.Time, ok bool, err error)
	Now      time.Time
}

// Result counts what was removed.
type Result struct {
	Partitions int // hour partitions emptied
	Objects    int // objects deleted
}

// Apply deletes the hour partitions older than their retention
// (DESIGN §2, the retention job). An hour goes only when it ended before
// now − retention, so an open hour never goes; raw hours and view hours
// also stay while they are at or after the boundary of a view that reads
// them. Deletions are per object, so a crash leaves a partition partly
// removed, and the next run finishes it.
func Apply(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	bounds := map[string]time.Time{} // view → B; absent = no boundary yet
	for _, v := range cfg.Views {
		b, ok, err := cfg.Boundary(ctx, v.Name)
		if err != nil {
			return res, fmt.Errorf("retention: boundary of %s: %w", v.Name, err)
		}
		if ok {
			bounds[v.Name] = b
		}
	}
	for _, s := range cfg.Schemas {
		if s.Retention <= 0 {
			continue
		}
		cutoff := cfg.Now.Add(-s.Retention)
		rawLimit := cutoff
		for _, v := range cfg.Views {
			if v.Schema.Name != s.Name {
				continue
			}
			b, ok := bounds[v.Name]
			if !ok {
				rawLimit = time.Time{} // no boundary yet: batch may still need every hour
				break
			}
			if b.Before(rawLimit) {
				rawLimit = b
			}
		}
		if err := seal(ctx, cfg.Store, s.Name, rawLimit); err != nil {
			return res, err
		}
		for _, prefix := range []string{lake.RawPrefix(s.Name), lake.DirtyPrefix(s.Name)} {
			if err := removeBefore(ctx, cfg.Store, prefix, rawLimit, &res); err != nil {
				return res, err
			}
		}
		if err := removeBefore(ctx, cfg.Store, lake.DeadletterPrefix(s.Name), cutoff, &res); err != nil {
			return res, err
		}
	}
	for _, v := range cfg.Views {
		if v.Retention <= 0 {
			continue
		}
		limit := cfg.Now.Add(-v.Retention)
		b, ok := bounds[v.Name]
		if !ok {
			continue
		}
		if b.Before(limit) {
			limit = b
		}
		if err := removeBefore(ctx, cfg.Store, lake.ViewPrefix(v.Name)+"dt=", limit, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// seal records that every hour ending at or before limit is sealed, before
// any of them loses raw data. Only a seal that moves is written.
func seal(ctx context.Context, store lake.Store, schema string, limit time.Time) error {
	if limit.IsZero() {
		return nil
	}
	prev, etag, err := raw.ReadSeal(ctx, store, schema)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	// Hours ending at or before limit are exactly those before limit's hour.
	next := raw.Seal{Before: limit.UTC().Truncate(time.Hour)}
	if !next.Before.After(prev.Before) {
		return nil
	}
	if _, err := raw.WriteSeal(ctx, store, schema, next, prev, etag); err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	return nil
}

// removeBefore deletes every object under prefix in an hour partition that
// ended at or before limit (zero limit: nothing).
func removeBefore(ctx context.Context, store lake.Store, prefix string, limit time.Time, res *Result) error {
	if limit.IsZero() {
		return nil
	}
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	emptied := map[time.Time]bool{}
	for _, o := range objs {
		hour, ok := lake.PartitionHour(o.Key)
		if !ok || hour.Add(time.Hour).After(limit) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err // a safe point: every delete so far is complete
		}
		if err := store.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		res.Objects++
		emptied[hour] = true
	}
	res.Partitions += len(emptied)
	return nil
}
