package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
)

// The speed layer's crash scenario with several processes, over both Redis
// set-ups of the local stack (a table, testenv.RedisSetups): two `lambdalake
// speed` processes share a six-partition topic fed with the last 50
// minutes of orders at a steady rate; one is killed with SIGKILL while it
// holds records it read and Redis has not applied, and another is started.
// With no batch side (no B), the HTTP answer is the speed layer's alone
// and must equal the reference from Kafka cell by cell: counts and sums
// exactly, uniq within HyperLogLog's error.
func TestSpeedProcessesOnBothRedisSetups(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			so := newScaleOut(t, rs)
			defer so.dumpLogsOnFailure()
			so.start("speed")
			so.start("speed")
			so.start("serve")
			now := time.Now().UTC()
			from := now.Add(-50 * time.Minute)
			stop := so.produce(gen.Config{From: from, To: now, Count: 60_000, OutOfOrder: 0.1, MaxDelay: 5 * time.Minute, Seed: 41}, 3000)
			killed := so.killSpeedInFlight()
			so.start("speed")
			so.waitReplacementsWorking()
			sent := stop()
			t.Logf("killed %s; produced %s", killed, sent)

			records, ends := readTopicParts(t, so.brokers, so.s.Topic, scalePartitions)
			so.waitFor("speed layer caught up", 2*time.Minute, 500*time.Millisecond, func() (bool, string) {
				stored := so.speedOffsets()
				var behind []string
				for p, end := range ends {
					if stored[p] != end {
						behind = append(behind, fmt.Sprintf("p%d at %d of %d", p, stored[p], end))
					}
				}
				return len(behind) == 0, strings.Join(behind, "; ")
			})
			_, speedRef, _ := references(so.s, so.v, records)
			lo, hi := from.Add(-10*time.Minute).Truncate(time.Hour), now.Add(time.Hour).Truncate(time.Hour)
			ans := query(t, so.httpAddr, so.v.Name, lo, hi)
			if ans.Boundary != nil {
				t.Errorf("boundary %s with no batch side", *ans.Boundary)
			}
			if len(ans.Gaps) != 0 {
				t.Errorf("gaps: %v", ans.Gaps)
			}
			got := map[key]bool{}
			for _, r := range ans.Rows {
				tm, _ := time.Parse(time.RFC3339, r["t"].(string))
				k := key{tm.UnixMicro(), r["tenant"].(string), r["country"].(string)}
				got[k] = true
				if ref := speedRef[k]; ref == nil {
					t.Errorf("row %v is in no reference", k)
				} else {
					checkSpeedRow(t, k, r, ref)
				}
			}
			for k := range speedRef {
				if !got[k] {
					t.Errorf("cell %v missing from the answer", k)
				}
			}
			t.Logf("%d records, %d cells equal the reference", len(records), len(ans.Rows))
			for _, r := range so.live() {
				if err := r.Stop(30 * time.Second); err != nil {
					t.Errorf("graceful stop: %v\n%s", err, r.Tail(20))
				}
			}
		})
	}
}
