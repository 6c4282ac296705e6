// Package hll is a HyperLogLog sketch that is bit-for-bit Redis's own
// (hyperloglog.c): 16384 6-bit registers, MurmurHash64A with seed
// 0xadc83b19, and Redis's "HYLL" dense and sparse encodings.
//
// Why a package of our own: the speed layer counts `uniq` metrics with Redis
// PFADD, and the batch layer stores one sketch per view row beside the exact
// distinct count (DESIGN §1). When a query rolls buckets or dimensions up
// across the boundary B, serving must merge batch sketches with Redis's. That
// only works if both hash and lay out registers the same way, and no Go
// library produces Redis's format. A sketch Marshal()ed here can be SET into
// Redis and PFCOUNTed or PFMERGEd there, and a Redis HLL read with GET can be
// Unmarshal()ed and merged here.
package hll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Parameters of Redis's HyperLogLog.
const (
	P         = 14     // index bits
	Registers = 1 << P // 16384
	q         = 64 - P // bits left for the rank
	regBits   = 6      // bits per dense register
	regMax    = 1<<regBits - 1
	hdrSize   = 16 // "HYLL", encoding, 3 unused, 8-byte cached cardinality
	denseRegs = Registers * regBits / 8
	// DenseSize is the length of a dense encoding: header plus 12288 bytes.
	DenseSize = hdrSize + denseRegs
	// sparseMaxBytes is Redis's default hll-sparse-max-bytes: past it Redis
	// itself promotes a sketch to dense, so we do the same.
	sparseMaxBytes = 3000
	sparseValMax   = 32 // the largest register value the sparse VAL opcode holds

	encDense  = 0
	encSparse = 1
)

// seed is the MurmurHash64A seed Redis hashes PFADD elements with.
const seed = 0xadc83b19

