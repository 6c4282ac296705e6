package recompute

import (
	"context"
	"fmt"
	"time"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// ComputeHourRows computes one hour of a view straight from the raw lake,
// exactly as recompute would (overlapping offsets and duplicate ids
// dropped), without writing anything. The serving layer uses it to fill a
// hot range Redis no longer holds (DESIGN §2, cold fallback). Rows are
// sorted by t then dimensions.
func ComputeHourRows(ctx context.Context, store lake.Store, v *schemas.View, hour time.Time) ([]views.Row, error) {
	hour = hour.UTC().Truncate(time.Hour)
	rows, err := computeHourRows(ctx, store, v, hour)
	if err != nil {
		return nil, fmt.Errorf("recompute: cold view %s hour %s: %w", v.Name, views.HourKey(hour), err)
	}
	return rows, nil
}

func computeHourRows(ctx context.Context, store lake.Store, v *schemas.View, hour time.Time) ([]views.Row, error) {
	plan, _, err := raw.PlanHour(ctx, store, v.Schema.Name, hour)
	if err != nil || len(plan) == 0 {
		return nil, err
	}
	vh, _, err := computeHour(ctx, store, v, hour, plan)
	if err != nil || vh.Len() == 0 {
		return nil, err
	}
	// Round-trip through the view file encoding: the one place that turns
	// an aggregated hour into rows, so cold rows equal batch rows.
	b, err := views.Encode(v, vh, 0)
	if err != nil {
		return nil, err
	}
	return views.Decode(ctx, v, b)
}
