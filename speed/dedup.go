package speed

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/lambdalake/lambdalake/internal/backoff"
	"github.com/lambdalake/lambdalake/schemas"
)

// De-duplication (schemas.NAME.dedup_window): each partition loop keeps a
// dedupWindow, the fingerprints of the ids it applied, one set per UTC
// event hour, because that is the batch layer's duplicate rule
// (schemas.Schema.SameEvent: same id, same event hour). A record whose
// fingerprint its hour's set already holds is skipped as a duplicate.
//
// The window is in event time and counted in whole hours: an hour is held
// while it ended less than dedup_window ago by the wall clock (the current
// hour always). So every bucket of a held hour equals what recompute will
// write, however far apart its copies arrived. An event of an hour no
// longer held is neither checked nor remembered: it is counted, as it
// would be without de-duplication.
//
// Memory is bounded per partition (speed.dedup_max_bytes shared evenly by
// the partitions of a generation). A set that must grow past the bound
// first drops the partition's oldest hours (older than its own), the
// window shrinking from its old end; if that is not enough, the id is not
// remembered (its copies will be counted). Both are counted in metrics and
// logged.

// fpSet is a set of 64-bit fingerprints: open addressing with linear
// probing, 0 marks an empty slot, at most 3/4 full. 8 bytes a slot, so
// 10.7 to 21.3 bytes an id; its size is what the bound counts.
type fpSet struct {
	slots []uint64
	n     int
}

// fpMinSlots is a new hour's table: 2 KiB.
const fpMinSlots = 256

func newFPSet(slots int) fpSet { return fpSet{slots: make([]uint64, slots)} }

func (s *fpSet) bytes() int64 { return int64(len(s.slots)) * 8 }

// find returns fp's slot, or the empty slot where it would go.
func (s *fpSet) find(fp uint64) (int, bool) {
	mask := uint64(len(s.slots) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case fp:
			return int(i), true
		case 0:
			return int(i), false
		}
	}
}

// full reports whether one more id would pass the load factor.
func (s *fpSet) full() bool { return (s.n+1)*4 > len(s.slots)*3 }

// grow doubles the table.
func (s *fpSet) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	for _, fp := range old {
		if fp != 0 {
			i, _ := s.find(fp)
			s.slots[i] = fp
		}
	}
}

// fingerprint hashes an id's text. The seed is the process's: fingerprints
// are never stored, a restarted worker reads its window back from Kafka.
func fingerprint(seed maphash.Seed, key []byte) uint64 {
	fp := maphash.Bytes(seed, key)
	if fp == 0 {
		fp = 1 // 0 marks an empty slot
	}
	return fp
}

var fpSeed = maphash.MakeSeed()

type dedupHour struct {
	start int64 // Unix µs, on the hour
	set   fpSet
	full  bool // could not grow within the bound (logged once)
}

// dedupWindow is one partition's memory of applied ids. It is used by its
// partition loop only, under the partition's lock (the flusher reads the
// figures).
type dedupWindow struct {
	window int64 // µs
	budget int64 // bytes
	log    *slog.Logger

	hours []*dedupHour // by start, ascending
	// floor: hours before it are neither checked nor remembered (out of
	// the window, or dropped to keep within the budget).
	floor int64
	bytes int64
	ids   int64

	// Since the flusher last read them.
	shrunk       int64 // hours dropped to stay within the budget
	unremembered int64 // ids not remembered: no room even without older hours
	replayed     int64 // records read back to rebuild the window
}

const hourMicros = int64(time.Hour / time.Microsecond)

func newDedupWindow(window time.Duration, budget int64, log *slog.Logger) *dedupWindow {
	return &dedupWindow{window: window.Microseconds(), budget: budget, log: log, floor: math.MinInt64}
}

// reset forgets everything: the partition is about to read its window back.
func (w *dedupWindow) reset() {
	w.hours, w.floor, w.bytes, w.ids = nil, math.MinInt64, 0, 0
}

// seen reports whether an event of the given id text and event hour (Unix
// µs) was applied before within the window; if not, it remembers it. now
// is the wall clock (Unix µs).
func (w *dedupWindow) seen(key []byte, hour, now int64) bool {
	w.expire(now)
	if hour < w.floor {
		return false
	}
	h := w.hour(hour)
	if h == nil {
		w.unremembered++
		return false
	}
	fp := fingerprint(fpSeed, key)
	i, found := h.set.find(fp)
	if found {
		return true
	}
	if h.set.full() {
		if !w.makeRoom(h.set.bytes(), hour) {
			w.unremembered++
			if !h.full {
				h.full = true
				w.log.Warn("dedup window at its memory bound: ids of this hour are no longer remembered, their copies will be counted until batch replaces the hour",
					"hour", time.UnixMicro(hour).UTC(), "ids", h.set.n, "bytes", w.bytes, "bound", w.budget)
			}
			return false
		}
		w.bytes += h.set.bytes()
		h.set.grow()
		i, _ = h.set.find(fp)
	}
	h.set.slots[i] = fp
	h.set.n++
	w.ids++
	return false
}

// expire drops the hours that ended dedup_window or longer ago.
func (w *dedupWindow) expire(now int64) {
	if lo := schemas.Floor(now-w.window, hourMicros); lo > w.floor {
		w.floor = lo
		for len(w.hours) > 0 && w.hours[0].start < lo {
			w.drop()
		}
	}
}

