package compact

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/stream"
)

// stopTimeout bounds the final flush when a partition is revoked or the
// process stops. If it cannot finish (S3 down), the records are dropped
// from memory and read again from the checkpoint by the next owner.
const stopTimeout = 20 * time.Second

// partition is the state of one assigned partition, owned by the
// goroutine in runPartition.
type partition struct {
	c         *Compactor
	ti        *topicInfo
	topic     string
	partition int32
	buf       *partBuffer
	mem       *member
	jobs      chan *flush
	hw        int64 // high-water mark seen with the last record; -1: unknown
	unsettled int64 // buffered bytes not yet added to the budget (settle)
	published bool  // a checkpoint exists
	lastWM    time.Time

	wakeMu sync.Mutex
	wakeFn context.CancelFunc // cancels the fetch in progress
	woken  bool               // a wake is pending
}

// runPartition consumes one partition from its lake checkpoint until ctx
// (the group generation) ends, then flushes what it holds. It returns only
// when its goroutines have stopped.
func (c *Compactor) runPartition(ctx context.Context, topic string, part int32, commit func(next int64) error) {
	ti := c.byTopic[topic]
	log := c.log.With("topic", topic, "partition", part)
	var cp raw.Checkpoint
	var etag string // of the checkpoint's object: its writes are conditional on it
	var found bool
	if err := c.retry(ctx, "read checkpoint", func(ctx context.Context) (err error) {
		cp, etag, found, err = raw.ReadCheckpointVersion(ctx, c.cfg.Store, c.cfg.Group, topic, part)
		return err
	}); err != nil {
		return // generation ended before the lake answered
	}
	start := int64(kafka.FirstOffset)
	next := int64(-1)
	if found {
		start, next = cp.NextOffset, cp.NextOffset
	}
	log.Info("partition start", "checkpoint", found, "offset", start, "watermark", cp.Watermark)

	r := stream.NewFetcher(stream.FetcherConfig{Brokers: c.cfg.Brokers, Topic: topic, Partition: int(part), Offset: start,
		OnError: func(err error) { log.Warn("fetch", "err", err) }})
	defer r.Close()
	p := &partition{c: c, ti: ti, topic: topic, partition: part, jobs: make(chan *flush), hw: -1,
		published: found, lastWM: cp.Watermark,
		buf: newPartBuffer(ti.schema, ti.layout, ti.ps, topic, part,
			limits{maxFileRows: c.cfg.MaxFileRows, maxFileBytes: c.cfg.MaxFileBytes, maxFileAge: c.cfg.MaxFileAge}, next,
			saneMaxEvent(cp.MaxEvent, c.cfg.Now(), ti.schema))}
	p.buf.wall.read = c.cfg.Now
	p.mem = c.budget.join(p.wake)
	defer c.budget.leave(p.mem)

	// The flusher stores flushes in order, one at a time, so the
	// checkpoint only ever follows files that are already stored. Its
	// context outlives the generation by up to stopTimeout.
	fctx, fcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer fcancel()
	// A flush that cannot be stored stops the partition: returning ends
	// the group generation, and the rejoin resumes from the checkpoint.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		prev := cp
		failed := false
		for b := range p.jobs {
			// After one flush fails no later one may be stored: its
			// checkpoint would claim the failed flush's records.
			if failed || fctx.Err() != nil {
				c.budget.release(b.bytes)
				continue
			}
			next, nextTag, err := c.store(fctx, ti, b, prev, etag)
			c.budget.release(b.bytes)
			if err != nil {
				failed = true
				pcancel()
				log.Warn("flush abandoned; records will be read again from the checkpoint", "err", err)
				continue
			}
			prev, etag = next, nextTag
			if err := commit(b.next); err != nil {
				log.Debug("commit offsets (advisory)", "err", err)
			}
		}
	}()

	p.loop(pctx, r)

	// Final flush, bounded: hand over what is buffered, then let the
	// flusher finish or give up after stopTimeout.
	stop := time.AfterFunc(stopTimeout, fcancel)
	defer stop.Stop()
	if p.buf.rows > 0 {
		p.handoff(fctx, p.cut())
	}
	close(p.jobs)
	<-flusherDone
	log.Info("partition stop", "next_offset", p.buf.next)
}

// loop reads records into the buffer and hands flushes to the flusher
// until ctx ends. Records are fetched in this goroutine, with no channel
// hop per record; the loop's timer and other partitions' flush requests
// interrupt a waiting fetch by cancelling its context (wake). The
// per-record path reads no clock, resets no timer and touches the shared
// budget only every settleBytes.
func (p *partition) loop(ctx context.Context, r *stream.Fetcher) {
	c := p.c
	l := &loopState{idle: max(c.cfg.MaxFileAge, time.Second), now: c.cfg.Now,
		lagLabel: c.metrics.lag.WithLabelValues(p.topic, fmt.Sprint(p.partition))}
	l.armed = c.cfg.Now().Add(l.idle)
	l.timer = time.AfterFunc(l.idle, p.wake)
	defer l.timer.Stop()
	for ctx.Err() == nil {
		fctx, cancel := context.WithCancel(ctx)
		p.setWake(cancel)
		p.fetch(ctx, fctx, r, l)
		p.clearWake()
		cancel()
		p.afterWake(ctx, l)
	}
}

