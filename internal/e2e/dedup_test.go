package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// De-duplication in the speed layer under kills (issue 15): `lambdalake
// speed` processes with schemas.orders.dedup_window on a six-partition
// topic fed with keyed orders of the last 50 minutes, 2% duplicates; a
// second process joins (a rebalance), one is killed with SIGKILL while it
// holds records it read and Redis has not applied, and a third replaces
// it. Every partition is (re)assigned several times, and copies straddle
// those points (their original applied before, the copy after). The HTTP
// answer — the speed layer's alone, no batch side — must equal the
// de-duplicated reference from Kafka (same id and event hour: the first
// copy counts) cell by cell; uniq within HyperLogLog's error.
func TestSpeedDedupUnderKills(t *testing.T) {
	var cluster testenv.RedisSetup
	for _, rs := range testenv.RedisSetups(t) {
		if rs.Name == "cluster" {
			cluster = rs
		}
	}
	so := newScaleOutWith(t, cluster, func(text string) string {
		return strings.Replace(text, "    id: order_id\n", "    id: order_id\n    dedup_window: 2h\n", 1)
	})
	defer so.dumpLogsOnFailure()
	if so.s.DedupWindow != 2*time.Hour {
		t.Fatalf("dedup_window = %v", so.s.DedupWindow)
	}
	so.start("speed")
	so.start("serve")
	now := time.Now().UTC()
	from := now.Add(-50 * time.Minute)
	stop := so.produce(gen.Config{From: from, To: now, Count: 60_000, OutOfOrder: 0.1, MaxDelay: 5 * time.Minute, Seed: 51}, 3000)
	time.Sleep(3 * time.Second)
	second := so.start("speed") // a rebalance onto a second worker
	so.waitFor("the second worker holding partitions", time.Minute, 200*time.Millisecond, func() (bool, string) {
		return strings.Contains(second.Log(), "partition assigned"), "no partition assigned yet"
	})
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

	ref, copies := dedupReference(t, so.s, so.v, records)
	// The points where a process took a partition up: its first offset
	// applied, from the processes' logs.
	restarts := map[int][]int64{}
	re := regexp.MustCompile(`partition assigned.*partition=(\d+) offset=(\d+)`)
	for _, r := range so.procs["speed"] {
		for _, m := range re.FindAllStringSubmatch(r.Log(), -1) {
			p, _ := strconv.Atoi(m[1])
			off, _ := strconv.ParseInt(m[2], 10, 64)
			if off > 0 {
				restarts[p] = append(restarts[p], off)
			}
		}
	}
	straddling := 0
	for _, c := range copies {
		for _, at := range restarts[c.partition] {
			if c.original < at && at <= c.offset {
				straddling++
				break
			}
		}
	}
	if straddling == 0 {
		t.Fatalf("no copy straddles a (re)assignment (%d copies, (re)assigned at %v): the test proves nothing", len(copies), restarts)
	}

	lo, hi := from.Add(-10*time.Minute).Truncate(time.Hour), now.Add(time.Hour).Truncate(time.Hour)
	ans := query(t, so.httpAddr, so.v.Name, lo, hi)
	if ans.Boundary != nil || len(ans.Gaps) != 0 {
		t.Errorf("boundary %v, gaps %v with no batch side", ans.Boundary, ans.Gaps)
	}
	got := map[key]bool{}
	for _, r := range ans.Rows {
		tm, _ := time.Parse(time.RFC3339, r["t"].(string))
		k := key{tm.UnixMicro(), r["tenant"].(string), r["country"].(string)}
		got[k] = true
		if want := ref[k]; want == nil {
			t.Errorf("row %v is in no reference", k)
		} else {
			checkSpeedRow(t, k, r, want)
		}
	}
	for k := range ref {
		if !got[k] {
			t.Errorf("cell %v missing from the answer", k)
		}
	}
	t.Logf("%d records, %d copies (%d straddling a (re)assignment): %d cells equal the de-duplicated reference",
		len(records), len(copies), straddling, len(ans.Rows))
	for _, r := range so.live() {
		if err := r.Stop(30 * time.Second); err != nil {
			t.Errorf("graceful stop: %v\n%s", err, r.Tail(20))
		}
	}
}

// dupCopy is a record skipped as a copy, and where its original is.
type dupCopy struct {
	partition        int
	original, offset int64
}

// dedupReference aggregates the decodable records, each event once: a
// record whose id and UTC event hour an earlier record of its partition
// had is a copy (the records are keyed by id, so copies share a
// partition). Computed here from the text, independently of schemas'.
func dedupReference(t *testing.T, s *schemas.Schema, v *schemas.View, records []kafka.Message) (map[key]*figures, []dupCopy) {
	t.Helper()
	dec := schemas.NewDecoder(s)
	ref := map[key]*figures{}
	type first struct {
		partition int
		offset    int64
	}
	seen := map[string]first{}
	var copies []dupCopy
	ti, ii, tn, co, us, am := s.TimeIndex(), s.FieldIndex(s.ID), s.FieldIndex("tenant"), s.FieldIndex("country"), s.FieldIndex("user_id"), s.FieldIndex("amount")
	var row schemas.Row
	for _, m := range records {
		if dec.Decode(m.Value, &row) != nil {
			continue
		}
		id := row.Values[ii].Str + "|" + time.UnixMicro(row.Values[ti].Int).UTC().Truncate(time.Hour).Format(time.RFC3339)
		if f, dup := seen[id]; dup {
			if f.partition != m.Partition {
				t.Fatalf("copies of %s in partitions %d and %d: the producer did not key by id", id, f.partition, m.Partition)
			}
			copies = append(copies, dupCopy{m.Partition, f.offset, m.Offset})
			continue
		}
		seen[id] = first{m.Partition, m.Offset}
		k := key{v.Bucket(row.Values[ti].Int), row.Values[tn].Str, row.Values[co].Str}
		if ref[k] == nil {
			ref[k] = &figures{}
		}
		ref[k].add(row.Values[am].Float, row.Values[us].Str)
	}
	return ref, copies
}
