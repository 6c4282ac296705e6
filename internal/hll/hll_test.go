package hll

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// Fixtures in testdata/ were written by Redis 7.0 itself (PFADD, PFCOUNT,
// then GET), so these tests check compatibility without a server.
func TestRedisFixtures(t *testing.T) {
	dense := make([]string, 10000)
	for i := range dense {
		dense[i] = "v" + strconv.Itoa(i)
	}
	tests := []struct {
		file  string
		elems []string
		count uint64 // what Redis's PFCOUNT said
		enc   byte
	}{
		{"sparse_7.hll", []string{"a", "b", "c", "hello", "world", "42", ""}, 7, encSparse},
		{"dense_v0_v9999.hll", dense, 9948, encDense},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if b[4] != tc.enc {
				t.Fatalf("fixture encoding %d, want %d", b[4], tc.enc)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			var want Sketch
			for _, e := range tc.elems {
				want.Add(e)
			}
			if got.regs != want.regs {
				t.Fatal("registers decoded from Redis differ from ours")
			}
			if n := want.Estimate(); n != tc.count {
				t.Errorf("Estimate = %d, Redis PFCOUNT said %d", n, tc.count)
			}
			if n, ok := CachedCardinality(b); !ok || n != tc.count {
				t.Errorf("cached cardinality = %d, %v; want %d", n, ok, tc.count)
			}
			if tc.enc == encDense {
				// Our dense encoding equals Redis's bytes but for the cache.
				m := want.Marshal()
				if !bytes.Equal(m[hdrSize:], b[hdrSize:]) {
					t.Error("dense registers differ from Redis's bytes")
				}
			}
		})
	}
}

func TestEncodeMatchesMarshal(t *testing.T) {
	for _, n := range []int{0, 1, 5, 100, 1000, 3000, 50000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			var s Sketch
			pairs := make([]Pair, 0, n)
			for i := 0; i < n; i++ {
				e := fmt.Sprintf("user-%d", i)
				s.Add(e)
				pairs = append(pairs, Pattern(e), Pattern(e)) // duplicates must not matter
			}
			m := s.Marshal()
			if e := Encode(pairs); !bytes.Equal(e, m) {
				t.Fatalf("Encode and Marshal differ (len %d vs %d)", len(e), len(m))
			}
			back, err := Unmarshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if back.regs != s.regs {
				t.Fatal("round trip changed registers")
			}
			if n == 0 && !back.Empty() {
				t.Fatal("empty sketch decoded as non-empty")
			}
		})
	}
}

