package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// cell is one (bucket, tenant, country) of the reference.
type cell struct {
	t               int64
	tenant, country string
}

// agg is a reference cell of the revenue view. The example config's
// amount is a decimal(18,2): sum, min and max are exact integers of cents.
type agg struct {
	count         int64
	sum, min, max int64
	users         map[string]bool
}

// Two `lambdalake jobs` processes share a lake and a Redis. The first is
// killed with SIGKILL while it holds the lease of an hour; the second does
// the other hours at once and that hour once its lease expired, and the
// view then equals the exact reference computed here from the generated
// events.
func TestKilledRunnerIsTakenOverAndViewsAreExact(t *testing.T) {
	for _, rs := range testenv.RedisSetups(t) {
		t.Run(rs.Name, func(t *testing.T) {
			store, lakeURL := testenv.S3Lake(t)
			redisAddrs := strings.Join(rs.Config(t).Addrs, ",")
			bin := testenv.Binary(t)
			ctx := context.Background()

			ns := testenv.Name("jobs")
			view := strings.ReplaceAll(testenv.Name("rev"), "-", "_")
			cfgText := strings.Replace(string(lambdalake.ExampleConfig), "  revenue:\n", "  "+view+":\n", 1)
			cfgText = strings.Replace(cfgText, "jobs:\n", "jobs:\n  namespace: "+ns+"\n  lease: 3s\n", 1)
			cfgText = strings.Replace(cfgText, `recompute: "0 */2 * * * *"`, `recompute: "* * * * * *"`, 1)
			cfgText = strings.Replace(cfgText, `merge: "0 */15 * * * *"`, `merge: "@yearly"`, 1)
			cfgText = strings.Replace(cfgText, `retention: "0 0 * * * *"`, `retention: "@yearly"`, 1)
			cfg, err := config.Parse([]byte(cfgText), nil)
			if err != nil {
				t.Fatal(err)
			}
			s, v := cfg.Schema("orders"), cfg.View(view)

			// Twelve closed hours of orders, written as the compactor would: one
			// file per (hour, partition), and checkpoints whose watermark closes them.
			end := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
			from := end.Add(-12 * time.Hour)
			ref := writeLake(t, store, s, v, from, end, 240000, 1)
			for p := range 4 {
				cp, _ := json.Marshal(raw.Checkpoint{NextOffset: 1 << 40, Watermark: end})
				if err := lake.PutBytes(ctx, store, lake.CheckpointKey(cfg.Compact.Group, s.Topic, int32(p)), cp); err != nil {
					t.Fatal(err)
				}
			}

			path := testenv.WriteConfig(t, cfgText)
			env := append(os.Environ(), "LAMBDALAKE_LAKE_URL="+lakeURL, "LAMBDALAKE_REDIS_ADDRS="+redisAddrs)
			type proc struct {
				cmd    *exec.Cmd
				exited chan error
			}
			start := func(runner string) *proc {
				cmd := exec.Command(bin, "jobs", "--config", path, "--runner", runner)
				cmd.Env = env
				out := &testenv.SyncBuffer{}
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				p := &proc{cmd: cmd, exited: make(chan error, 1)}
				go func() { p.exited <- cmd.Wait() }()
				t.Cleanup(func() {
					cmd.Process.Kill()
					if t.Failed() {
						t.Logf("runner %s output:\n%s", runner, out.String())
					}
				})
				return p
			}

			rdb := rs.Client(t)
			// Runner a is killed while it holds the lease of an hour.
			a := start("a")
			deadline := time.Now().Add(60 * time.Second)
			var aHour, aHolder string // the item (hour) whose lease a held, and a's "runner:token"
			for aHour == "" {
				held, err := jobs.HeldItems(ctx, rdb, ns, jobs.JobRecompute)
				if err != nil {
					t.Fatal(err)
				}
				for lock, holder := range held {
					if strings.HasPrefix(holder, "a:") && !strings.HasSuffix(lock, "/boundary") {
						aHour, aHolder = lock[strings.LastIndex(lock, "/")+1:], holder
					}
				}
				select {
				case err := <-a.exited:
					t.Fatalf("runner a exited: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("runner a never took an hour's lease")
				}
				time.Sleep(20 * time.Millisecond)
			}
			a.cmd.Process.Signal(syscall.SIGKILL)
			<-a.exited
			killedAt := time.Now()

			// Runner b does the rest at once and a's hour once a's lease expired:
			// B reaches the end.
			b := start("b")
			for {
				st, err := views.ReadState(ctx, store, view)
				if err != nil {
					t.Fatal(err)
				}
				if st.Boundary.Equal(end) {
					break
				}
				if time.Since(killedAt) > 120*time.Second {
					hist, _ := jobs.History(ctx, rdb, ns, 100)
					t.Fatalf("B = %v two minutes after the kill, want %v; history: %+v", st.Boundary, end, hist)
				}
				time.Sleep(200 * time.Millisecond)
			}
			items, err := jobs.ItemHistory(ctx, rdb, ns, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var took *jobs.ItemRecord
			for i, r := range items {
				if r.Runner == "b" && r.Item == aHour && r.Outcome == jobs.OutcomeOK {
					took = &items[i]
				}
			}
			st, err := views.ReadState(ctx, store, view)
			if err != nil {
				t.Fatal(err)
			}
			hourEntry := st.Hours[aHour]
			switch {
			case took == nil && "a:"+strconv.FormatInt(hourEntry.Token, 10) == aHolder:
				t.Logf("runner a had merged hour %s before it was killed", aHour)
			case took == nil:
				t.Errorf("runner b never recomputed hour %s, whose lease a held when killed; items: %+v", aHour, items)
			case took.Start.Sub(killedAt) < 2*time.Second:
				t.Errorf("b took hour %s %v after the kill, before a's 3 s lease could expire", aHour, took.Start.Sub(killedAt))
			}
			b.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-b.exited:
				if err != nil {
					t.Errorf("runner b did not stop cleanly on SIGTERM: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("runner b did not stop within 30 s of SIGTERM")
			}

			if st, err = views.ReadState(ctx, store, view); err != nil {
				t.Fatal(err)
			}
			if !st.Boundary.Equal(end) {
				t.Errorf("boundary %v, want %v (every written hour closed and final)", st.Boundary, end)
			}
			reader, err := views.NewReader(views.ReaderConfig{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := reader.Rows(ctx, v, from, end, nil)
			if err != nil {
				t.Fatal(err)
			}
			compareToReference(t, v, rows, ref)
		})
	}
}

// writeLake writes count generated orders as raw files, chunks files per
// (hour, partition), and returns the exact reference of view v.
func writeLake(t *testing.T, store lake.Store, s *schemas.Schema, v *schemas.View, from, to time.Time, count int64, chunks int) map[cell]*agg {
	t.Helper()
	g, err := gen.New(gen.Config{Schema: s, From: from, To: to, Count: count, Seed: 5,
		Cardinality: map[string]int{"tenant": 4, "country": 5, "user_id": 2000},
		OutOfOrder:  0.05, MaxDelay: 10 * time.Minute, Duplicates: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	type fileKey struct {
		hour  time.Time
		part  int32
		chunk int
	}
	layout := s.RawLayout()
	files := map[fileKey][]parquet.Row{}
	first := map[fileKey]int64{}
	last := map[fileKey]int64{}
	next := [4]int64{}
	ref := map[cell]*agg{}
	dec := schemas.NewDecoder(s)
	ti, tn, co, us, am := s.TimeIndex(), s.FieldIndex("tenant"), s.FieldIndex("country"), s.FieldIndex("user_id"), s.FieldIndex("amount")
	if f, _ := s.Field("amount"); f.Type.Kind() != schemas.Decimal || f.Type.Scale() != 2 {
		t.Fatalf("amount is %s: the reference counts cents of a decimal(P,2)", f.Type)
	}
	for i := range count {
		e := g.Next(time.Time{})
		var row schemas.Row
		if err := dec.Decode(e.Value, &row); err != nil {
			t.Fatal(err)
		}
		p := int32(i % 4)
		off := next[p]
		next[p]++
		// Chunks split a partition's offsets into consecutive runs, as the
		// compactor's flushes do: files of one (hour, partition) never
		// interleave offsets.
		k := fileKey{time.UnixMicro(row.Values[ti].Int).UTC().Truncate(time.Hour), p, int(off * int64(chunks) / (count/4 + 1))}
		if _, ok := first[k]; !ok {
			first[k] = off
		}
		last[k] = off
		files[k] = append(files[k], layout.AppendRow(nil, &row, p, off, 0))
		if e.Kind != gen.Valid {
			continue // duplicates are in the raw lake; recompute drops them by id
		}
		c := cell{v.Bucket(row.Values[ti].Int), row.Values[tn].Str, row.Values[co].Str}
		a := ref[c]
		if a == nil {
			a = &agg{min: math.MaxInt64, max: math.MinInt64, users: map[string]bool{}}
			ref[c] = a
		}
		x := row.Values[am].Int // cents
		a.count++
		a.sum += x
		a.min, a.max = min(a.min, x), max(a.max, x)
		a.users[row.Values[us].Str] = true
	}
	for k, rows := range files {
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, layout.Schema)
		if _, err := w.WriteRows(rows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		key := lake.RawFile{Schema: s.Name, Hour: k.hour, Topic: s.Topic, Partition: k.part, First: first[k], Last: last[k]}.Key()
		if err := lake.PutBytes(context.Background(), store, key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	return ref
}

func compareToReference(t *testing.T, v *schemas.View, rows []views.Row, ref map[cell]*agg) {
	t.Helper()
	idx := map[string]int{}
	for i, m := range v.Metrics {
		idx[m.Name] = i
	}
	seen := map[cell]bool{}
	for _, r := range rows {
		c := cell{r.T, r.Dims[0].Str, r.Dims[1].Str}
		if seen[c] {
			t.Fatalf("cell %+v twice", c)
		}
		seen[c] = true
		want := ref[c]
		if want == nil {
			t.Errorf("cell %+v not in the reference", c)
			continue
		}
		got := func(m string) schemas.Value { return r.Values[idx[m]] }
		if got("orders").Int != want.count || got("smallest").Int != want.min || got("biggest").Int != want.max ||
			got("buyers").Int != int64(len(want.users)) || got("revenue").Int != want.sum {
			t.Errorf("cell %+v: orders=%d revenue=%d min=%d max=%d buyers=%d (cents); want %d %d %d %d %d", c,
				got("orders").Int, got("revenue").Int, got("smallest").Int, got("biggest").Int, got("buyers").Int,
				want.count, want.sum, want.min, want.max, len(want.users))
		}
	}
	if len(seen) != len(ref) {
		t.Errorf("%d cells in the view, %d in the reference", len(seen), len(ref))
	}
	t.Logf("compared %d cells", len(seen))
}
