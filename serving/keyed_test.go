package serving

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// Keyed ingest (issue 15, part 1) on the real broker: every copy of an
// event, posted in different requests, in another order and another JSON
// spelling of its id, lands in one partition, keyed by the id; events of
// a schema without id stay unkeyed and spread over the partitions.
func TestEventsKeyedByID(t *testing.T) {
	st := newStack(t)
	const partitions = 4
	topic := testenv.Topic(t, st.brokers, partitions)
	s := testSchema(t, topic)
	noID, err := schemas.NewSchema("clicks", testenv.Topic(t, st.brokers, partitions), s.Time, "", s.Fields)
	if err != nil {
		t.Fatal(err)
	}
	v := testView(uniqueView("keyed"), s)
	hs := newStackAPI(t, st, []*schemas.View{v, testView(uniqueView("unkeyed"), noID)}, nil)

	now := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	line := func(id string, copy int) string {
		return fmt.Sprintf(`{"order_id":"%s","ts":"%s","tenant":"t%d","country":"de","user_id":"u1","amount":1.5,"qty":%d}`, id, now, copy, copy)
	}
	const ids, copies = 200, 3
	rng := rand.New(rand.NewPCG(1, 2))
	for c := range copies {
		var lines []string
		for i := range ids {
			id := fmt.Sprintf("o-%d", i)
			if c == 1 && i%2 == 0 {
				d := fmt.Sprint(i)
				id = fmt.Sprintf(`o-\u%04x%s`, d[0], d[1:]) // the first digit escaped
			}
			lines = append(lines, line(id, c))
		}
		rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
		post(t, hs.URL, s.Name, strings.Join(lines, "\n"), ids)
	}
	var clickLines []string
	for i := range 2 * partitions {
		clickLines = append(clickLines, line(fmt.Sprintf("c-%d", i), 0))
	}
	post(t, hs.URL, noID.Name, strings.Join(clickLines, "\n"), 2*partitions)

	byID := map[string][]int{}
	dec := schemas.NewDecoder(s)
	var row schemas.Row
	for _, m := range readTopic(t, st.brokers, topic, partitions) {
		if err := dec.Decode(m.Value, &row); err != nil {
			t.Fatal(err)
		}
		id := row.Values[s.FieldIndex("order_id")].Str
		if string(m.Key) != id {
			t.Fatalf("record of %s at partition %d has key %q", id, m.Partition, m.Key)
		}
		byID[id] = append(byID[id], m.Partition)
	}
	used := map[int]bool{}
	for i := range ids {
		id := fmt.Sprintf("o-%d", i)
		ps := byID[id]
		if len(ps) != copies || slices.Min(ps) != slices.Max(ps) {
			t.Errorf("copies of %s in partitions %v, want %d copies in one partition", id, ps, copies)
		}
		if len(ps) > 0 {
			used[ps[0]] = true
		}
	}
	if len(byID) != ids || len(used) != partitions {
		t.Errorf("%d ids over partitions %v, want %d ids over all %d", len(byID), used, ids, partitions)
	}

	clicks := readTopic(t, st.brokers, noID.Topic, partitions)
	spread := map[int]int{}
	for _, m := range clicks {
		if m.Key != nil {
			t.Errorf("an event of a schema without id has key %q", m.Key)
		}
		spread[m.Partition]++
	}
	if len(clicks) != 2*partitions || len(spread) != partitions {
		t.Errorf("unkeyed events: %d over partitions %v, want %d spread over all %d", len(clicks), spread, 2*partitions, partitions)
	}
}

func post(t *testing.T, base, schema, body string, wantAccepted int) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/events?schema="+schema, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans eventsAnswer
	if err := decodeJSON(resp, &ans); err != nil || resp.StatusCode != 200 || ans.Accepted != wantAccepted {
		t.Fatalf("post: %d %v %+v", resp.StatusCode, err, ans)
	}
}

// readTopic reads every record of a topic's partitions up to their end.
func readTopic(t *testing.T, brokers []string, topic string, partitions int) []kafka.Message {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatal(po.Error)
		}
		if po.LastOffset == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: po.Partition, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("read partition %d: %v", po.Partition, err)
			}
			out = append(out, m)
			if m.Offset == po.LastOffset-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}
