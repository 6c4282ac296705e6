package speed

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestFPSet(t *testing.T) {
	tests := []struct {
		name string
		fps  []uint64 // inserted in order
		miss []uint64 // never inserted
	}{
		{"one", []uint64{42}, []uint64{43, 1}},
		{"same low bits, other high bits (one probe chain)", []uint64{7, 7 + 256, 7 + 512, 7 + 1<<40}, []uint64{7 + 768, 8}},
		{"wrapping at the table's end", []uint64{255, 255 + 256, 255 + 512}, []uint64{0 + 256}},
		{"past several doublings", seq(5000, 1), seq(100, 1<<62)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFPSet(fpMinSlots)
			for k, fp := range tt.fps {
				if s.full() {
					s.grow()
				}
				i, found := s.find(fp)
				if found {
					t.Fatalf("%x found before it was added", fp)
				}
				s.slots[i] = fp
				s.n++
				if (s.n)*4 > len(s.slots)*3 {
					t.Fatalf("after %d ids the table of %d slots is over 3/4 full", k+1, len(s.slots))
				}
			}
			for _, fp := range tt.fps {
				if _, found := s.find(fp); !found {
					t.Errorf("%x lost", fp)
				}
			}
			for _, fp := range tt.miss {
				if _, found := s.find(fp); found {
					t.Errorf("%x found, never added", fp)
				}
			}
			if s.bytes() != int64(len(s.slots))*8 || len(s.slots)&(len(s.slots)-1) != 0 {
				t.Errorf("%d slots, %d bytes", len(s.slots), s.bytes())
			}
		})
	}
}

func seq(n int, from uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = from + uint64(i)*0x9e3779b97f4a7c15
	}
	return out
}

// step is one event through a window: its id, its event hour (hours from
// h0), the wall clock (minutes after h0), and whether it must be seen as
// a copy.
type step struct {
	id    string
	hour  int
	now   int // minutes after h0
	dup   bool
	bytes int64 // if > 0: the window's bytes after the step
}

