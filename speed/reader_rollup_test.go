package speed

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/lambdalake/lambdalake/internal/hll"
)

// A rollup's uniq sketch, however it was built (cells' sketches by
// reference, registers shared from another rollup, registers of its own,
// settled with their histogram or not, seeded from an older rollup as the
// live unit is at every flush), estimates and encodes exactly what the
// plain union of everything added to it does.
func TestSketchRefIsItsUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	// cell is a cell's sketch of n new users (and a few seen before, so
	// registers also meet lower and equal values).
	cell := func(n int) (hll.Checked, *hll.Sketch) {
		var s hll.Sketch
		for range n {
			s.Add("u" + strconv.Itoa(next))
			next++
		}
		for range 3 {
			s.Add("u" + strconv.Itoa(rng.IntN(next)))
		}
		c, err := hll.Check(s.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		return c, &s
	}
	// other is another rollup's finished sketch: registers of its own.
	other := func(n int) (sketchRef, *hll.Sketch) {
		var o sketchRef
		var want hll.Sketch
		for range 40 {
			c, s := cell(n / 40)
			o.addBytes(c)
			want.Merge(s)
		}
		o.settle()
		return o, &want
	}

	for run := range 20 {
		var r sketchRef
		var want hll.Sketch
		var ops []string
		for step := range 120 {
			switch k := rng.IntN(10); {
			case k < 5:
				c, s := cell(1 + rng.IntN(30))
				r.addBytes(c)
				want.Merge(s)
				ops = append(ops, "cell")
			case k == 5:
				c, s := cell(2000 + rng.IntN(20000)) // dense
				r.addBytes(c)
				want.Merge(s)
				ops = append(ops, "dense cell")
			case k == 6:
				o, s := other(400 + rng.IntN(4000))
				r.addRef(&o)
				want.Merge(s)
				ops = append(ops, "rollup")
			case k == 7:
				r.settle()
				ops = append(ops, "settle")
			default: // the next flush's unit grows from this one
				r.settle()
				r = r.share()
				ops = append(ops, "seed")
			}
			got, err := r.estimate()
			if err != nil {
				t.Fatal(err)
			}
			if w := int64(want.Estimate()); got != w {
				t.Fatalf("run %d step %d after %v: estimate %d, the union's %d", run, step, ops, got, w)
			}
			if step%10 == 0 && !r.empty() {
				enc, err := hll.Unmarshal(r.encoded())
				if err != nil || *enc != want {
					t.Fatalf("run %d step %d after %v: encoded sketch is not the union (err %v)", run, step, ops, err)
				}
			}
		}
	}
}