// A register above 32 cannot be sparse, however few are set.
func TestHighRankForcesDense(t *testing.T) {
	var s Sketch
	s.regs[7] = 40
	s.regs[9000] = 3
	for _, b := range [][]byte{s.Marshal(), Encode([]Pair{{9000, 3}, {7, 40}})} {
		if b[4] != encDense || len(b) != DenseSize {
			t.Fatalf("encoding %d, len %d; want dense", b[4], len(b))
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.regs != s.regs {
			t.Fatal("registers changed")
		}
	}
}

func TestAppendEncodeSharesBuffer(t *testing.T) {
	var buf []byte
	var ends []int
	sets := [][]string{{"a"}, {"b", "c"}, nil}
	for _, set := range sets {
		var pairs []Pair
		for _, e := range set {
			pairs = append(pairs, Pattern(e))
		}
		buf = AppendEncode(buf, pairs)
		ends = append(ends, len(buf))
	}
	start := 0
	for i, set := range sets {
		var want Sketch
		for _, e := range set {
			want.Add(e)
		}
		got, err := Unmarshal(buf[start:ends[i]])
		if err != nil {
			t.Fatalf("sketch %d: %v", i, err)
		}
		if got.regs != want.regs {
			t.Fatalf("sketch %d differs", i)
		}
		start = ends[i]
	}
}

func TestEstimateAccuracy(t *testing.T) {
	for _, n := range []int{10, 1000, 100000} {
		var s Sketch
		for i := 0; i < n; i++ {
			s.Add("x" + strconv.Itoa(i))
		}
		got := float64(s.Estimate())
		// Standard error is 1.04/sqrt(16384) ≈ 0.81%; allow 4 sigma.
		if rel := math.Abs(got-float64(n)) / float64(n); rel > 0.033 {
			t.Errorf("n=%d: estimate %v off by %.3f", n, got, rel)
		}
	}
}

// EstimateBytes reads the histogram from the encoding: the same figure as
// decoding and estimating, sparse and dense, and the same refusals.
func TestEstimateBytes(t *testing.T) {
	for _, n := range []int{0, 1, 3, 200, 1500, 5000, 200000} {
		var s Sketch
		for i := 0; i < n; i++ {
			s.Add("e" + strconv.Itoa(i))
		}
		for _, b := range [][]byte{s.Marshal(), denseOf(&s)} {
			got, err := EstimateBytes(b)
			if want := s.Estimate(); err != nil || got != want {
				t.Errorf("n=%d encoding %d: EstimateBytes = %d, %v; Estimate = %d", n, b[4], got, err, want)
			}
		}
	}
	var s Sketch
	s.Add("x")
	sparse := s.Marshal()
	for _, b := range [][]byte{nil, sparse[:len(sparse)-1], append(append([]byte(nil), sparse...), 0), append(append([]byte(nil), denseHeader()...), 0)} {
		if _, err := EstimateBytes(b); err == nil {
			t.Errorf("EstimateBytes accepted %q", b)
		}
	}
}

// denseOf is the dense encoding of s, whatever its size.
func denseOf(s *Sketch) []byte {
	b := denseHeader()
	for i, v := range s.regs {
		setDense(b[hdrSize:], i, v)
	}
	return b
}

func TestMergeIsRegisterMax(t *testing.T) {
	var a, b, all Sketch
	for i := 0; i < 20000; i++ {
		e := strconv.Itoa(i)
		all.Add(e)
		if i%2 == 0 {
			a.Add(e)
		} else {
			b.Add(e)
		}
	}
	a.Merge(&b)
	if a.regs != all.regs {
		t.Fatal("merge of halves differs from the whole")
	}
	// Every pair of register values, in every position of a word.
	var x, y Sketch
	for i := range x.regs {
		x.regs[i], y.regs[i] = uint8(i%64), uint8((i/64)%64)
	}
	want := x.regs
	for i := range want {
		want[i] = max(x.regs[i], y.regs[i])
	}
	x0 := x
	if x.Merge(&y); x.regs != want {
		t.Fatal("merge is not the register-wise max")
	}
	// The same through the dense encoding, and through a Union.
	x = x0
	if err := x.MergeBytes(denseOf(&y)); err != nil || x.regs != want {
		t.Fatalf("MergeBytes of a dense encoding is not the register-wise max (err %v)", err)
	}
	var u Union
	u.AddSketch(&x0)
	if err := u.AddBytes(denseOf(&y)); err != nil || u.s.regs != want {
		t.Fatalf("Union.AddBytes of a dense encoding is not the register-wise max (err %v)", err)
	}
	var c Sketch
	if err := c.MergeBytes(b.Marshal()); err != nil {
		t.Fatal(err)
	}
	if c.regs != b.regs {
		t.Fatal("MergeBytes into empty differs")
	}
}

func TestUnmarshalRejects(t *testing.T) {
	var s Sketch
	s.Add("x")
	sparse := s.Marshal()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", []byte("HYLL")},
		{"magic", append([]byte("HXLL"), sparse[4:]...)},
		{"encoding", append(append([]byte("HYLL"), 2), sparse[5:]...)},
		{"dense length", append(append([]byte(nil), denseHeader()...), 0)},
		{"sparse short", sparse[:len(sparse)-1]},
		{"sparse long", append(append([]byte(nil), sparse...), 0)},
		{"xzero truncated", append(append([]byte(nil), sparse[:hdrSize]...), 0x40)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Unmarshal(tc.b); err == nil {
				t.Fatal("accepted invalid bytes")
			}
		})
	}
}

