package raw

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/lake"
)

// writeDead stores dead letters of one partition as the compactor does: a
// file per ingest hour named with the offsets it holds.
func writeDead(t *testing.T, store lake.Store, schema string, hour time.Time, recs ...DeadLetter) {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[DeadLetter](&buf)
	if _, err := w.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	key := lake.DeadletterKey(schema, hour, recs[0].Topic, recs[0].Partition, recs[0].Offset, recs[len(recs)-1].Offset)
	if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func dl(p int32, off int64, reason string) DeadLetter {
	return DeadLetter{Topic: "orders", Partition: p, Offset: off, Reason: reason, Error: fmt.Sprintf("%s at %d", reason, off), Raw: []byte("{}")}
}

// A file written before dead letters had a reason reads as malformed, the
// only reason there was then.
func TestReadDeadLettersWithoutReasonColumn(t *testing.T) {
	store := dirStore(t)
	type oldDeadLetter struct { // the layout before reasons
		Topic      string    `parquet:"topic,zstd"`
		Partition  int32     `parquet:"partition,zstd"`
		Offset     int64     `parquet:"offset,zstd"`
		Error      string    `parquet:"error,zstd"`
		Raw        []byte    `parquet:"raw,zstd"`
		IngestedAt time.Time `parquet:"ingested_at,timestamp(microsecond),zstd"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[oldDeadLetter](&buf)
	if _, err := w.Write([]oldDeadLetter{{Topic: "orders", Offset: 7, Error: "bad json", Raw: []byte("{")}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := lake.PutBytes(context.Background(), store, lake.DeadletterKey("orders", hour, "orders", 0, 7, 7), buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDeadLetters(context.Background(), store, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != ReasonMalformed || got[0].Error != "bad json" || got[0].Offset != 7 {
		t.Errorf("old dead letters read as %+v, want one malformed at offset 7", got)
	}
	counts, err := NewDeadLetterSummary(store).Count(context.Background(), []string{"orders"})
	if err != nil || len(counts) != 1 || counts[0].Reason != ReasonMalformed || counts[0].Count != 1 {
		t.Errorf("summary of old dead letters = %+v (%v)", counts, err)
	}
}

// The summary counts by schema, ingest hour and reason; a record a crash
// stored twice (overlapping files) counts once; files added or removed
// later are seen by the next call.
func TestDeadLetterSummary(t *testing.T) {
	ctx := context.Background()
	h0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	h1 := h0.Add(time.Hour)
	type key struct {
		schema, reason string
		hour           time.Time
	}
	tests := []struct {
		name  string
		files func(t *testing.T, s lake.Store)
		want  map[key]int64
	}{
		{"reasons and hours apart", func(t *testing.T, s lake.Store) {
			writeDead(t, s, "orders", h0, dl(0, 1, ReasonFuture), dl(0, 2, ReasonMalformed), dl(0, 5, ReasonFuture))
			writeDead(t, s, "orders", h1, dl(1, 3, ReasonExpired))
			writeDead(t, s, "pageviews", h0, dl(0, 9, ReasonMalformed))
		}, map[key]int64{{"orders", ReasonFuture, h0}: 2, {"orders", ReasonMalformed, h0}: 1,
			{"orders", ReasonExpired, h1}: 1, {"pageviews", ReasonMalformed, h0}: 1}},
		{"a crash re-read overlaps the tail", func(t *testing.T, s lake.Store) {
			writeDead(t, s, "orders", h0, dl(0, 1, ReasonFuture), dl(0, 4, ReasonFuture))
			writeDead(t, s, "orders", h0, dl(0, 4, ReasonFuture), dl(0, 8, ReasonMalformed))
		}, map[key]int64{{"orders", ReasonFuture, h0}: 2, {"orders", ReasonMalformed, h0}: 1}},
		{"a file wholly inside an earlier one", func(t *testing.T, s lake.Store) {
			writeDead(t, s, "orders", h0, dl(0, 1, ReasonFuture), dl(0, 9, ReasonFuture))
			writeDead(t, s, "orders", h0, dl(0, 9, ReasonFuture))
		}, map[key]int64{{"orders", ReasonFuture, h0}: 2}},
		{"partitions do not overlap each other", func(t *testing.T, s lake.Store) {
			writeDead(t, s, "orders", h0, dl(0, 1, ReasonFuture))
			writeDead(t, s, "orders", h0, dl(1, 1, ReasonFuture))
		}, map[key]int64{{"orders", ReasonFuture, h0}: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := dirStore(t)
			tc.files(t, store)
			sum := NewDeadLetterSummary(store)
			for round := range 2 { // the second from what the first kept
				counts, err := sum.Count(ctx, []string{"orders", "pageviews"})
				if err != nil {
					t.Fatal(err)
				}
				got := map[key]int64{}
				for _, c := range counts {
					got[key{c.Schema, c.Reason, c.Hour}] = c.Count
					if c.Example == "" {
						t.Errorf("%+v has no example", c)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("round %d: counts %v, want %v", round, got, tc.want)
				}
			}
		})
	}

	t.Run("new and removed files", func(t *testing.T) {
		store := dirStore(t)
		sum := NewDeadLetterSummary(store)
		writeDead(t, store, "orders", h0, dl(0, 1, ReasonFuture))
		total := func() (n int64) {
			counts, err := sum.Count(ctx, []string{"orders"})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range counts {
				n += c.Count
			}
			return n
		}
		if n := total(); n != 1 {
			t.Fatalf("%d dead letters, want 1", n)
		}
		writeDead(t, store, "orders", h1, dl(0, 2, ReasonFuture), dl(0, 3, ReasonExpired))
		if n := total(); n != 3 {
			t.Fatalf("after a new file: %d, want 3", n)
		}
		objs, _ := store.List(ctx, lake.DeadletterPrefix("orders"))
		if err := store.Delete(ctx, objs[0].Key); err != nil {
			t.Fatal(err)
		}
		if n := total(); n != 2 {
			t.Fatalf("after retention removed a file: %d, want 2", n)
		}
		if len(sum.files) != 1 {
			t.Errorf("the summary keeps %d files' counts, want the 1 left", len(sum.files))
		}
	})
}

func dirStore(t *testing.T) lake.Store {
	t.Helper()
	s, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