func TestDedupWindow(t *testing.T) {
	const minTable = fpMinSlots * 8
	// many are n distinct ids of one hour.
	many := func(prefix string, n, hour, now int) []step {
		var out []step
		for i := range n {
			out = append(out, step{id: fmt.Sprintf("%s%d", prefix, i), hour: hour, now: now})
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name                 string
		window               time.Duration
		budget               int64
		steps                []step
		shrunk, unremembered int64
	}{
		{name: "a repeat in its hour is a copy; another id or hour is not", window: 2 * time.Hour, budget: 1 << 20, steps: []step{
			{id: "a", hour: 0, now: 10}, {id: "a", hour: 0, now: 20, dup: true}, {id: "b", hour: 0, now: 20},
			{id: "a", hour: 1, now: 70}, {id: "a", hour: 1, now: 71, dup: true}, {id: "a", hour: 0, now: 72, dup: true},
		}},
		{name: "an hour is held until it ended dedup_window ago", window: 2 * time.Hour, budget: 1 << 20, steps: []step{
			{id: "a", hour: 0, now: 10},
			{id: "a", hour: 0, now: 179, dup: true}, // hour 0 ended 1h59m ago
			{id: "a", hour: 0, now: 180},            // ended 2h ago: out, and not remembered
			{id: "a", hour: 0, now: 181},
		}},
		{name: "a short window still holds the current hour", window: 10 * time.Minute, budget: 1 << 20, steps: []step{
			{id: "a", hour: 0, now: 0}, {id: "a", hour: 0, now: 59, dup: true},
			{id: "a", hour: 0, now: 69, dup: true}, // the previous hour, 9m after its end
			{id: "a", hour: 0, now: 70},
		}},
		{name: "an event of an hour before the window is neither checked nor remembered", window: time.Hour, budget: 1 << 20, steps: []step{
			{id: "old", hour: -2, now: 30}, {id: "old", hour: -2, now: 31}, {id: "new", hour: 0, now: 31},
			{id: "new", hour: 0, now: 32, dup: true, bytes: minTable},
		}},
		{name: "future hours are held too", window: time.Hour, budget: 1 << 20, steps: []step{
			{id: "f", hour: 1, now: 55}, {id: "f", hour: 1, now: 56, dup: true}, {id: "f", hour: 0, now: 57},
		}},
		{name: "past the bound the oldest hour goes first", window: 3 * time.Hour, budget: 2 * minTable,
			steps: cat(
				[]step{{id: "a", hour: -2, now: 10}, {id: "b", hour: -1, now: 10}, {id: "c", hour: 0, now: 10, bytes: 2 * minTable}},
				[]step{{id: "a", hour: -2, now: 11}},            // dropped: out of the window now, not remembered
				[]step{{id: "b", hour: -1, now: 11, dup: true}}, // kept
				[]step{{id: "c", hour: 0, now: 11, dup: true}},
			), shrunk: 1},
		{name: "a growing hour drops older ones", window: 3 * time.Hour, budget: 2*minTable + 1024,
			steps: cat(
				[]step{{id: "old", hour: -1, now: 5}},
				many("n", 192, 0, 5), // fills hour 0's table to 3/4
				[]step{{id: "grow", hour: 0, now: 6, bytes: 2 * minTable}},
				[]step{{id: "old", hour: -1, now: 7}, {id: "n0", hour: 0, now: 7, dup: true}, {id: "grow", hour: 0, now: 7, dup: true}},
			), shrunk: 1},
		{name: "no room even alone: ids are not remembered, those before still are", window: time.Hour, budget: minTable,
			steps: cat(
				many("n", 192, 0, 5),
				[]step{{id: "x", hour: 0, now: 6}, {id: "x", hour: 0, now: 6}, {id: "n191", hour: 0, now: 6, dup: true, bytes: minTable}},
			), unremembered: 2},
		{name: "a late hour never pushes out newer ones", window: 3 * time.Hour, budget: minTable, steps: []step{
			{id: "now", hour: 0, now: 5}, {id: "late", hour: -1, now: 6}, {id: "late", hour: -1, now: 7},
			{id: "now", hour: 0, now: 8, dup: true},
		}, unremembered: 2},
	}
	h0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC).UnixMicro()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newDedupWindow(tt.window, tt.budget, quiet)
			for k, st := range tt.steps {
				now := h0 + int64(st.now)*int64(time.Minute/time.Microsecond)
				if got := w.seen([]byte(st.id), h0+int64(st.hour)*hourMicros, now); got != st.dup {
					t.Fatalf("step %d (%s, hour %d, +%dm): copy = %v, want %v", k, st.id, st.hour, st.now, got, st.dup)
				}
				if st.bytes > 0 && w.bytes != st.bytes {
					t.Fatalf("step %d: %d bytes, want %d", k, w.bytes, st.bytes)
				}
				if w.bytes > tt.budget {
					t.Fatalf("step %d: %d bytes over the bound %d", k, w.bytes, tt.budget)
				}
			}
			if w.shrunk != tt.shrunk || w.unremembered != tt.unremembered {
				t.Errorf("shrunk %d hours, %d ids unremembered; want %d and %d", w.shrunk, w.unremembered, tt.shrunk, tt.unremembered)
			}
			var ids int64
			for _, h := range w.hours {
				ids += int64(h.set.n)
			}
			if ids != w.ids {
				t.Errorf("ids = %d, the hours hold %d", w.ids, ids)
			}
		})
	}
}

// BenchmarkDedup is the window's cost per event: 64-bit fingerprint of the
// id text, lookup and insert, 3% repeats, a new hour every 500,000 events.
func BenchmarkDedup(b *testing.B) {
	w := newDedupWindow(2*time.Hour, 256<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "order-%016x", rng.Uint64())
	}
	h0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC).UnixMicro()
	key := make([]byte, 0, 32)
	dups := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		hour := h0 + int64(i/500_000)*hourMicros
		if rng.IntN(100) < 3 {
			key = append(key[:0], keys[rng.IntN(len(keys))]...) // may or may not have been seen
		} else {
			key = strconv.AppendInt(append(key[:0], "id-"...), int64(i), 10)
		}
		if w.seen(key, hour, hour+30*int64(time.Minute/time.Microsecond)) {
			dups++
		}
	}
	b.ReportMetric(float64(w.bytes)/float64(max(w.ids, 1)), "bytes/id")
}
