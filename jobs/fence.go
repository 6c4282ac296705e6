package jobs

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/lambdalake/lambdalake/lake"
)

var _ lake.Store = (*fencedStore)(nil)

// fencedStore is a lake.Store whose writes first check that the current
// run still holds its lease. S3 has no compare-and-set a fencing token could
// ride on, so the check is the next best thing: a runner that lost its lease
// (stalled past it, then woke up) fails its next write instead of
// overwriting the work of the runner that took over. One fencedStore serves
// one job, whose runs never overlap within a runner.
type fencedStore struct {
	lake.Store
	lease atomic.Pointer[Lease]
}

var _ lake.Store = (*fencedStore)(nil)

func (s *fencedStore) check(ctx context.Context) error {
	if l := s.lease.Load(); l != nil {
		return l.Check(ctx)
	}
	return nil
}

func (s *fencedStore) Put(ctx context.Context, key string, body io.Reader) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.Store.Put(ctx, key, body)
}

func (s *fencedStore) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}