// Hash is MurmurHash64A (Austin Appleby) of s with Redis's seed, on a
// little-endian machine, which is what Redis's PFADD computes.
func Hash(s string) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	n := len(s)
	h := uint64(seed) ^ (uint64(n) * m)
	i := 0
	for ; i+8 <= n; i += 8 {
		k := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
	}
	if rest := n - i; rest > 0 {
		for j := rest - 1; j >= 0; j-- {
			h ^= uint64(s[i+j]) << (8 * j)
		}
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// Pair is the register an element lands in and the rank it sets there.
type Pair struct {
	Index uint16
	Rank  uint8
}

// Pattern returns the register and rank of an element, as Redis's
// hllPatLen: the low 14 bits of the hash pick the register, the rank is one
// plus the trailing zeros of the rest (capped at 51).
func Pattern(s string) Pair {
	h := Hash(s)
	idx := uint16(h & (Registers - 1))
	h >>= P
	h |= 1 << q
	rank := uint8(1)
	for h&1 == 0 {
		rank++
		h >>= 1
	}
	return Pair{Index: idx, Rank: rank}
}

// Sketch is a HyperLogLog with one byte per register (16 KiB). The zero
// value is an empty sketch. Not safe for concurrent use.
type Sketch struct {
	regs [Registers]uint8
}

// Add counts one element.
func (s *Sketch) Add(elem string) {
	p := Pattern(elem)
	if p.Rank > s.regs[p.Index] {
		s.regs[p.Index] = p.Rank
	}
}

// Merge folds o into s: each register becomes the larger of the two.
func (s *Sketch) Merge(o *Sketch) {
	// Eight registers at a time: they are below 128, so a subtraction per
	// byte with the top bit set beforehand tells which one is larger.
	const hi = 0x8080808080808080
	for i := 0; i < Registers; i += 8 {
		a := binary.LittleEndian.Uint64(s.regs[i:])
		b := binary.LittleEndian.Uint64(o.regs[i:])
		ge := ((a | hi) - b) & hi // top bit of each byte: a >= b
		mask := (ge >> 7) * 0xff
		binary.LittleEndian.PutUint64(s.regs[i:], a&mask|b&^mask)
	}
}

// mergeDense folds dense registers (denseRegs bytes) into s, eight at a
// time: six bytes hold eight 6-bit registers, spread to a byte each and
// compared as Merge does. A register at a time took a quarter of the
// server's CPU in bench mixed, where every busy cell's sketch is dense.
func (s *Sketch) mergeDense(regs []byte) {
	const hi = 0x8080808080808080
	_ = regs[denseRegs-1]
	for i, j := 0, 0; i < Registers; i, j = i+8, j+6 {
		x := uint64(regs[j]) | uint64(regs[j+1])<<8 | uint64(regs[j+2])<<16 |
			uint64(regs[j+3])<<24 | uint64(regs[j+4])<<32 | uint64(regs[j+5])<<40
		b := x&63 | (x>>6&63)<<8 | (x>>12&63)<<16 | (x>>18&63)<<24 |
			(x>>24&63)<<32 | (x>>30&63)<<40 | (x>>36&63)<<48 | (x>>42&63)<<56
		a := binary.LittleEndian.Uint64(s.regs[i:])
		ge := ((a | hi) - b) & hi
		mask := (ge >> 7) * 0xff
		binary.LittleEndian.PutUint64(s.regs[i:], a&mask|b&^mask)
	}
}

// Empty reports whether no element was added.
func (s *Sketch) Empty() bool {
	for _, v := range s.regs {
		if v != 0 {
			return false
		}
	}
	return true
}

// Marshal encodes the sketch as Redis stores it: sparse while that is
// smaller and allowed (every register ≤ 32, at most 3000 bytes), dense
// otherwise. The cached cardinality is marked invalid, so Redis recomputes it.
func (s *Sketch) Marshal() []byte {
	w := sparseWriter{b: header(encSparse, hdrSize+64)}
	for i := 0; i < Registers; i++ {
		// A sparse sketch is mostly zero registers: skip them a word at a
		// time.
		if i&7 == 0 && binary.LittleEndian.Uint64(s.regs[i:]) == 0 {
			i += 7
			continue
		}
		if v := s.regs[i]; v != 0 && !w.add(i, v) {
			break
		}
	}
	if b, ok := w.finish(); ok {
		return b
	}
	b := denseHeader()
	packDense(b[hdrSize:], &s.regs)
	return b
}

// packDense writes registers in the dense encoding, eight at a time into
// six bytes (the inverse of mergeDense's spreading).
func packDense(dst []byte, regs *[Registers]uint8) {
	_ = dst[denseRegs-1]
	for i, j := 0, 0; i < Registers; i, j = i+8, j+6 {
		r := binary.LittleEndian.Uint64(regs[i:])
		x := r&63 | (r>>8&63)<<6 | (r>>16&63)<<12 | (r>>24&63)<<18 |
			(r>>32&63)<<24 | (r>>40&63)<<30 | (r>>48&63)<<36 | (r>>56&63)<<42
		dst[j], dst[j+1], dst[j+2] = byte(x), byte(x>>8), byte(x>>16)
		dst[j+3], dst[j+4], dst[j+5] = byte(x>>24), byte(x>>32), byte(x>>40)
	}
}

// Encode returns the encoding (as Marshal) of a sketch holding exactly the
// given pairs. pairs is sorted in place.
func Encode(pairs []Pair) []byte { return AppendEncode(nil, pairs) }

// AppendEncode appends to dst the encoding (as Marshal) of a sketch holding
// exactly the given pairs, without building a 16 KiB sketch first: the batch
// layer makes one sketch per view row, most with few elements, and appends
// them all to one buffer. pairs is sorted in place.
func AppendEncode(dst []byte, pairs []Pair) []byte {
	if len(pairs) > 1 {
		slices.SortFunc(pairs, func(a, b Pair) int { return int(a.Index) - int(b.Index) })
	}
	start := len(dst)
	w := sparseWriter{b: append(dst, header(encSparse, hdrSize)...), start: start}
	ok := true
	for i := 0; i < len(pairs) && ok; {
		j, best := i+1, pairs[i].Rank
		for ; j < len(pairs) && pairs[j].Index == pairs[i].Index; j++ {
			best = max(best, pairs[j].Rank)
		}
		ok = w.add(int(pairs[i].Index), best)
		i = j
	}
	if b, ok := w.finish(); ok {
		return b
	}
	dst = append(w.b[:start], denseHeader()...)
	regs := dst[start+hdrSize:]
	for _, p := range pairs {
		if p.Rank > getDense(regs, int(p.Index)) {
			setDense(regs, int(p.Index), p.Rank)
		}
	}
	return dst
}

func header(enc byte, n int) []byte {
	b := make([]byte, hdrSize, n)
	copy(b, "HYLL")
	b[4] = enc
	b[15] = 1 << 7 // cached cardinality invalid
	return b
}

func denseHeader() []byte {
	b := header(encDense, DenseSize)
	return b[:DenseSize]
}

// setDense stores a 6-bit register as HLL_DENSE_SET_REGISTER: register i
// starts at bit 6i, least significant bits first.
func setDense(regs []byte, i int, v uint8) {
	byteIdx := i * regBits / 8
	fb := uint(i*regBits) & 7
	fb8 := 8 - fb
	regs[byteIdx] &^= regMax << fb
	regs[byteIdx] |= v << fb
	if byteIdx+1 < len(regs) {
		regs[byteIdx+1] &^= regMax >> fb8
		regs[byteIdx+1] |= v >> fb8
	}
}

func getDense(regs []byte, i int) uint8 {
	byteIdx := i * regBits / 8
	fb := uint(i*regBits) & 7
	fb8 := 8 - fb
	b0 := uint(regs[byteIdx])
	var b1 uint
	if byteIdx+1 < len(regs) {
		b1 = uint(regs[byteIdx+1])
	}
	return uint8((b0>>fb | b1<<fb8) & regMax)
}

// sparseWriter encodes non-zero registers, in ascending index order, in
// Redis's sparse format after a header already in b[start:].
type sparseWriter struct {
	b      []byte
	start  int
	next   int // first register not yet encoded
	runVal uint8
	runLen int
	failed bool // a register did not fit
}

// add encodes register i = v; false when the sketch must be dense instead.
func (w *sparseWriter) add(i int, v uint8) bool {
	if v > sparseValMax || len(w.b)-w.start > sparseMaxBytes {
		w.failed = true
		return false
	}
	if i != w.next || v != w.runVal || w.runLen == 4 {
		w.flush()
	}
	if i != w.next {
		w.zeros(i - w.next)
	}
	w.runVal = v
	w.runLen++
	w.next = i + 1
	return true
}

func (w *sparseWriter) flush() {
	if w.runLen > 0 {
		w.b = append(w.b, 0x80|(w.runVal-1)<<2|byte(w.runLen-1)) // VAL
		w.runLen = 0
	}
}

func (w *sparseWriter) zeros(n int) {
	for n > 0 {
		if n > 64 {
			l := min(n, Registers)
			w.b = append(w.b, 0x40|byte((l-1)>>8), byte(l-1)) // XZERO
			n -= l
		} else {
			w.b = append(w.b, byte(n-1)) // ZERO
			n = 0
		}
	}
}

// finish closes the encoding; ok is false if it grew past Redis's limit.
func (w *sparseWriter) finish() ([]byte, bool) {
	w.flush()
	w.zeros(Registers - w.next)
	w.next = Registers
	return w.b, !w.failed && len(w.b)-w.start <= sparseMaxBytes
}

// ErrInvalid is returned for bytes that are not a Redis HyperLogLog.
var ErrInvalid = errors.New("hll: not a valid Redis HyperLogLog")

// Unmarshal decodes a sketch in Redis's dense or sparse encoding (what GET
// returns for a key written by PFADD).
func Unmarshal(b []byte) (*Sketch, error) {
	s := new(Sketch)
	if err := s.MergeBytes(b); err != nil {
		return nil, err
	}
	return s, nil
}

// MergeBytes folds an encoded sketch into s without decoding it into a
// second Sketch. On error s is unchanged.
func (s *Sketch) MergeBytes(b []byte) error {
	c, err := Check(b)
	if err != nil {
		return err
	}
	s.MergeChecked(c)
	return nil
}

// Checked is an encoding that Check accepted. The speed reader checks a
// sketch once, when it reads it from Redis, and then merges it into many
// rollups: the Checked merges do not walk it a second time to validate it
// (that walk was a third of a union's cost).
type Checked []byte

// Check validates b as Redis's dense or sparse encoding.
func Check(b []byte) (Checked, error) {
	if len(b) < hdrSize || string(b[:4]) != "HYLL" {
		return nil, fmt.Errorf("%w: bad header", ErrInvalid)
	}
	switch b[4] {
	case encDense:
		if len(b) != DenseSize {
			return nil, fmt.Errorf("%w: dense length %d, want %d", ErrInvalid, len(b), DenseSize)
		}
		return b, nil
	case encSparse:
		if err := checkSparse(b[hdrSize:]); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: encoding %d", ErrInvalid, b[4])
}

// MergeChecked folds a checked encoding into s.
func (s *Sketch) MergeChecked(b Checked) {
	if b[4] == encDense {
		s.mergeDense(b[hdrSize:])
		return
	}
	body := b[hdrSize:]
	idx := 0
	for p := 0; p < len(body); p++ {
		switch op := body[p]; {
		case op&0xc0 == 0: // ZERO
			idx += int(op&0x3f) + 1
		case op&0xc0 == 0x40: // XZERO
			idx += int(op&0x3f)<<8 | int(body[p+1]) + 1
			p++
		default: // VAL
			v := (op>>2)&0x1f + 1
			for end := idx + int(op&3) + 1; idx < end; idx++ {
				if v > s.regs[idx] {
					s.regs[idx] = v
				}
			}
		}
	}
}

// checkSparse checks the runs of a sparse body cover exactly the 16384
// registers.
//
// The sparse walks here (checkSparse, MergeChecked, EstimateBytes,
// Union.AddChecked) each decode the run opcodes inline on purpose: a shared
// walker with a callback measured 40 % slower, and a run iterator 3× slower
// (BenchmarkSparseBytes), on the path serving takes for every uniq figure.
func checkSparse(body []byte) error {
	idx := 0
	for p := 0; p < len(body); p++ {
		switch op := body[p]; {
		case op&0xc0 == 0: // ZERO
			idx += int(op&0x3f) + 1
		case op&0xc0 == 0x40: // XZERO
			if p+1 >= len(body) {
				return fmt.Errorf("%w: truncated XZERO", ErrInvalid)
			}
			idx += int(op&0x3f)<<8 | int(body[p+1]) + 1
			p++
		default: // VAL
			idx += int(op&3) + 1
		}
		if idx > Registers {
			return fmt.Errorf("%w: runs past the last register", ErrInvalid)
		}
	}
	if idx != Registers {
		return fmt.Errorf("%w: runs cover %d registers, want %d", ErrInvalid, idx, Registers)
	}
	return nil
}

// Estimate is the cardinality estimate, computed exactly as Redis's PFCOUNT
// does (Ertl's improved estimator, hllCount in hyperloglog.c), so the same
// registers give the same number on both sides.
func (s *Sketch) Estimate() uint64 {
	h := s.Histogram()
	return h.Estimate()
}

// Histogram counts a sketch's registers by value: the estimate is a
// function of it alone. Kept beside registers that no longer change, it
// makes the estimate of their union with a few small sketches cost those
// sketches' registers (Union.EstimateOver), not 16384.
type Histogram [64]int32 // dense registers hold up to 63

// Histogram counts s's registers by value.
func (s *Sketch) Histogram() Histogram {
	// Four histograms, summed after: consecutive registers do not wait on
	// each other's increments.
	var h [4]Histogram
	for i := 0; i < Registers; i += 4 {
		h[0][s.regs[i]&63]++
		h[1][s.regs[i+1]&63]++
		h[2][s.regs[i+2]&63]++
		h[3][s.regs[i+3]&63]++
	}
	var out Histogram
	for v := range out {
		out[v] = h[0][v] + h[1][v] + h[2][v] + h[3][v]
	}
	return out
}

// Estimate is PFCOUNT's figure for the registers h counts: hllCount's
// estimator over a register histogram.
func (h *Histogram) Estimate() uint64 {
	const m = float64(Registers)
	z := m * tau((m-float64(h[q+1]))/m)
	for j := q; j >= 1; j-- {
		z += float64(h[j])
		z *= 0.5
	}
	z += m * sigma(float64(h[0])/m)
	const alphaInf = 0.721347520444481703680 // 1 / (2 ln 2)
	return uint64(math.Round(alphaInf * m * m / z))
}

// EstimateBytes is Estimate of an encoded sketch (what GET returns for a
// key written by PFADD) without decoding it into registers: the register
// histogram is read from the encoding, as Redis's PFCOUNT does for one key
// (hllSparseRegHisto, hllDenseRegHisto). A sparse sketch costs its length,
// not 16384 registers.
func EstimateBytes(b []byte) (uint64, error) {
	if len(b) < hdrSize || string(b[:4]) != "HYLL" {
		return 0, fmt.Errorf("%w: bad header", ErrInvalid)
	}
	var hist Histogram
	switch b[4] {
	case encDense:
		if len(b) != DenseSize {
			return 0, fmt.Errorf("%w: dense length %d, want %d", ErrInvalid, len(b), DenseSize)
		}
		regs := b[hdrSize:]
		// Four registers are three bytes.
		for i := 0; i+3 <= len(regs); i += 3 {
			x := uint32(regs[i]) | uint32(regs[i+1])<<8 | uint32(regs[i+2])<<16
			hist[x&63]++
			hist[x>>6&63]++
			hist[x>>12&63]++
			hist[x>>18&63]++
		}
	case encSparse:
		idx := 0
		body := b[hdrSize:]
		for p := 0; p < len(body); {
			op := body[p]
			switch {
			case op&0xc0 == 0: // ZERO
				n := int(op&0x3f) + 1
				hist[0] += int32(n)
				idx += n
				p++
			case op&0xc0 == 0x40: // XZERO
				if p+1 >= len(body) {
					return 0, fmt.Errorf("%w: truncated XZERO", ErrInvalid)
				}
				n := int(op&0x3f)<<8 | int(body[p+1]) + 1
				hist[0] += int32(n)
				idx += n
				p += 2
			default: // VAL
				n := int(op&3) + 1
				hist[(op>>2)&0x1f+1] += int32(n)
				idx += n
				p++
			}
			if idx > Registers {
				return 0, fmt.Errorf("%w: runs past the last register", ErrInvalid)
			}
		}
		if idx != Registers {
			return 0, fmt.Errorf("%w: runs cover %d registers, want %d", ErrInvalid, idx, Registers)
		}
	default:
		return 0, fmt.Errorf("%w: encoding %d", ErrInvalid, b[4])
	}
	return hist.Estimate(), nil
}

func sigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if prev == z {
			return z
		}
	}
}