// TestRedisCompatibility is the contract with the speed layer: Redis must
// read our bytes exactly as it reads its own PFADDs.
func TestRedisCompatibility(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for _, n := range []int{3, 200, 5000, 200000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			ours, theirs, merged := testenv.Name("ll:test:hll-ours"), testenv.Name("ll:test:hll-redis"), testenv.Name("ll:test:hll-merged")
			other := testenv.Name("ll:test:hll-other")
			t.Cleanup(func() { rdb.Del(context.Background(), ours, theirs, merged, other) })
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			var s Sketch
			vals := make([]any, 0, 1000)
			flush := func() {
				if len(vals) > 0 {
					if err := rdb.PFAdd(ctx, theirs, vals...).Err(); err != nil {
						t.Fatal(err)
					}
					vals = vals[:0]
				}
			}
			for i := 0; i < n; i++ {
				e := "u" + strconv.FormatUint(rng.Uint64(), 36)
				s.Add(e)
				vals = append(vals, e)
				if len(vals) == cap(vals) {
					flush()
				}
			}
			flush()
			if err := rdb.Set(ctx, ours, s.Marshal(), 0).Err(); err != nil {
				t.Fatal(err)
			}
			cOurs, err := rdb.PFCount(ctx, ours).Result()
			if err != nil {
				t.Fatalf("PFCOUNT of our bytes: %v", err)
			}
			cTheirs, err := rdb.PFCount(ctx, theirs).Result()
			if err != nil {
				t.Fatal(err)
			}
			if cOurs != cTheirs {
				t.Fatalf("PFCOUNT ours=%d redis=%d", cOurs, cTheirs)
			}
			if got := s.Estimate(); int64(got) != cTheirs {
				t.Errorf("Estimate=%d, PFCOUNT=%d", got, cTheirs)
			}
			// What Redis stores decodes to our registers.
			raw, err := rdb.Get(ctx, theirs).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := EstimateBytes(raw); err != nil || int64(got) != cTheirs {
				t.Errorf("EstimateBytes of Redis's bytes (encoding %d) = %d, %v; PFCOUNT=%d", raw[4], got, err, cTheirs)
			}
			back, err := Unmarshal(raw)
			if err != nil {
				t.Fatalf("decode Redis's own HLL (encoding %d): %v", raw[4], err)
			}
			if back.regs != s.regs {
				t.Fatal("Redis's registers differ from ours")
			}
			// PFMERGE of our key with a Redis key of other values.
			for i := 0; i < 100; i++ {
				e := fmt.Sprintf("other-%d", i)
				s.Add(e)
				if err := rdb.PFAdd(ctx, other, e).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := rdb.PFMerge(ctx, merged, ours, other).Err(); err != nil {
				t.Fatalf("PFMERGE with our key: %v", err)
			}
			cMerged, err := rdb.PFCount(ctx, merged).Result()
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(s.Estimate()); cMerged != want {
				t.Fatalf("PFCOUNT after PFMERGE = %d, our merged estimate %d", cMerged, want)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, name := range []string{"sparse_7.hll", "dense_v0_v9999.hll"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		n, errB := EstimateBytes(b)
		if (err == nil) != (errB == nil) {
			t.Fatalf("Unmarshal: %v, EstimateBytes: %v", err, errB)
		}
		if err != nil {
			return
		}
		if n != s.Estimate() {
			t.Fatalf("EstimateBytes %d, Estimate %d", n, s.Estimate())
		}
		// Whatever decodes re-encodes to the same registers.
		back, err := Unmarshal(s.Marshal())
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if back.regs != s.regs {
			t.Fatal("re-encoding changed registers")
		}
		// A Union of it alone, and its histogram under an empty union,
		// count the same registers.
		var u Union
		if err := u.AddBytes(b); err != nil {
			t.Fatalf("Unmarshal accepted what Union.AddBytes refuses: %v", err)
		}
		if u.Estimate() != n {
			t.Fatalf("Union estimate %d, EstimateBytes %d", u.Estimate(), n)
		}
		h := s.Histogram()
		var empty Union
		if got := empty.EstimateOver(s, &h); got != n {
			t.Fatalf("EstimateOver an empty union %d, EstimateBytes %d", got, n)
		}
	})
}

func BenchmarkPattern(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		_ = Pattern("user_id-12345")
	}
}

func BenchmarkEncode(b *testing.B) {
	pairs := make([]Pair, 20)
	for i := range pairs {
		pairs[i] = Pattern(strconv.Itoa(i))
	}
	work := make([]Pair, len(pairs))
	for b.Loop() {
		copy(work, pairs)
		_ = Encode(work)
	}
}

// A Union estimates exactly what merging the same sketches into registers
// does (PFCOUNT over several keys), small or dense, and starts empty again
// after Reset.
func TestUnion(t *testing.T) {
	sketch := func(lo, hi int) *Sketch { return sketchOfRange("u", lo, hi) }
	tests := []struct {
		name   string
		ranges [][2]int
		dense  bool // the last one added as a Sketch
	}{
		{"nothing", nil, false},
		{"one small", [][2]int{{0, 5}}, false},
		{"small overlapping", [][2]int{{0, 50}, {25, 80}, {70, 71}}, false},
		{"past what it tracks", [][2]int{{0, 1500}, {1000, 4000}}, false},
		{"a dense encoding", [][2]int{{0, 10}, {0, 100000}}, false},
		{"with a sketch", [][2]int{{0, 10}, {5, 300}}, true},
	}
	var u Union
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u.Reset()
			var want Sketch
			for k, r := range tt.ranges {
				s := sketch(r[0], r[1])
				want.Merge(s)
				if tt.dense && k == len(tt.ranges)-1 {
					u.AddSketch(s)
					continue
				}
				if err := u.AddBytes(s.Marshal()); err != nil {
					t.Fatal(err)
				}
			}
			if got := u.Estimate(); got != want.Estimate() {
				t.Errorf("Union estimate %d, merged registers %d", got, want.Estimate())
			}
		})
	}
	var s Sketch
	s.Add("x")
	if b := s.Marshal(); u.AddBytes(b[:len(b)-1]) == nil {
		t.Error("a truncated sketch was accepted")
	}
	u.Reset()
	if u.Estimate() != 0 {
		t.Error("Reset left registers set")
	}
}

