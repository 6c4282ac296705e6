package compact

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/lake"
)

var _ lake.Store = failingStore{}

// failingStore fails every write under a prefix: a crash between a
// flush's uploads and its checkpoint.
type failingStore struct {
	lake.ConditionalStore
	prefix string
}

func (s failingStore) Put(ctx context.Context, key string, body io.Reader) error {
	if strings.HasPrefix(key, s.prefix) {
		return errors.New("injected failure")
	}
	return s.ConditionalStore.Put(ctx, key, body)
}

func (s failingStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if strings.HasPrefix(key, s.prefix) {
		return "", errors.New("injected failure")
	}
	return s.ConditionalStore.PutIfMatch(ctx, key, body, etag)
}

func (s failingStore) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	if strings.HasPrefix(key, s.prefix) {
		return "", errors.New("injected failure")
	}
	return s.ConditionalStore.PutIfAbsent(ctx, key, body)
}

// A flush whose files were stored but whose checkpoint was not is read
// again from the old checkpoint with different boundaries: the lake then
// holds overlapping files. Readers see every record once, and Merge
// removes the overlap physically, keeping the same records.
func TestOverlapAfterCrashReadsOnceAndMerges(t *testing.T) {
	s := testSchema(t)
	dir, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := newTestCompactor(t, dir, s)
	ti := c.byTopic["orders"]
	lim := limits{maxFileRows: 1 << 20, maxFileBytes: 1 << 30, maxFileAge: time.Hour}
	// Records alternate between two hours, so every flush writes two files.
	value := func(off int64) []byte {
		return event(fmt.Sprint("o", off), base.Add(time.Duration(off%2)*time.Hour+time.Duration(off)*time.Second), float64(off)/100)
	}
	flushRange := func(p *partBuffer, from, to int64, prev raw.Checkpoint, etag string) (raw.Checkpoint, string, error) {
		for off := from; off < to; off++ {
			p.add(record{Offset: off, Value: value(off), Time: base}, base)
		}
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		return c.store(sctx, ti, p.cut(base, false), prev, etag)
	}
	p := newPartBuffer(s, ti.layout, ti.ps, "orders", 0, lim, -1, time.Time{})
	cp, etag, err := flushRange(p, 0, 100, raw.Checkpoint{}, "")
	if err != nil {
		t.Fatal(err)
	}
	// The crash: [100, 200) stored, checkpoint not.
	crashing := *c
	crashing.cfg.Store = failingStore{dir, "_checkpoints/"}
	// store retries a failing write until its context ends.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, err := (&crashing).store(cctx, ti, func() *flush {
		for off := int64(100); off < 200; off++ {
			p.add(record{Offset: off, Value: value(off), Time: base}, base)
		}
		return p.cut(base, false)
	}(), cp, etag); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("store with a failing checkpoint: %v, want the injected failure", err)
	}
	got, gotTag, _, _ := raw.ReadCheckpointVersion(ctx, dir, "g", "orders", 0)
	if got.NextOffset != 100 {
		t.Fatalf("checkpoint = %d after the crash, want 100", got.NextOffset)
	}
	// The restart reads from 100 again and flushes [100, 250) at once.
	p = newPartBuffer(s, ti.layout, ti.ps, "orders", 0, lim, got.NextOffset, got.MaxEvent)
	if _, _, err := flushRange(p, 100, 250, got, gotTag); err != nil {
		t.Fatal(err)
	}

	read := func() (n int, sum uint64, files int) {
		t.Helper()
		cols := raw.ColumnsOf(s)
		seen := map[int64]bool{}
		for h := range 2 {
			hour := base.Add(time.Duration(h) * time.Hour)
			objs, _ := dir.List(ctx, lake.RawHourPrefix("orders", hour))
			files += len(objs)
			err := raw.ReadHour(ctx, dir, s, hour, func(r parquet.Row) error {
				off := r[cols.Offset].Int64()
				if seen[off] {
					t.Errorf("offset %d read twice", off)
				}
				seen[off] = true
				if want := off % 2; int64(h) != want {
					t.Errorf("offset %d in hour %d", off, h)
				}
				hsh := fnv.New64a()
				for _, v := range r {
					hsh.Write([]byte(v.String()))
				}
				sum += hsh.Sum64() // order-independent checksum of whole rows
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return n, sum, files
	}
	n, sum, files := read()
	if n != 250 || files != 6 {
		t.Fatalf("read %d records from %d files, want 250 from 6 (two overlapping)", n, files)
	}
	// The re-read file covers the crashed one, which the plan leaves out.
	plan, redundant, err := raw.PlanHour(ctx, dir, "orders", base)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || len(redundant) != 1 || redundant[0].First != 100 || redundant[0].Last != 198 {
		t.Errorf("plan %+v, redundant %+v: want the crashed file [100, 198] redundant", plan, redundant)
	}

	for h := range 2 {
		res, err := Merge(ctx, dir, s, base.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if res.Written != 1 || res.Removed != 3 {
			t.Errorf("merge hour %d: %+v, want 1 written, 3 removed", h, res)
		}
	}
	n2, sum2, files2 := read()
	if n2 != n || sum2 != sum || files2 != 2 {
		t.Errorf("after merge: %d records (checksum %x) in %d files; before: %d (%x)", n2, sum2, files2, n, sum)
	}
	for h := range 2 {
		if res, err := Merge(ctx, dir, s, base.Add(time.Duration(h)*time.Hour)); err != nil || res != (MergeResult{}) {
			t.Errorf("second merge: %+v %v, want nothing to do", res, err)
		}
	}
}

// The merge job's plan: closed hours holding several files of one
// partition, each once; open hours and hours with one file per partition
// are left alone.
func TestHoursToMerge(t *testing.T) {
	h := func(i int) time.Time { return base.Add(time.Duration(i) * time.Hour) }
	key := func(hour time.Time, p int32, first int64) string {
		return lake.RawFile{Schema: "orders", Hour: hour, Topic: "orders", Partition: p, First: first, Last: first + 9}.Key()
	}
	tests := []struct {
		name      string
		files     []string
		watermark time.Time
		want      []time.Time
	}{
		{"one file per partition", []string{key(h(0), 0, 0), key(h(0), 1, 0)}, h(3), nil},
		{"two files of a partition", []string{key(h(0), 0, 0), key(h(0), 0, 10), key(h(1), 0, 20)}, h(3), []time.Time{h(0)}},
		{"each hour once", []string{key(h(0), 0, 0), key(h(0), 0, 10), key(h(0), 1, 0), key(h(0), 1, 10), key(h(1), 2, 0), key(h(1), 2, 10)}, h(3),
			[]time.Time{h(0), h(1)}},
		{"an open hour waits", []string{key(h(0), 0, 0), key(h(0), 0, 10), key(h(2), 0, 20), key(h(2), 0, 30)}, h(2).Add(59 * time.Minute),
			[]time.Time{h(0)}},
		{"closed at its end", []string{key(h(2), 0, 20), key(h(2), 0, 30)}, h(3), []time.Time{h(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := lake.NewDirStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.files {
				if err := lake.PutBytes(context.Background(), store, k, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			got, err := HoursToMerge(context.Background(), store, "orders", tt.watermark)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("hours = %v, want %v", got, tt.want)
			}
		})
	}
}