func tau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if prev == z {
			return z / 3
		}
	}
}

// CachedCardinality reads the cardinality Redis cached in an encoding's
// header; ok is false when the cache is marked invalid.
func CachedCardinality(b []byte) (n uint64, ok bool) {
	if len(b) < hdrSize || b[15]&0x80 != 0 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[8:16]), true
}

// Union is the union of sketches for one estimate (PFCOUNT over several
// keys), without a 16 KiB merge when they are small: while the sketches
// added set few registers it tracks which, and the estimate costs those
// registers, not 16384. The zero value is an empty union; Reset makes one
// reusable (pool it: it holds 16 KiB).
type Union struct {
	s       Sketch
	touched []uint16 // registers set, while not dense
	dense   bool     // too many to track: the estimate reads every register
}

// unionTrackMax is how many registers a Union tracks before it reads all of
// them: past it, the 16384-register histogram is the cheaper one.
const unionTrackMax = 2048

func (u *Union) set(i int, v uint8) {
	if v <= u.s.regs[i] {
		return
	}
	if u.s.regs[i] == 0 && !u.dense {
		if len(u.touched) == unionTrackMax {
			u.dense = true
		} else {
			u.touched = append(u.touched, uint16(i))
		}
	}
	u.s.regs[i] = v
}

// AddBytes unions an encoded sketch in (Redis's dense or sparse encoding);
// on error u is unchanged.
func (u *Union) AddBytes(b []byte) error {
	c, err := Check(b)
	if err != nil {
		return err
	}
	u.AddChecked(c)
	return nil
}