// TestEstimateOver: the estimate of a Union over a base sketch, from the
// base's histogram, is the estimate of the merged registers, whether the
// union is small, overlaps the base's registers, or is dense; and neither
// side changes.
func TestEstimateOver(t *testing.T) {
	sketch := func(lo, hi int) *Sketch { return sketchOfRange("o", lo, hi) }
	tests := []struct {
		name   string
		base   [2]int
		ranges [][2]int
	}{
		{"empty base, empty union", [2]int{0, 0}, nil},
		{"empty union", [2]int{0, 20000}, nil},
		{"empty base", [2]int{0, 0}, [][2]int{{0, 40}}},
		{"new registers", [2]int{0, 500}, [][2]int{{1000, 1040}}},
		{"the base's own elements", [2]int{0, 500}, [][2]int{{0, 40}, {100, 140}}},
		{"lower than the base's registers", [2]int{0, 200000}, [][2]int{{0, 300}}},
		{"past what a union tracks", [2]int{0, 3000}, [][2]int{{2000, 6000}}},
		{"a dense encoding", [2]int{50000, 60000}, [][2]int{{0, 100000}}},
	}
	var u Union
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := sketch(tt.base[0], tt.base[1])
			before := *base
			h := base.Histogram()
			want := *base
			u.Reset()
			for _, r := range tt.ranges {
				s := sketch(r[0], r[1])
				want.Merge(s)
				c, err := Check(s.Marshal())
				if err != nil {
					t.Fatal(err)
				}
				u.AddChecked(c)
			}
			alone := u.Estimate()
			if got := u.EstimateOver(base, &h); got != want.Estimate() {
				t.Errorf("EstimateOver %d, merged registers %d", got, want.Estimate())
			}
			if *base != before {
				t.Error("the base changed")
			}
			if u.Estimate() != alone {
				t.Error("the union changed")
			}
		})
	}
}

// TestCheck: Check accepts what Marshal makes and refuses what MergeBytes
// refuses, so a Checked merge never reads a malformed encoding.
func TestCheck(t *testing.T) {
	var s Sketch
	for i := range 100 {
		s.Add(strconv.Itoa(i))
	}
	good := s.Marshal()
	if _, err := Check(good); err != nil {
		t.Fatalf("Check of Marshal: %v", err)
	}
	bad := map[string][]byte{
		"truncated":     good[:len(good)-1],
		"header only":   good[:hdrSize],
		"bad magic":     append([]byte("HYLX"), good[4:]...),
		"bad encoding":  append(append([]byte("HYLL"), 7), good[5:]...),
		"short dense":   denseOf(&s)[:DenseSize-1],
		"runs past end": append(slices.Clone(good), 0x7f, 0xff),
	}
	for name, b := range bad {
		_, cerr := Check(b)
		merr := new(Sketch).MergeBytes(b)
		if cerr == nil || merr == nil {
			t.Errorf("%s: Check %v, MergeBytes %v: both must refuse it", name, cerr, merr)
		}
	}
}

