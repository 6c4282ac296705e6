package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/lake"
)

// `lake ls deadletter/` lists the files, then says what they hold: records
// by schema, ingest hour and reason with an example, counted once.
func TestLakeListDeadLetters(t *testing.T) {
	ctx := context.Background()
	store, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)
	put := func(schema string, first, last int64, recs ...raw.DeadLetter) {
		var buf bytes.Buffer
		w := parquet.NewGenericWriter[raw.DeadLetter](&buf)
		if _, err := w.Write(recs); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := lake.PutBytes(ctx, store, lake.DeadletterKey(schema, h, schema, 0, first, last), buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	future := func(off int64) raw.DeadLetter {
		return raw.DeadLetter{Topic: "orders", Offset: off, Reason: raw.ReasonFuture,
			Error: "event time 9999-12-31T23:00:00Z is more than max_future (15m0s) ahead of the wall clock (2026-11-30T17:12:00Z)"}
	}
	put("orders", 1, 4, future(1), raw.DeadLetter{Topic: "orders", Offset: 2, Reason: raw.ReasonMalformed, Error: "bad\njson"}, future(4))
	put("orders", 4, 6, future(4), future(6)) // a crash re-read: offset 4 twice
	if err := lake.PutBytes(ctx, store, "raw/orders/x", []byte("x")); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := lakeList(ctx, &out, store, "deadletter/"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"SIZE MODIFIED KEY",
		"2 objects",
		"SCHEMA INGESTED (hour) REASON RECORDS EXAMPLE",
		"orders 2026-11-30T17:00:00Z future 3 event time 9999-12-31T23:00:00Z is more than max_future (15m0s) ahead",
		"orders 2026-11-30T17:00:00Z malformed 1 bad json",
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.Contains(l, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("output lacks %q:\n%s", w, text)
		}
	}
	// Another prefix lists objects only.
	out.Reset()
	if err := lakeList(ctx, &out, store, "raw/"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "dead letters") || !strings.Contains(out.String(), "raw/orders/x") {
		t.Errorf("lake ls raw/:\n%s", out.String())
	}
}
