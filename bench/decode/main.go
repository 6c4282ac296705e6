// Command decode measures the schema decoder's throughput on one core: the
// cost every event pays in both layers. It decodes orders events of about
// 150 bytes made by the generator and prints, last, the DESIGN §7 summary:
//
//	bench decode: eps_per_core=…
package main

import (
	"flag"
	"fmt"
	"log"
	"runtime"
	"time"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/gen"
	"github.com/lambdalake/lambdalake/schemas"
)

func main() {
	n := flag.Int("events", 200000, "distinct events to decode, cycled")
	dur := flag.Duration("duration", 3*time.Second, "how long to measure")
	flag.Parse()
	runtime.GOMAXPROCS(1)

	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		log.Fatal(err)
	}
	s := cfg.Schema("orders")
	from := time.Now().Add(-time.Hour)
	g, err := gen.New(gen.Config{Schema: s, From: from, To: from.Add(time.Hour), Count: int64(*n),
		Cardinality: map[string]int{"user_id": 100000}, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	events := make([][]byte, *n)
	var bytes int
	for i := range events {
		events[i] = g.Next(time.Time{}).Value
		bytes += len(events[i])
	}
	d := schemas.NewDecoder(s)
	var row schemas.Row
	// Warm up, then measure whole passes until the duration is spent.
	for _, e := range events[:min(len(events), 10000)] {
		d.Decode(e, &row)
	}
	var decoded int
	start := time.Now()
	for time.Since(start) < *dur {
		for _, e := range events {
			if err := d.Decode(e, &row); err != nil {
				log.Fatalf("decode: %v", err)
			}
		}
		decoded += len(events)
	}
	el := time.Since(start)
	fmt.Printf("decoded %d events of %d bytes on average in %s on 1 core\n", decoded, bytes/len(events), el.Round(time.Millisecond))
	fmt.Printf("bench decode: eps_per_core=%.0f\n", float64(decoded)/el.Seconds())
}