// BenchmarkSparseBytes: what serving does with the sketches of a query —
// union 16 sparse cell sketches (50 values each) and estimate, and
// estimate one encoding alone.
func BenchmarkSparseBytes(b *testing.B) {
	var encs [][]byte
	for k := range 16 {
		pairs := make([]Pair, 50)
		for i := range pairs {
			pairs[i] = Pattern(strconv.Itoa(k*1000 + i))
		}
		encs = append(encs, Encode(pairs))
	}
	b.Run("union", func(b *testing.B) {
		var u Union
		for b.Loop() {
			u.Reset()
			for _, e := range encs {
				u.AddBytes(e)
			}
			_ = u.Estimate()
		}
	})
	b.Run("merge", func(b *testing.B) {
		var s Sketch
		for b.Loop() {
			for _, e := range encs {
				s.MergeBytes(e)
			}
		}
	})
	b.Run("estimate", func(b *testing.B) {
		for b.Loop() {
			EstimateBytes(encs[0])
		}
	})
	// A live unit's estimate: a large base with a few new cell sketches.
	var base Sketch
	for i := range 100000 {
		base.Add(strconv.Itoa(-i))
	}
	checked := make([]Checked, len(encs))
	for i, e := range encs {
		checked[i], _ = Check(e)
	}
	b.Run("union-with-base", func(b *testing.B) {
		var u Union
		for b.Loop() {
			u.Reset()
			u.AddSketch(&base)
			for _, e := range encs {
				u.AddBytes(e)
			}
			_ = u.Estimate()
		}
	})
	b.Run("estimate-over-base", func(b *testing.B) {
		var u Union
		h := base.Histogram()
		for b.Loop() {
			u.Reset()
			for _, e := range checked {
				u.AddChecked(e)
			}
			_ = u.EstimateOver(&base, &h)
		}
	})
}

// BenchmarkMergeDense: a busy cell's dense sketch merged into a rollup's
// registers, as the speed reader does for every cell of a live bucket.
func BenchmarkMergeDense(b *testing.B) {
	var s Sketch
	for i := range 100000 {
		s.Add(strconv.Itoa(i))
	}
	enc, err := Check(denseOf(&s))
	if err != nil {
		b.Fatal(err)
	}
	var dst Sketch
	for b.Loop() {
		dst.MergeChecked(enc)
	}
}

// sketchOfRange counts the elements prefix+i for i in [lo, hi).
func sketchOfRange(prefix string, lo, hi int) *Sketch {
	var s Sketch
	for i := lo; i < hi; i++ {
		s.Add(prefix + strconv.Itoa(i))
	}
	return &s
}

// Marshal skips zero registers a word at a time and packs dense registers
// eight at a time: whatever the registers, it decodes back to them, and a
// dense result is byte for byte the register-at-a-time encoding.
func TestMarshalRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		set  func(s *Sketch)
	}{
		{"empty", func(s *Sketch) {}},
		{"register 0", func(s *Sketch) { s.regs[0] = 1 }},
		{"registers around a word's ends", func(s *Sketch) { s.regs[7], s.regs[8], s.regs[15], s.regs[16] = 3, 4, 5, 6 }},
		{"the last register", func(s *Sketch) { s.regs[Registers-1] = 32 }},
		{"every eighth", func(s *Sketch) {
			for i := 0; i < Registers; i += 8 {
				s.regs[i] = 2
			}
		}},
		{"a few at random", func(s *Sketch) {
			for range 100 {
				s.regs[rng.IntN(Registers)] = uint8(1 + rng.IntN(32))
			}
		}},
		{"every value, dense", func(s *Sketch) {
			for i := range s.regs {
				s.regs[i] = uint8(i % 64)
			}
		}},
		{"all set, dense", func(s *Sketch) {
			for i := range s.regs {
				s.regs[i] = uint8(1 + rng.IntN(20))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sketch
			tt.set(&s)
			enc := s.Marshal()
			back, err := Unmarshal(enc)
			if err != nil || back.regs != s.regs {
				t.Fatalf("Marshal does not decode back to its registers (err %v)", err)
			}
			if enc[4] == encDense && !bytes.Equal(enc, denseOf(&s)) {
				t.Fatal("dense Marshal differs from the register-at-a-time encoding")
			}
		})
	}
}

// BenchmarkMarshal: a cube cell's merged sketch written back as one
// encoding, sparse (200 elements) and dense (100,000).
func BenchmarkMarshal(b *testing.B) {
	for _, n := range []int{200, 100000} {
		s := sketchOfRange("m", 0, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				_ = s.Marshal()
			}
		})
	}
}