// hour returns the set of the hour starting at start, made if needed; nil
// when there is no room for it.
func (w *dedupWindow) hour(start int64) *dedupHour {
	k := len(w.hours)
	for k > 0 && w.hours[k-1].start >= start {
		if w.hours[k-1].start == start {
			return w.hours[k-1]
		}
		k--
	}
	if !w.makeRoom(fpMinSlots*8, start) {
		return nil
	}
	// makeRoom may have dropped hours before k.
	k = 0
	for k < len(w.hours) && w.hours[k].start < start {
		k++
	}
	h := &dedupHour{start: start, set: newFPSet(fpMinSlots)}
	w.hours = append(w.hours, nil)
	copy(w.hours[k+1:], w.hours[k:])
	w.hours[k] = h
	w.bytes += h.set.bytes()
	return h
}

// makeRoom drops the oldest hours, older than hour, until extra bytes fit
// in the budget; it reports whether they do.
func (w *dedupWindow) makeRoom(extra, hour int64) bool {
	for w.bytes+extra > w.budget && len(w.hours) > 0 && w.hours[0].start < hour {
		h := w.hours[0]
		w.log.Warn("dedup window at its memory bound: dropping its oldest hour, the window shrinks (copies of that hour's events will be counted until batch replaces the hour)",
			"hour", time.UnixMicro(h.start).UTC(), "ids", h.set.n, "bytes", w.bytes, "bound", w.budget)
		w.drop()
		w.floor = max(w.floor, h.start+hourMicros)
		w.shrunk++
	}
	return w.bytes+extra <= w.budget
}

// drop forgets the oldest hour.
func (w *dedupWindow) drop() {
	h := w.hours[0]
	w.bytes -= h.set.bytes()
	w.ids -= int64(h.set.n)
	w.hours[0] = nil
	w.hours = w.hours[1:]
}

// readBackFrom is the Kafka record time from which a partition reads its
// window back: every admitted record of an event hour still held was
// written at most max_future before its event time, so none is older than
// the oldest held hour - max_future (dedupReadBackSlack more for clocks
// and records admitted late).
func readBackFrom(s *schemas.Schema, now time.Time) time.Time {
	mf := s.MaxFuture
	if mf <= 0 {
		mf = schemas.DefaultMaxFuture
	}
	return schemas.FloorTime(now.Add(-s.DedupWindow), time.Hour).Add(-mf - dedupReadBackSlack)
}

const dedupReadBackSlack = 5 * time.Minute

// remember passes an admitted event through its partition's window (the
// caller holds p.mu): dup is true for a copy of an event applied before.
// key is scratch space, returned for reuse.
func (tr *topicRun) remember(p *partition, key []byte, row *schemas.Row, now int64) (_ []byte, dup bool) {
	key, hour, _ := tr.tv.schema.AppendDedupKey(key[:0], row)
	return key, p.dedup.seen(key, hour, now)
}

// readBackOffset is the first offset of a partition whose record time is
// at or after readBackFrom, retrying Kafka errors; ok is false when ctx
// ends first.
func (tr *topicRun) readBackOffset(ctx context.Context, p *partition) (off int64, ok bool) {
	t := readBackFrom(tr.tv.schema, tr.w.cfg.Now())
	err := backoff.Retry(ctx, backoff.Default, func(ctx context.Context) (err error) {
		off, err = offsetAt(ctx, tr.w.cfg.Brokers, tr.tv.topic, p.id, t)
		return err
	}, func(_ int, err error) {
		p.log.Warn("finding where the dedup window starts in Kafka failed; retrying", "err", err)
	})
	return off, err == nil
}

// reportDedup moves a partition's window figures to the metrics (the
// caller holds p.mu).
func (tr *topicRun) reportDedup(p *partition) {
	m, d, part := tr.w.m, p.dedup, strconv.Itoa(p.id)
	m.dedupBytes.WithLabelValues(tr.tv.topic, part).Set(float64(d.bytes))
	m.dedupIDs.WithLabelValues(tr.tv.topic, part).Set(float64(d.ids))
	if d.floor != math.MinInt64 {
		m.dedupStart.WithLabelValues(tr.tv.topic, part).Set(float64(d.floor / 1e6))
	}
	m.dedupShrunk.WithLabelValues(tr.tv.topic).Add(float64(d.shrunk))
	m.dedupUnremembered.WithLabelValues(tr.tv.topic).Add(float64(d.unremembered))
	m.dedupReplayed.WithLabelValues(tr.tv.topic).Add(float64(d.replayed))
	d.shrunk, d.unremembered, d.replayed = 0, 0, 0
}

// forgetDedupGauges drops a partition's gauges when its loop ends: its
// window's memory is gone with it.
func (tr *topicRun) forgetDedupGauges(p *partition) {
	m, part := tr.w.m, strconv.Itoa(p.id)
	m.dedupBytes.DeleteLabelValues(tr.tv.topic, part)
	m.dedupIDs.DeleteLabelValues(tr.tv.topic, part)
	m.dedupStart.DeleteLabelValues(tr.tv.topic, part)
}
