package gen

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/schemas"
)

func exampleSchema(t testing.TB, name string) *schemas.Schema {
	t.Helper()
	cfg, err := config.Parse(lambdalake.ExampleConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Schema(name)
}

func history(t testing.TB, s *schemas.Schema, seed uint64) Config {
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	return Config{Schema: s, From: from, To: from.Add(6 * time.Hour), Count: 20000,
		Cardinality: map[string]int{"tenant": 5}, OutOfOrder: 0.05, MaxDelay: 10 * time.Minute,
		Duplicates: 0.02, Malformed: 0.01, Seed: seed}
}

func TestEventsMatchTheirKind(t *testing.T) {
	for _, name := range []string{"orders", "pageviews"} {
		t.Run(name, func(t *testing.T) {
			s := exampleSchema(t, name)
			cfg := history(t, s, 7)
			if name == "pageviews" {
				cfg.Cardinality = nil
			}
			g, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := schemas.NewDecoder(s)
			ids := map[string]bool{}
			var row schemas.Row
			for range cfg.Count {
				e := g.Next(time.Time{})
				err := d.Decode(e.Value, &row)
				switch e.Kind {
				case Malformed:
					if err == nil {
						t.Fatalf("malformed event decoded: %s", e.Value)
					}
					continue
				case Valid, Duplicate:
					if err != nil {
						t.Fatalf("%v event does not decode: %v: %s", e.Kind, err, e.Value)
					}
				}
				id := row.Values[s.FieldIndex(s.ID)].Str
				if e.Kind == Duplicate != ids[id] {
					t.Fatalf("%v event with id %s seen before=%v", e.Kind, id, ids[id])
				}
				ids[id] = true
				if e.Kind == Valid {
					et := s.EventTime(&row)
					if !et.Equal(e.Time) || et.Before(cfg.From) || !et.Before(cfg.To) {
						t.Fatalf("event time %v (reported %v) outside [%v, %v)", et, e.Time, cfg.From, cfg.To)
					}
				}
			}
			c := g.Counts()
			if c.Total != cfg.Count || c.Valid+c.Duplicate+c.Malformed != c.Total {
				t.Fatalf("counts don't add up: %v", c)
			}
			checkShare(t, "malformed", c.Malformed, c.Total, cfg.Malformed)
			checkShare(t, "duplicate", c.Duplicate, c.Total, cfg.Duplicates)
			checkShare(t, "out_of_order", c.OutOfOrder, c.Valid, cfg.OutOfOrder)
		})
	}
}

func checkShare(t *testing.T, what string, n, of int64, want float64) {
	t.Helper()
	got := float64(n) / float64(of)
	if math.Abs(got-want) > want*0.25+0.002 {
		t.Errorf("%s share = %.4f, want about %.4f", what, got, want)
	}
}

func TestSameSeedSameEvents(t *testing.T) {
	s := exampleSchema(t, "orders")
	a, _ := New(history(t, s, 42))
	b, _ := New(history(t, s, 42))
	c, _ := New(history(t, s, 43))
	differ := false
	for range 1000 {
		ea, eb, ec := a.Next(time.Time{}), b.Next(time.Time{}), c.Next(time.Time{})
		if !bytes.Equal(ea.Value, eb.Value) || ea.Kind != eb.Kind {
			t.Fatalf("same seed, different events:\n%s\n%s", ea.Value, eb.Value)
		}
		differ = differ || !bytes.Equal(ea.Value, ec.Value)
	}
	if !differ {
		t.Error("different seeds made the same events")
	}
}

func TestCardinality(t *testing.T) {
	s := exampleSchema(t, "orders")
	cfg := history(t, s, 1)
	cfg.Malformed, cfg.Duplicates = 0, 0
	g, _ := New(cfg)
	d := schemas.NewDecoder(s)
	tenants := map[string]bool{}
	var row schemas.Row
	for range 5000 {
		if err := d.Decode(g.Next(time.Time{}).Value, &row); err != nil {
			t.Fatal(err)
		}
		tenants[row.Values[s.FieldIndex("tenant")].Str] = true
	}
	if len(tenants) != 5 {
		t.Errorf("%d tenants, want 5", len(tenants))
	}
}

func TestConfigErrors(t *testing.T) {
	s := exampleSchema(t, "orders")
	for name, cfg := range map[string]Config{
		"no schema":        {},
		"share above one":  {Schema: s, Malformed: 1.5},
		"unknown field":    {Schema: s, Cardinality: map[string]int{"nope": 3}},
		"history no count": {Schema: s, From: time.Unix(0, 0), To: time.Unix(10, 0)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestRunToWriter(t *testing.T) {
	s := exampleSchema(t, "orders")
	g, _ := New(history(t, s, 3))
	var out bytes.Buffer
	counts, err := Run(context.Background(), g, NewWriterSink(&out), RunConfig{Count: 12345, Batch: 1000, Senders: 1})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(out.String(), "\n")
	if counts.Total != 12345 || lines != 12345 {
		t.Errorf("counts %v, %d lines; want 12345", counts, lines)
	}
}

func TestRunPacesByRate(t *testing.T) {
	s := exampleSchema(t, "orders")
	g, _ := New(Config{Schema: s, Seed: 1})
	var out bytes.Buffer
	counts, err := Run(context.Background(), g, NewWriterSink(&out), RunConfig{Rate: 2000, Duration: 500 * time.Millisecond, Senders: 1})
	if err != nil {
		t.Fatal(err)
	}
	// 2000/s for 0.5 s is 1000 events; pacing is by the clock, so allow slack.
	if counts.Total < 600 || counts.Total > 1200 {
		t.Errorf("sent %d events at 2000/s over 0.5s", counts.Total)
	}
}
