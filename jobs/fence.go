package jobs

import (
	"context"
	"fmt"
	"io"

	"github.com/lambdalake/lambdalake/lake"
)

// fencedStore is the lake as a job's run writes it: every write first
// checks that the run still holds its lease, and the objects the job owns
// (_state.json, the seal) are written conditionally by the code above it
// (views.WriteState, raw.WriteSeal: If-Match on the ETag read, If-None-Match
// on create), which this store passes through to the lake.
//
// The two close each other's gaps. The lease check alone leaves one: a PUT
// that passed it may land after the lease expired and another runner took
// over and wrote (a slow request, a pause). The condition catches exactly
// that — the object is no longer the version the stale runner read — so
// its write is refused instead of overwriting the new runner's. The lease
// check still spares a runner that lost its lease the work of computing
// and writing files nobody will use, and covers the writes that are not
// owned objects (view files, deletions). The lease is the one the write's
// context carries (withLease): jobs sharing a store may run at once.
// A shared run (Job.Shared) carries none; its work checks its item
// leases itself.
type fencedStore struct {
	cs lake.ConditionalStore
}

type leaseKey struct{}

// withLease returns ctx carrying the run's lease, which a fencedStore
// checks before every write made with it (nil: none).
func withLease(ctx context.Context, l *Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

var _ lake.ConditionalStore = (*fencedStore)(nil)

// newFencedStore wraps the lake, which must have conditional writes.
func newFencedStore(store lake.Store) (*fencedStore, error) {
	cs, ok := store.(lake.ConditionalStore)
	if !ok {
		return nil, fmt.Errorf("jobs: lake store %T has no conditional writes (If-Match, If-None-Match)", store)
	}
	return &fencedStore{cs: cs}, nil
}

func (s *fencedStore) check(ctx context.Context) error {
	if l, _ := ctx.Value(leaseKey{}).(*Lease); l != nil {
		return l.Check(ctx)
	}
	return nil
}

func (s *fencedStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.cs.Get(ctx, key)
}

func (s *fencedStore) List(ctx context.Context, prefix string) ([]lake.Object, error) {
	return s.cs.List(ctx, prefix)
}

func (s *fencedStore) ReadWithETag(ctx context.Context, key string) ([]byte, string, error) {
	return s.cs.ReadWithETag(ctx, key)
}

func (s *fencedStore) Put(ctx context.Context, key string, body io.Reader) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.cs.Put(ctx, key, body)
}

func (s *fencedStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if err := s.check(ctx); err != nil {
		return "", err
	}
	return s.cs.PutIfMatch(ctx, key, body, etag)
}

func (s *fencedStore) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	if err := s.check(ctx); err != nil {
		return "", err
	}
	return s.cs.PutIfAbsent(ctx, key, body)
}

func (s *fencedStore) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.cs.Delete(ctx, key)
}
