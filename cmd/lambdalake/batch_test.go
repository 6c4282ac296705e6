package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

func TestParseHourFlag(t *testing.T) {
	want := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"2026-11-27T09:00:00Z", want, true},
		{"2026-11-27T10:00:00+01:00", want, true},
		{"2026-11-27T09", want, true},
		{"2026-11-27", want.Add(-9 * time.Hour), true},
		{"1795770000000", time.UnixMilli(1795770000000).UTC(), true},
		{"yesterday", time.Time{}, false},
	}
	for _, tc := range tests {
		got, err := parseHourFlag("from", tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseHourFlag(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, errUsage) {
			t.Errorf("parseHourFlag(%q): error %v is not a usage error", tc.in, err)
		}
	}
}

func TestProgressPrinter(t *testing.T) {
	var tty bytes.Buffer
	p := newProgressPrinter(&tty, true)
	p.report(recompute.Progress{View: "revenue", Done: 3, Total: 24, Rows: 3000, Elapsed: time.Second})
	p.end()
	if got := tty.String(); !strings.HasPrefix(got, "\rrevenue: 3/24 hours  3000 rows  3000 rows/s") || !strings.HasSuffix(got, "\n") {
		t.Errorf("terminal progress = %q", got)
	}
	var plain bytes.Buffer
	p = newProgressPrinter(&plain, false)
	p.report(recompute.Progress{View: "revenue", Done: 1, Total: 2, Rows: 10, Elapsed: time.Second})
	p.end()
	if plain.Len() != 0 {
		t.Errorf("non-terminal progress wrote %q; it should log instead", plain.String())
	}
}

func TestBatchUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"recompute", "--from", "x"}, {"backfill", "extra"},
		{"recompute", "--from", "2026-11-27T10", "--to", "2026-11-27T09"}} {
		if err := runBatch(context.Background(), args); !errors.Is(err, errUsage) {
			t.Errorf("batch %v: err = %v, want a usage error", args, err)
		}
	}
}

// TestBatchRecomputeCommand runs `batch recompute` then `batch backfill`
// on a folder lake and checks the view files, the state and the boundary
// mirrored in the real Redis.
func TestBatchRecomputeCommand(t *testing.T) {
	redisAddr := testenv.RedisAddr(t)
	dir := t.TempDir()
	view := strings.ReplaceAll(testenv.Name("rev"), "-", "_")
	path := testenv.WriteConfig(t, fmt.Sprintf(`
redis: {addrs: [%s]}
lake: {url: "file://%s"}
schemas:
  orders:
    topic: orders
    time: ts
    id: order_id
    fields: {order_id: string, ts: timestamp, tenant: string, amount: float64}
views:
  %s:
    schema: orders
    granularity: 1m
    dimensions: [tenant]
    metrics:
      orders: {agg: count}
      revenue: {agg: sum, field: amount}
`, redisAddr, dir, view))
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	t.Cleanup(func() { rdb.Del(context.Background(), boundary.Key(view)) })

	ctx := context.Background()
	store, err := lake.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.NewSchema("orders", "orders", "ts", "order_id", []schemas.Field{
		{Name: "order_id", Type: schemas.String}, {Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String}, {Name: "amount", Type: schemas.Float64}})
	if err != nil {
		t.Fatal(err)
	}
	h0 := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	for h := 0; h < 2; h++ {
		layout := s.RawLayout()
		var rows []parquet.Row
		for i := 0; i < 10; i++ {
			ts := h0.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Minute)
			r := schemas.Row{Values: []schemas.Value{{Str: fmt.Sprintf("o-%d-%d", h, i)}, {Int: ts.UnixMicro()}, {Str: "acme"}, {Float: 1.25}}}
			rows = append(rows, layout.AppendRow(nil, &r, 0, int64(h*10+i), ts.UnixMicro()))
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema)
		if _, err := w.WriteRows(rows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		key := lake.RawFile{Schema: "orders", Hour: h0.Add(time.Duration(h) * time.Hour), Topic: "orders", First: int64(h * 10), Last: int64(h*10 + 9)}.Key()
		if err := lake.PutBytes(ctx, store, key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	cp, _ := json.Marshal(raw.Checkpoint{NextOffset: 20, Watermark: h0.Add(2*time.Hour + time.Minute)})
	if err := lake.PutBytes(ctx, store, lake.CheckpointKey("lambdalake-compact", "orders", 0), cp); err != nil {
		t.Fatal(err)
	}

	if err := runBatch(ctx, []string{"recompute", "--config", path, "--view", view}); err != nil {
		t.Fatal(err)
	}
	st, err := views.ReadState(ctx, store, view)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Hours) != 2 || !st.Boundary.Equal(h0.Add(2*time.Hour)) {
		t.Fatalf("state after recompute: %d hours, B=%v; want 2 hours, B=%v", len(st.Hours), st.Boundary, h0.Add(2*time.Hour))
	}
	b, ok, err := boundary.Read(ctx, rdb, view)
	if err != nil || !ok || !b.Equal(st.Boundary) {
		t.Errorf("Redis boundary %v %v %v, want %v", b, ok, err, st.Boundary)
	}

	if err := runBatch(ctx, []string{"backfill", "--config", path, "--view", view, "--from", "2026-11-27T08", "--mirror=false"}); err != nil {
		t.Fatal(err)
	}
	after, err := views.ReadState(ctx, store, view)
	if err != nil {
		t.Fatal(err)
	}
	if v0, v1 := after.Hours[views.HourKey(h0)].Version, after.Hours[views.HourKey(h0.Add(time.Hour))].Version; v0 != 1 || v1 != 2 {
		t.Errorf("versions after backfill --from 08h: %d %d, want 1 2", v0, v1)
	}
}
