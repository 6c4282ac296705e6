package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/boundary"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// `lambdalake batch repair-boundary` repairs a view left as issue 13's
// reproduction 1 left it before admission existed (LocalStack S3 and the
// real Redis): four orders at 9999-12-31T23:00 in the raw lake, every
// checkpoint's watermark at 9999-12-31T22:55, B at 9999-12-31T22:00 in
// _state.json and in Redis, the current hour served as final. Recompute
// then refuses to go on (ErrBoundaryAhead); the repair brings B back to
// the wall clock's hour in both places, resets the hours that cannot be
// final, and leaves a consistent state that recompute carries on from.
func TestRepairBoundaryCommand(t *testing.T) {
	store, lakeURL := testenv.S3Lake(t)
	redisAddr := testenv.RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	view := strings.ReplaceAll(testenv.Name("rev"), "-", "_")
	t.Cleanup(func() { rdb.Del(context.Background(), boundary.Key(view)) })
	group := testenv.Name("compact")
	path := testenv.WriteConfig(t, fmt.Sprintf(`
redis: {addrs: [%s]}
lake:
  url: %q
  s3: {endpoint: %q, region: us-east-1, path_style: true, access_key_id: test, secret_access_key: test}
compact: {group: %s}
jobs: {namespace: %s, lease: 5s}
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
    lateness: 5m
    metrics:
      orders: {agg: count}
      revenue: {agg: sum, field: amount}
`, redisAddr, lakeURL, testenv.S3Endpoint(t), group, testenv.Name("jobs"), view))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.View(view)

	// The raw lake: three recent hours and the far-future one.
	now := time.Now().UTC()
	H := now.Truncate(time.Hour)
	far := time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)
	for i, h := range []time.Time{H.Add(-2 * time.Hour), H.Add(-time.Hour), H, far} {
		putOrders(t, store, v.Schema, h, int64(i*10), 4)
	}
	wrongWM := time.Date(9999, 12, 31, 22, 55, 0, 0, time.UTC)
	for p := range 4 {
		if _, err := raw.WriteCheckpoint(ctx, store, group, "orders", int32(p), raw.Checkpoint{NextOffset: 100, Watermark: wrongWM, MaxEvent: far}, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The state recompute wrote then: every hour closed by that watermark
	// computed and final, the current one included, B at 9999-12-31T22:00
	// (recompute run with a clock in 9999 gives exactly that), and the
	// mirror SET to it.
	wrongB := time.Date(9999, 12, 31, 22, 0, 0, 0, time.UTC)
	old, err := recompute.New(recompute.Config{Store: store, Group: group, Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return far.Add(30 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := old.Recompute(ctx, v, recompute.Options{}); err != nil || !res.Boundary.Equal(wrongB) {
		t.Fatalf("setting up the wrong state: B=%v %v", res.Boundary, err)
	}
	rdb.Set(ctx, boundary.Key(view), strconv.FormatInt(wrongB.UnixMicro(), 10), 0)
	if st, _ := views.ReadState(ctx, store, view); !st.Hours[views.HourKey(H)].Final {
		t.Fatalf("setup: the current hour is not final: %+v", st.Hours)
	}

	// Recompute sees the wrong B and says what to do.
	if err := runBatch(ctx, []string{"recompute", "--config", path, "--view", view}); !errors.Is(err, recompute.ErrBoundaryAhead) {
		t.Fatalf("batch recompute over a B in 9999: %v, want recompute.ErrBoundaryAhead", err)
	}

	if err := runBatch(ctx, []string{"repair-boundary", "--config", path, "--view", view}); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	st, err := views.ReadState(ctx, store, view)
	if err != nil {
		t.Fatal(err)
	}
	// B: the first hour not final under the wall clock, from the lake.
	lo, hi := now.Add(-v.Lateness).Truncate(time.Hour), after.Add(-v.Lateness).Truncate(time.Hour)
	if st.Boundary.Before(lo) || st.Boundary.After(hi) {
		t.Errorf("repaired B = %v, want the hour of the wall clock minus lateness (%v)", st.Boundary, hi)
	}
	if b, ok, err := boundary.Read(ctx, rdb, view); err != nil || !ok || !b.Equal(st.Boundary) {
		t.Errorf("Redis B = %v (ok=%v, %v), want the lake's %v", b, ok, err, st.Boundary)
	}
	// The state is consistent: nothing final that the wall clock has not
	// closed, nothing after it, a view file for exactly the hours with rows.
	files := map[string]bool{}
	objs, err := store.List(ctx, lake.ViewPrefix(view))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if h, ok := lake.PartitionHour(o.Key); ok {
			files[views.HourKey(h)] = true
		}
	}
	for k, hs := range st.Hours {
		h, _ := time.Parse(time.RFC3339, k)
		if hs.Final && h.Add(time.Hour).After(after.Add(-v.Lateness)) {
			t.Errorf("hour %s is final, the wall clock has not closed it", k)
		}
		if h.After(after) && hs.Rows > 0 {
			t.Errorf("hour %s after the wall clock has rows", k)
		}
		if (hs.Rows > 0) != files[k] {
			t.Errorf("hour %s: %d rows, view file %v", k, hs.Rows, files[k])
		}
		delete(files, k)
	}
	for k := range files {
		t.Errorf("view file of hour %s without a state entry", k)
	}
	for _, h := range []time.Time{H.Add(-2 * time.Hour)} {
		if hs, ok := st.Hour(h); !ok || !hs.Final || hs.Rows == 0 {
			t.Errorf("closed hour %v: %+v, want final with rows", h, hs)
		}
	}

	// Recompute carries on from the repaired state; B moves forward only.
	if err := runBatch(ctx, []string{"recompute", "--config", path, "--view", view}); err != nil {
		t.Fatalf("batch recompute after the repair: %v", err)
	}
	if again, _ := views.ReadState(ctx, store, view); again.Boundary.Before(st.Boundary) || again.Boundary.After(time.Now().Truncate(time.Hour)) {
		t.Errorf("B after the next recompute: %v (repaired %v)", again.Boundary, st.Boundary)
	}
	// A second repair finds nothing to repair.
	if err := runBatch(ctx, []string{"repair-boundary", "--config", path, "--view", view}); err != nil {
		t.Fatal(err)
	}
}

// putOrders writes n orders in hour h as one raw file of partition 0 from
// offset first.
func putOrders(t *testing.T, store lake.Store, s *schemas.Schema, h time.Time, first int64, n int) {
	t.Helper()
	layout := s.RawLayout()
	var rows []parquet.Row
	for i := range n {
		ts := h.Add(time.Duration(i) * time.Minute)
		r := schemas.Row{Values: []schemas.Value{{Str: fmt.Sprintf("o-%d", first+int64(i))}, {Int: ts.UnixMicro()}, {Str: "acme"}, {Float: 1.25}}}
		rows = append(rows, layout.AppendRow(nil, &r, 0, first+int64(i), ts.UnixMicro()))
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, layout.Schema)
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	key := lake.RawFile{Schema: s.Name, Hour: h, Topic: s.Topic, First: first, Last: first + int64(n) - 1}.Key()
	if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}
