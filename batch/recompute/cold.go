package batch

// Entry points for the serving layer's cold fallback and boundary reads:
// kept in their own file so the serving layer depends on a small, stable
// surface rather than on the recompute internals.

import (
	"context"
	"fmt"
	"time"

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// ComputeHourRows computes one hour of a view straight from the raw lake,
// exactly as recompute would (overlapping offsets and duplicate ids
// dropped), without writing anything. The serving layer uses it to fill a
// hot range Redis no longer holds (DESIGN §2, cold fallback). Rows are
// sorted by t then dimensions.
func ComputeHourRows(ctx context.Context, store lake.Store, v *schemas.View, hour time.Time) ([]ViewRow, error) {
	hour = hour.UTC().Truncate(time.Hour)
	plan, err := PlanHour(ctx, store, v.Schema.Name, hour)
	if err != nil {
		return nil, err
	}
	if len(plan) == 0 {
		return nil, nil
	}
	vh, _, err := computeHour(ctx, store, v, hour, plan)
	if err != nil {
		return nil, fmt.Errorf("batch: cold hour %s view=%s: %w", HourKey(hour), v.Name, err)
	}
	if vh.len() == 0 {
		return nil, nil
	}
	// Round-trip through the view file encoding: the one place that turns
	// an aggregated hour into ViewRows, so cold rows equal batch rows.
	b, err := encodeViewFile(v, vh, 0)
	if err != nil {
		return nil, fmt.Errorf("batch: cold hour %s view=%s: %w", HourKey(hour), v.Name, err)
	}
	rows, _, err := decodeViewFile(ctx, v, b)
	if err != nil {
		return nil, fmt.Errorf("batch: cold hour %s view=%s: %w", HourKey(hour), v.Name, err)
	}
	return rows, nil
}

// StateAtLeast returns the view's state, read again from the lake (not the
// cache) when the cached boundary is before b. The serving layer reads B
// from Redis, which recompute writes after _state.json; a state cached a
// moment earlier would cut batch rows short of that B.
func (r *ViewReader) StateAtLeast(ctx context.Context, view string, b time.Time) (*State, error) {
	st, err := r.State(ctx, view)
	if err != nil || !st.Boundary.Before(b) {
		return st, err
	}
	v, err, _ := r.loads.Do("state!:"+view, func() (any, error) {
		return ReadState(ctx, r.cfg.Store, view)
	})
	if err != nil {
		return nil, err
	}
	fresh := v.(*State)
	r.mu.Lock()
	if c, ok := r.states[view]; !ok || !fresh.Boundary.Before(c.st.Boundary) {
		r.states[view] = cachedState{st: fresh, at: r.cfg.Now()}
	}
	r.mu.Unlock()
	return fresh, nil
}