// AddChecked unions a checked encoding in.
func (u *Union) AddChecked(b Checked) {
	if b[4] == encDense {
		u.dense = true
		u.s.mergeDense(b[hdrSize:])
		return
	}
	body := b[hdrSize:]
	idx := 0
	for p := 0; p < len(body); p++ {
		switch op := body[p]; {
		case op&0xc0 == 0: // ZERO
			idx += int(op&0x3f) + 1
		case op&0xc0 == 0x40: // XZERO
			idx += int(op&0x3f)<<8 | int(body[p+1]) + 1
			p++
		default: // VAL
			v := (op>>2)&0x1f + 1
			for end := idx + int(op&3) + 1; idx < end; idx++ {
				u.set(idx, v)
			}
		}
	}
}

// AddSketch unions a sketch in.
func (u *Union) AddSketch(s *Sketch) {
	u.dense = true
	u.s.Merge(s)
}

// Estimate is PFCOUNT's figure for the union.
func (u *Union) Estimate() uint64 {
	if u.dense {
		return u.s.Estimate()
	}
	var hist Histogram
	hist[0] = int32(Registers - len(u.touched))
	for _, i := range u.touched {
		hist[u.s.regs[i]&63]++
	}
	return hist.Estimate()
}

// EstimateOver is PFCOUNT's figure for the union of u and base, where h is
// base's Histogram. While u tracks its registers, only those are compared
// with base's: the estimate costs u's registers, not 16384. u and base are
// not changed.
func (u *Union) EstimateOver(base *Sketch, h *Histogram) uint64 {
	if u.dense {
		var over Histogram
		for i, v := range u.s.regs {
			over[max(v, base.regs[i])&63]++
		}
		return over.Estimate()
	}
	over := *h
	for _, i := range u.touched {
		if b, v := base.regs[i], u.s.regs[i]; v > b {
			over[b&63]--
			over[v&63]++
		}
	}
	return over.Estimate()
}

// Reset empties the union.
func (u *Union) Reset() {
	if u.dense {
		u.s = Sketch{}
	} else {
		for _, i := range u.touched {
			u.s.regs[i] = 0
		}
	}
	u.touched, u.dense = u.touched[:0], false
}
