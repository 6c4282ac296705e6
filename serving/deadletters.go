package serving

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/lambdalake/lambdalake/batch/raw"
)

// DeadLetterCounter summarises the lake's dead letters: records the
// compactor did not store because they did not decode or admission refused
// their event time (raw.DeadLetterSummary).
type DeadLetterCounter interface {
	Count(ctx context.Context, schemas []string) ([]raw.DeadLetterCount, error)
}

var _ DeadLetterCounter = (*raw.DeadLetterSummary)(nil)

// deadLetterTotal is one schema's dead letters for one reason over every
// hour the lake keeps.
type deadLetterTotal struct {
	Schema  string `json:"schema"`
	Reason  string `json:"reason"`
	Count   int64  `json:"count"`
	Example string `json:"example"`
}

// deadLetters serves GET /v1/deadletters (admin): what the lake's
// dead letters hold, per schema and reason ("totals") and per ingest hour
// ("hours"), so an operator sees "12 events dropped as future" without
// reading Parquet. It takes no parameters (its route's rule refuses any).
func (a *API) deadLetters(w http.ResponseWriter, r *http.Request) {
	if a.cfg.DeadLetters == nil {
		writeError(w, &apiError{Code: http.StatusServiceUnavailable, Msg: "dead letters are not available: this server has no lake"})
		return
	}
	names := make([]string, 0, len(a.cfg.Schemas))
	for _, s := range a.cfg.Schemas {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	hours, err := a.cfg.DeadLetters.Count(ctx, names)
	if err != nil {
		a.depFailed(w, r, fmt.Errorf("serving: dead letters: %w", err))
		return
	}
	if hours == nil {
		hours = []raw.DeadLetterCount{}
	}
	totals := []deadLetterTotal{}
	for _, h := range hours { // sorted by schema, hour, reason: the last example is the latest
		i := slices.IndexFunc(totals, func(t deadLetterTotal) bool { return t.Schema == h.Schema && t.Reason == h.Reason })
		if i < 0 {
			totals = append(totals, deadLetterTotal{Schema: h.Schema, Reason: h.Reason})
			i = len(totals) - 1
		}
		totals[i].Count += h.Count
		totals[i].Example = h.Example
	}
	slices.SortFunc(totals, func(x, y deadLetterTotal) int {
		return cmp.Or(cmp.Compare(x.Schema, y.Schema), cmp.Compare(x.Reason, y.Reason))
	})
	writeJSON(w, http.StatusOK, map[string]any{"totals": totals, "hours": hours})
}
