package compact

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// A zombie compactor — one that lost its partition in a rebalance it has
// not seen yet and still flushes — cannot move the partition's checkpoint
// (S3 on LocalStack: If-Match on the ETag it read, If-None-Match on
// create). Its files may land (readers drop the overlap), its checkpoint
// write is refused at once (not retried) and counted; the new owner's
// checkpoint stands.
func TestZombieCompactorCannotMoveTheCheckpoint(t *testing.T) {
	store, _ := testenv.S3Lake(t)
	ctx := context.Background()
	s := testSchema(t)
	newCompactor := func(reg *prometheus.Registry) *Compactor {
		c, err := New(Config{Brokers: []string{"unused:9092"}, Group: "g", Store: store,
			Schemas: []*schemas.Schema{s}, Lateness: map[string]time.Duration{s.Name: 5 * time.Minute}, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	zombieReg := prometheus.NewRegistry()
	zombie, owner := newCompactor(zombieReg), newCompactor(prometheus.NewRegistry())
	ti := zombie.byTopic["orders"]
	lim := limits{maxFileRows: 1000, maxFileBytes: 1 << 20, maxFileAge: time.Minute}
	flushOf := func(from, to int64) *flush {
		p := newPartBuffer(s, ti.layout, ti.ps, "orders", 0, lim, from, time.Time{})
		for off := from; off < to; off++ {
			p.add(record{Offset: off, Value: event("o", base.Add(time.Duration(off)*time.Second), 1), Time: base}, base)
		}
		return p.cut(base.Add(time.Hour), false)
	}

	tests := []struct {
		name string
		// first: the checkpoint before both (nil: none yet)
		first *raw.Checkpoint
	}{
		{"on create (If-None-Match)", nil},
		{"on replace (If-Match)", &raw.Checkpoint{NextOffset: 10}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			group := []string{"g0", "g1"}[i]
			zombie.cfg.Group, owner.cfg.Group = group, group
			if tc.first != nil {
				if _, err := raw.WriteCheckpoint(ctx, store, group, "orders", 0, *tc.first, ""); err != nil {
					t.Fatal(err)
				}
			}
			// Both read the same checkpoint: the zombie before it lost the
			// partition, the owner when it took it over.
			zcp, ztag, _, err := raw.ReadCheckpointVersion(ctx, store, group, "orders", 0)
			if err != nil {
				t.Fatal(err)
			}
			ocp, otag, _, err := raw.ReadCheckpointVersion(ctx, store, group, "orders", 0)
			if err != nil {
				t.Fatal(err)
			}
			// The owner flushes first.
			if _, _, err := owner.store(ctx, ti, flushOf(10, 20), ocp, otag); err != nil {
				t.Fatal(err)
			}
			// Then the zombie's flush lands: refused, and at once.
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			start := time.Now()
			_, _, err = zombie.store(sctx, ti, flushOf(10, 15), zcp, ztag)
			if !errors.Is(err, lake.ErrPreconditionFailed) {
				t.Fatalf("the zombie's checkpoint write: %v, want lake.ErrPreconditionFailed", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the refusal took %v: it was retried", took)
			}
			got, _, _ := raw.ReadCheckpoint(ctx, store, group, "orders", 0)
			if got.NextOffset != 20 {
				t.Errorf("checkpoint next_offset %d, want the owner's 20", got.NextOffset)
			}
			if n := testutil.ToFloat64(zombie.metrics.fenced); n != float64(i+1) {
				t.Errorf("lambdalake_compact_checkpoints_refused_total = %v, want %d", n, i+1)
			}
		})
	}
}