// loopState is the loop's timing. One timer wakes the fetch at the
// earliest of the buffer's age deadline, the drain check and the idle
// tick; armed is when it fires.
type loopState struct {
	now      func() time.Time // the compactor's clock (Config.Now)
	idle     time.Duration
	timer    *time.Timer
	armed    time.Time
	lagLabel prometheus.Gauge
	n        int // records read, to sample the lag gauge
	// A large buffer whose partition has caught up is written once the
	// partition has been quiet for drainQuiet (no record past drainNext),
	// not up to max_file_age later: after a backlog, its data is durable
	// and its hours can close sooner.
	drainArmed bool
	drainAt    time.Time
	drainNext  int64
}

// arm sets the timer to fire at at, a time of the compactor's clock (Now),
// which need not be the process's: a test's clock that jumped days ahead
// must not make the wait days long.
func (l *loopState) arm(at time.Time) {
	l.timer.Reset(max(at.Sub(l.now()), time.Millisecond))
	l.armed = at
}

// fetch reads records into the buffer until the fetch context fctx is
// woken or ctx ends.
func (p *partition) fetch(ctx, fctx context.Context, r *stream.Fetcher, l *loopState) {
	for {
		m, err := r.Next(fctx)
		if err != nil {
			return // woken or stopped: the fetcher retries failures itself
		}
		p.take(ctx, &m, l)
		if p.unsettled < settleBytes {
			continue
		}
		if !p.settleBudget(ctx) {
			return
		}
	}
}

// take buffers one record, hands the buffer over when a file is full, and
// arms the timer for what the record starts: the buffer's age, or the drain
// check once the partition has caught up.
func (p *partition) take(ctx context.Context, m *kafka.Message, l *loopState) {
	c := p.c
	var now time.Time
	wasEmpty := p.buf.rows == 0
	if wasEmpty || m.Time.IsZero() {
		now = c.cfg.Now() // the buffer's age starts now
	}
	// Admission's clock reading: refreshed every few records, and at once
	// when a record was written after it (the first after a quiet spell).
	if l.n%64 == 0 || m.Time.UnixMicro() > p.buf.wall.us {
		p.buf.wall.refresh()
	}
	p.buf.add(record{Offset: m.Offset, Value: m.Value, Time: m.Time}, now)
	if wasEmpty && m.HighWaterMark-m.Offset-1 >= backlogLag {
		p.buf.backlog = true
	}
	p.unsettled += int64(len(m.Value)) + rowOverhead
	p.hw = m.HighWaterMark
	if l.n++; l.n%1024 == 0 {
		l.lagLabel.Set(float64(max(p.hw-p.buf.next, 0)))
	}
	if p.buf.full {
		p.handoff(ctx, p.cut())
	} else if wasEmpty {
		if d := p.buf.deadline(); d.Before(l.armed) {
			l.arm(d)
		}
	}
	if !l.drainArmed && m.Offset+1 >= p.hw && p.buf.drainable() {
		l.drainArmed, l.drainAt, l.drainNext = true, c.cfg.Now().Add(drainQuiet), p.buf.next
		if l.drainAt.Before(l.armed) {
			l.arm(l.drainAt)
		}
	}
}

// settleBudget adds the bytes read since the last settle to the budget,
// then keeps the budget: at half of it the largest buffer is asked to
// flush, a flush request to this partition is served, and while all of it
// is used the partition waits. It reports false if ctx ended while waiting.
func (p *partition) settleBudget(ctx context.Context) bool {
	c := p.c
	p.settle()
	if c.budget.high() {
		c.budget.relieve()
	}
	select {
	case <-p.mem.flushReq:
		p.flushNow(ctx)
	default:
	}
	if !c.budget.over() {
		return true
	}
	start := time.Now()
	err := c.budget.waitBelow(ctx, p.mem, func() { p.flushNow(ctx) })
	c.metrics.waiting.WithLabelValues("budget").Add(time.Since(start).Seconds())
	return err == nil
}

// afterWake runs after a fetch was interrupted (a flush request, the timer, or
// the end): it serves a flush request and, once the timer is due, writes a
// buffer that reached its age or drained and stayed quiet, ticks an empty
// one, and arms the timer again.
func (p *partition) afterWake(ctx context.Context, l *loopState) {
	c := p.c
	select {
	case <-p.mem.flushReq:
		p.flushNow(ctx)
	default:
	}
	now := c.cfg.Now()
	if now.Before(l.armed) {
		return
	}
	quiet := false
	if l.drainArmed && !now.Before(l.drainAt) {
		// Quiet if nothing came after the catch-up; else the next
		// catch-up arms the check again.
		quiet, l.drainArmed = p.buf.rows > 0 && p.buf.next == l.drainNext, false
	}
	switch {
	case p.buf.due(now) || quiet:
		p.handoff(ctx, p.cut())
	case p.buf.rows == 0:
		p.tick(ctx, l.lagLabel)
	}
	next := c.cfg.Now().Add(l.idle)
	if d := p.buf.deadline(); !d.IsZero() {
		next = d
	}
	if l.drainArmed && l.drainAt.Before(next) {
		next = l.drainAt
	}
	l.arm(next)
}

