package serving

import (
	"context"
	"encoding/json"
)

// JobRuns is where GET /v1/jobs reads the scheduled jobs' latest runs.
// `lambdalake serve` passes the jobs runners' history in Redis (see
// jobs.History); serving renders each run as the JSON object it is given,
// so the jobs package can grow its records without serving changing.
type JobRuns interface {
	// Latest returns up to n runs, newest first, each one JSON object.
	Latest(ctx context.Context, n int) ([]json.RawMessage, error)
	// Capacity is how many runs the history keeps: the largest ?limit=.
	Capacity() int
}
