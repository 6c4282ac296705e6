package compact

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// budget bounds the bytes a compactor process holds: records buffered in
// every partition plus flushes being written. Reaching it makes the largest
// buffer flush; while the bytes are in flight (S3 slow or down) the
// partitions wait instead of reading more, which is the backpressure that
// keeps memory flat during an outage.
type budget struct {
	limit    int64
	buffered atomic.Int64 // in partition buffers
	inflight atomic.Int64 // cut, being encoded and uploaded

	mu      sync.Mutex
	members map[*member]struct{}
	changed chan struct{} // closed and replaced whenever bytes are released
}

// member is one partition's account with the budget.
type member struct {
	buffered atomic.Int64
	flushReq chan struct{} // a request to flush now, buffered 1
	wake     func()        // interrupts the member's wait for records
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, members: map[*member]struct{}{}, changed: make(chan struct{})}
}

// join adds a member; wake (may be nil) makes it notice a flush request
// while it waits for records.
func (b *budget) join(wake func()) *member {
	if wake == nil {
		wake = func() {}
	}
	m := &member{flushReq: make(chan struct{}, 1), wake: wake}
	b.mu.Lock()
	b.members[m] = struct{}{}
	b.mu.Unlock()
	return m
}

// leave drops a member, releasing whatever it still had buffered.
func (b *budget) leave(m *member) {
	b.mu.Lock()
	delete(b.members, m)
	b.mu.Unlock()
	b.buffered.Add(-m.buffered.Swap(0))
	b.signal()
}

func (b *budget) used() int64 { return b.buffered.Load() + b.inflight.Load() }

func (b *budget) over() bool { return b.used() >= b.limit }

// high reports whether the buffers hold half the budget: time to start
// flushing the largest, so that encoding and uploading overlap reading
// instead of everything stopping at the limit.
func (b *budget) high() bool { return b.buffered.Load() >= b.limit/2 }

// grow accounts n more buffered bytes to m.
func (b *budget) grow(m *member, n int64) {
	m.buffered.Add(n)
	b.buffered.Add(n)
}

// cut moves n of m's bytes from buffered to in flight.
func (b *budget) cut(m *member, n int64) {
	m.buffered.Add(-n)
	b.buffered.Add(-n)
	b.inflight.Add(n)
}

// release frees n in-flight bytes (a flush was stored, or dropped).
func (b *budget) release(n int64) {
	b.inflight.Add(-n)
	b.signal()
}

func (b *budget) signal() {
	b.mu.Lock()
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// wait returns a channel closed at the next release.
func (b *budget) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// relieve is called by a member that found the budget reached. When the
// buffers hold at least half the budget, the largest one is asked to
// flush (it may be the caller); otherwise most bytes are already being
// written and flushing small buffers would only make small files, so the
// caller just waits for the writes to finish.
func (b *budget) relieve() {
	if b.buffered.Load() < b.limit/2 {
		return
	}
	b.mu.Lock()
	var largest *member
	var size int64
	for m := range b.members {
		if n := m.buffered.Load(); n > size {
			largest, size = m, n
		}
	}
	b.mu.Unlock()
	if largest != nil {
		select {
		case largest.flushReq <- struct{}{}:
			largest.wake()
		default: // already asked
		}
	}
}

// waitBelow blocks until the budget is no longer reached or ctx ends. While
// it waits, flush requests to m are served by onFlush, so two partitions
// waiting on each other cannot deadlock.
func (b *budget) waitBelow(ctx context.Context, m *member, onFlush func()) error {
	for b.over() {
		b.relieve()
		ch := b.wait()
		if !b.over() {
			return nil
		}
		select {
		case <-ch:
		case <-m.flushReq:
			onFlush()
		case <-time.After(500 * time.Millisecond): // re-check: another member may have joined or left
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