// flushNow serves a flush request from the budget. A request can be stale:
// it was sent while this buffer was the largest, and the buffer has been
// cut since (it filled up, or another request was served). Serving it then
// would write a file of a few rows and hold the flusher; the budget's rule
// (half of it buffered makes the largest buffer flush) is checked again
// instead.
func (p *partition) flushNow(ctx context.Context) {
	if p.buf.rows > 0 && p.c.budget.high() {
		p.handoff(ctx, p.cut())
	}
}

// setWake installs the cancel func of the fetch in progress. A wake that
// came while none was installed cancels the new one at once, so it is not
// lost.
func (p *partition) setWake(cancel context.CancelFunc) {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if p.woken {
		p.woken = false
		cancel()
		return
	}
	p.wakeFn = cancel
}

// clearWake uninstalls the fetch's cancel func once the fetch is over, so
// a later wake is remembered instead of spent on it.
func (p *partition) clearWake() {
	p.wakeMu.Lock()
	p.wakeFn = nil
	p.wakeMu.Unlock()
}

// wake interrupts the partition's fetch so its loop looks at its timer and
// flush requests.
func (p *partition) wake() {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if p.wakeFn != nil {
		p.wakeFn()
		p.wakeFn = nil
		return
	}
	p.woken = true
}

// drainQuiet is how long a partition that caught up with a drainable
// buffer must stay quiet before that buffer is written ahead of its age.
const drainQuiet = 250 * time.Millisecond

// settleBytes is how many buffered bytes a partition collects before it
// adds them to the budget and looks at the budget: the budget's counters
// are shared by every partition, and touching them per record cost more
// than the 64 KiB (per partition) it may now overshoot by.
const settleBytes = 64 << 10

// settle adds the bytes buffered since the last settle to the budget.
func (p *partition) settle() {
	p.c.budget.grow(p.mem, p.unsettled)
	p.unsettled = 0
}

// cut takes the buffer's content as a flush, moving its bytes from
// buffered to in flight.
func (p *partition) cut() *flush {
	p.settle()
	caughtUp := p.hw >= 0 && p.buf.next >= p.hw
	b := p.buf.cut(p.c.cfg.Now(), caughtUp)
	p.c.budget.cut(p.mem, b.bytes)
	return b
}

// handoff gives a flush to the flusher, waiting while the previous one is
// still being written: that wait is the backpressure on consumption.
func (p *partition) handoff(ctx context.Context, b *flush) {
	if b.next < 0 {
		p.c.budget.release(b.bytes)
		return
	}
	select {
	case p.jobs <- b:
	default:
		start := time.Now()
		select {
		case p.jobs <- b:
		case <-ctx.Done():
			// Dropped: its records are above the checkpoint and will
			// be read again.
			p.c.budget.release(b.bytes)
			return
		}
		p.c.metrics.waiting.WithLabelValues("flusher").Add(time.Since(start).Seconds())
	}
	p.published = true
	// nextWatermark moves forward only, or back from a watermark past the
	// wall clock (see there).
	p.lastWM = nextWatermark(p.lastWM, b, p.ti.lateness)
}

// tick runs when the buffer is empty for a while: it learns whether the
// partition is caught up and, if so, publishes a checkpoint with the
// wall-clock watermark, so an idle partition does not hold hours open.
func (p *partition) tick(ctx context.Context, lagLabel interface{ Set(float64) }) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := p.c.client.ListOffsets(qctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		p.topic: {kafka.FirstOffsetOf(int(p.partition)), kafka.LastOffsetOf(int(p.partition))}}})
	if err != nil {
		if ctx.Err() == nil {
			p.c.log.Debug("list offsets", "topic", p.topic, "partition", p.partition, "err", err)
		}
		return
	}
	var po *kafka.PartitionOffsets
	for i, o := range resp.Topics[p.topic] {
		if o.Partition == int(p.partition) {
			po = &resp.Topics[p.topic][i]
		}
	}
	if po == nil || po.Error != nil {
		return
	}
	if p.buf.next < 0 && po.FirstOffset == po.LastOffset {
		p.buf.next = po.LastOffset // empty partition: nothing to read below its end
	}
	if p.buf.next < 0 {
		return
	}
	p.hw = po.LastOffset
	lagLabel.Set(float64(max(p.hw-p.buf.next, 0)))
	b := p.cut()
	if !b.caughtUp {
		p.c.budget.release(b.bytes)
		return
	}
	// Publish only when it moves the watermark (forward, or back from past
	// the wall clock) or none exists yet.
	if wm := nextWatermark(p.lastWM, b, p.ti.lateness); p.published && wm.Equal(p.lastWM) {
		p.c.budget.release(b.bytes)
		return
	}
	p.handoff(ctx, b)
}
