package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Outcomes of a run.
const (
	OutcomeOK        = "ok"
	OutcomeFailed    = "failed"
	OutcomeLostLease = "lost_lease" // the lease ran out, or a conditional write found another runner had written
	OutcomeStopped   = "stopped"    // shutdown at a safe point
)

// Record is one finished run.
type Record struct {
	Job     string    `json:"job"`
	Runner  string    `json:"runner"`
	Token   int64     `json:"token"`
	Slot    time.Time `json:"slot,omitzero"` // zero for a manual run
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome string    `json:"outcome"`
	Items   int64     `json:"items"`
	Error   string    `json:"error,omitempty"`
}

// DefaultHistoryCap is how many run records are kept.
const DefaultHistoryCap = 1000

func record(ctx context.Context, rdb redis.UniversalClient, k keys, capacity int, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("jobs: encode record: %w", err)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, k.history(), b)
		p.LTrim(ctx, k.history(), 0, int64(capacity-1))
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: record run of %s: %w", r.Job, err)
	}
	return nil
}

// History returns up to n recent runs, newest first. namespace is the
// runners' Config.Namespace ("" for the default).
func History(ctx context.Context, rdb redis.UniversalClient, namespace string, n int) ([]Record, error) {
	k := keys{ns: namespaceOr(namespace)}
	raw, err := rdb.LRange(ctx, k.history(), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: read history: %w", err)
	}
	out := make([]Record, 0, len(raw))
	for _, s := range raw {
		var r Record
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return nil, fmt.Errorf("jobs: history record %q: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func namespaceOr(ns string) string {
	if ns == "" {
		return "jobs"
	}
	return ns
}
