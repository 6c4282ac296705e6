package gen

import (
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

func decimalSchema(t testing.TB, idType schemas.Type, amount schemas.Type) *schemas.Schema {
	t.Helper()
	s, err := schemas.NewSchema("money", "money", "ts", "id", []schemas.Field{
		{Name: "id", Type: idType},
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "amount", Type: amount},
		{Name: "tenant", Type: schemas.String},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decType(t testing.TB, p, s int) schemas.Type {
	t.Helper()
	typ, err := schemas.DecimalType(p, s)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

// Every decodable event's key is the decoded id's key (a duplicate's that
// of the event it copies); malformed records and schemas without id are
// unkeyed.
func TestEventKeys(t *testing.T) {
	noID := exampleSchema(t, "orders")
	noID, err := schemas.NewSchema("plain", "plain", noID.Time, "", noID.Fields)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*schemas.Schema{
		exampleSchema(t, "orders"),
		exampleSchema(t, "pageviews"),
		decimalSchema(t, schemas.Int64, decType(t, 18, 2)),
		decimalSchema(t, decType(t, 12, 2), decType(t, 9, 4)),
		noID,
	} {
		t.Run(s.Name+"/"+s.ID, func(t *testing.T) {
			cfg := history(t, s, 11)
			cfg.Cardinality = nil
			g, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := schemas.NewDecoder(s)
			var row schemas.Row
			keyed := 0
			for range 5000 {
				e := g.Next(time.Time{})
				err := d.Decode(e.Value, &row)
				if e.Kind == Malformed {
					if e.Key != nil {
						t.Fatalf("malformed record keyed %q", e.Key)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%v event: %v: %s", e.Kind, err, e.Value)
				}
				want, ok := s.AppendKey(nil, &row)
				if !ok {
					if e.Key != nil {
						t.Fatalf("schema without id, key %q", e.Key)
					}
					continue
				}
				if string(e.Key) != string(want) {
					t.Fatalf("%v event key %q, decoded id's key %q: %s", e.Kind, e.Key, want, e.Value)
				}
				keyed++
			}
			if s.ID != "" && keyed < 4500 {
				t.Errorf("%d of 5000 events keyed", keyed)
			}
		})
	}
}

// Decimal amounts fit their type, with at most two decimals, and come as
// numbers and as strings.
func TestDecimalAmounts(t *testing.T) {
	for _, typ := range []schemas.Type{decType(t, 18, 2), decType(t, 5, 4), decType(t, 3, 0), decType(t, 1, 1)} {
		s := decimalSchema(t, schemas.String, typ)
		cfg := history(t, s, 5)
		cfg.Malformed, cfg.Duplicates, cfg.Cardinality = 0, 0, nil
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d := schemas.NewDecoder(s)
		var row schemas.Row
		strs, distinct := 0, map[int64]bool{}
		for range 2000 {
			e := g.Next(time.Time{})
			if err := d.Decode(e.Value, &row); err != nil {
				t.Fatalf("%v: %v: %s", typ, err, e.Value)
			}
			n := row.Values[s.FieldIndex("amount")].Int
			if n < 0 || typ.Scale() > 2 && n%pow10(typ.Scale()-2) != 0 {
				t.Fatalf("%v: amount %s", typ, schemas.FormatDecimal(n, typ.Scale()))
			}
			distinct[n] = true
			if strings.Contains(string(e.Value), `"amount":"`) {
				strs++
			}
		}
		if strs < 100 || strs > 300 || len(distinct) < min(9, 2000) {
			t.Errorf("%v: %d string amounts of 2000, %d distinct values", typ, strs, len(distinct))
		}
	}
}
