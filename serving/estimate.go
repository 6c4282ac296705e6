package serving

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// estimateRows estimates how many rows q's answer has, before computing
// it: its steps, times — when it groups by a dimension its where does not
// fix — the dimension combinations the view holds per bucket (its batch
// hours' rows at the stored grain over their buckets, the largest of
// them). ok is false when nothing is known yet (no batch hour): the exact
// count after computing still applies then.
func (a *API) estimateRows(ctx context.Context, q *query) (rows, steps, groups int64, ok bool) {
	steps = int64(q.to.Sub(q.from) / q.step)
	if !slices.ContainsFunc(q.groupBy, func(d string) bool { _, fixed := q.where[d]; return !fixed }) {
		return steps, steps, 1, true // totals, or every group_by fixed by where: one group per step
	}
	st, err := a.cfg.Batch.State(ctx, q.view.Name)
	if err != nil {
		return 0, steps, 0, false // the computation will meet the same failure
	}
	buckets := int64(time.Hour / q.view.Granularity)
	for _, hs := range st.Hours {
		groups = max(groups, (hs.Rows+buckets-1)/buckets)
	}
	if groups == 0 {
		return 0, steps, 0, false
	}
	if steps > (1<<62)/groups {
		return 1 << 62, steps, groups, true
	}
	return steps * groups, steps, groups, true
}

// looseFactor is how far past http.max_rows a loose estimate must reach
// before a query is refused without computing it. The estimate counts
// every dimension combination the view holds per bucket; a query grouping
// by fewer dimensions, or fixing one with where, has fewer groups than
// that by a factor nothing stored tells (a dashboard's "by country for
// tenant X" would otherwise be refused for the view's tenant × country
// combinations). Such a query is computed when its estimate is within
// this factor, and the exact row count after computing still holds it to
// http.max_rows, so the work a refused query can cause stays bounded.
const looseFactor = 8

// refuseTooLarge is the 413 for an answer estimated over http.max_rows,
// before anything is computed.
func (a *API) refuseTooLarge(ctx context.Context, q *query) *apiError {
	rows, steps, groups, ok := a.estimateRows(ctx, q)
	limit := int64(a.cfg.MaxRows)
	if !tightEstimate(q) {
		limit *= looseFactor
	}
	if !ok || rows <= limit {
		return nil
	}
	return &apiError{Code: http.StatusRequestEntityTooLarge, Param: "group_by",
		Msg: fmt.Sprintf("the answer would have about %d rows (%d steps of %s × about %d groups per step), more than http.max_rows=%d: narrow the range, raise step, group by fewer dimensions or fix one with where",
			rows, steps, formatStep(q.step), groups, a.cfg.MaxRows)}
}

// tightEstimate says estimateRows' groups per step are the query's own:
// it groups by every dimension of the view and its where fixes none.
func tightEstimate(q *query) bool {
	return len(q.where) == 0 && len(q.groupBy) == len(q.view.Dimensions)
}
