package views

import (
	"context"
	"errors"
	"testing"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
)

// _state.json is written only over the version it was read from (If-Match)
// or, when none existed, only if none exists yet (If-None-Match): a writer
// with an older read fails and writes nothing, on the folder lake and on S3
// (LocalStack).
func TestWriteStateIsConditional(t *testing.T) {
	stores := map[string]func(t *testing.T) lake.Store{
		"folder": func(t *testing.T) lake.Store { return dirStore(t) },
		"s3": func(t *testing.T) lake.Store {
			s, _ := testenv.S3Lake(t)
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := context.Background()
			// Two writers read the state before it exists.
			a, err := ReadState(ctx, store, "v")
			if err != nil {
				t.Fatal(err)
			}
			b, err := ReadState(ctx, store, "v")
			if err != nil {
				t.Fatal(err)
			}
			a.Boundary, b.Boundary = hour(1), hour(2)
			if err := WriteState(ctx, store, "v", a); err != nil {
				t.Fatal(err)
			}
			if err := WriteState(ctx, store, "v", b); !errors.Is(err, lake.ErrPreconditionFailed) {
				t.Fatalf("second create: %v, want lake.ErrPreconditionFailed", err)
			}
			// a writes again over its own version; b, reading again, over a's.
			a.Boundary = hour(3)
			if err := WriteState(ctx, store, "v", a); err != nil {
				t.Fatalf("a's second write over its own version: %v", err)
			}
			stale, err := ReadState(ctx, store, "v")
			if err != nil {
				t.Fatal(err)
			}
			a.Boundary = hour(4)
			if err := WriteState(ctx, store, "v", a); err != nil {
				t.Fatal(err)
			}
			stale.Boundary = hour(0)
			if err := WriteState(ctx, store, "v", stale); !errors.Is(err, lake.ErrPreconditionFailed) {
				t.Fatalf("write over an older version: %v, want lake.ErrPreconditionFailed", err)
			}
			if got, err := ReadState(ctx, store, "v"); err != nil || !got.Boundary.Equal(hour(4)) {
				t.Errorf("state B = %v (%v), want the last good write's %v", got.Boundary, err, hour(4))
			}
		})
	}
}
