package schemas

import (
	"strings"
	"testing"
	"time"
)

// The duplicate rule: same id value (whatever its JSON spelling) and same
// UTC event hour, whatever else differs; across an hour's edge, or with
// another id, two events are two events.
func TestSameEvent(t *testing.T) {
	orders := ordersSchema(t)
	ms := moneySchema(t)
	byDecimal, err := NewSchema("d", "d", "ts", "amount", ms.Fields)
	if err != nil {
		t.Fatal(err)
	}
	byInt, err := NewSchema("i", "i", "ts", "qty", orders.Fields)
	if err != nil {
		t.Fatal(err)
	}
	byFloat, err := NewSchema("f", "f", "ts", "amount", orders.Fields)
	if err != nil {
		t.Fatal(err)
	}
	noID, err := NewSchema("n", "n", "ts", "", orders.Fields)
	if err != nil {
		t.Fatal(err)
	}
	order := func(id, ts, tenant string, qty, amount string) string {
		return `{"order_id":` + id + `,"ts":"` + ts + `","tenant":"` + tenant + `","qty":` + qty + `,"amount":` + amount + `,"paid":true}`
	}
	money := func(amount, ts string) string {
		return `{"order_id":"x","ts":"` + ts + `","amount":` + amount + `}`
	}
	const t0 = "2026-11-27T10:30:15Z"
	tests := []struct {
		name string
		s    *Schema
		a, b string
		want bool
	}{
		{"identical", orders, order(`"o1"`, t0, "a", "1", "1"), order(`"o1"`, t0, "a", "1", "1"), true},
		{"other fields differ", orders, order(`"o1"`, t0, "a", "1", "1"), order(`"o1"`, "2026-11-27T10:59:00Z", "b", "2", "3"), true},
		{"id spelled with an escape", orders, order(`"o1"`, t0, "a", "1", "1"), order(`"o\u0031"`, t0, "a", "1", "1"), true},
		{"another id", orders, order(`"o1"`, t0, "a", "1", "1"), order(`"o2"`, t0, "a", "1", "1"), false},
		{"id differs in case", orders, order(`"o1"`, t0, "a", "1", "1"), order(`"O1"`, t0, "a", "1", "1"), false},
		{"same hour, first and last µs", orders, order(`"o1"`, "2026-11-27T10:00:00Z", "a", "1", "1"), order(`"o1"`, "2026-11-27T10:59:59.999999Z", "a", "1", "1"), true},
		{"across the hour's edge", orders, order(`"o1"`, "2026-11-27T10:59:59.999999Z", "a", "1", "1"), order(`"o1"`, "2026-11-27T11:00:00Z", "a", "1", "1"), false},
		{"same hour as epoch ms", orders, order(`"o1"`, t0, "a", "1", "1"), strings.Replace(order(`"o1"`, "x", "a", "1", "1"), `"x"`, "1795775400000", 1), true},
		{"before 1970, same hour", orders, order(`"o1"`, "1969-12-31T23:00:00Z", "a", "1", "1"), order(`"o1"`, "1969-12-31T23:59:59Z", "a", "1", "1"), true},
		{"before 1970, across midnight", orders, order(`"o1"`, "1969-12-31T23:59:59Z", "a", "1", "1"), order(`"o1"`, "1970-01-01T00:00:00Z", "a", "1", "1"), false},
		{"int id equal", byInt, order(`"a"`, t0, "a", "7", "1"), order(`"b"`, t0, "b", "7", "2"), true},
		{"int id differs", byInt, order(`"a"`, t0, "a", "7", "1"), order(`"a"`, t0, "a", "70", "1"), false},
		{"decimal id, number and string", byDecimal, money("1.5", t0), money(`"1.50"`, t0), true},
		{"decimal id, exponent", byDecimal, money("15e-1", t0), money("1.5", t0), true},
		{"decimal id differs in the last digit", byDecimal, money("1.51", t0), money("1.5", t0), false},
		{"float id, 0 and -0 (batch compares bits)", byFloat, order(`"a"`, t0, "a", "1", "0"), order(`"a"`, t0, "a", "1", "-0"), false},
		{"float id, spellings of one value", byFloat, order(`"a"`, t0, "a", "1", "0.5"), order(`"a"`, t0, "a", "1", "5e-1"), true},
		{"no id field: never", noID, order(`"o1"`, t0, "a", "1", "1"), order(`"o1"`, t0, "a", "1", "1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(tt.s)
			var a, b Row
			if err := d.Decode([]byte(tt.a), &a); err != nil {
				t.Fatalf("a: %v", err)
			}
			if err := d.Decode([]byte(tt.b), &b); err != nil {
				t.Fatalf("b: %v", err)
			}
			if got := tt.s.SameEvent(&a, &b); got != tt.want {
				t.Errorf("SameEvent = %v, want %v", got, tt.want)
			}
			if got := tt.s.SameEvent(&b, &a); got != tt.want {
				t.Errorf("SameEvent (swapped) = %v, want %v", got, tt.want)
			}
			ka, ha, okA := tt.s.AppendDedupKey(nil, &a)
			if okA != (tt.s.ID != "") {
				t.Errorf("AppendDedupKey ok = %v for id %q", okA, tt.s.ID)
			}
			if okA && ha != FloorTime(tt.s.EventTime(&a), time.Hour).UnixMicro() {
				t.Errorf("hour %d is not the event time's hour %s", ha, tt.s.EventTime(&a))
			}
			if okA && string(ka) != string(mustKey(t, tt.s, &a)) {
				t.Errorf("dedup key %q is not the Kafka key", ka)
			}
		})
	}
}

func mustKey(t *testing.T, s *Schema, r *Row) []byte {
	k, ok := s.AppendKey(nil, r)
	if !ok {
		t.Fatal("no key")
	}
	return k
}

func TestCheckDedupWindow(t *testing.T) {
	orders := ordersSchema(t)
	noID, err := NewSchema("n", "n", "ts", "", orders.Fields)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		s       *Schema
		d       time.Duration
		wantErr string
	}{
		{orders, 0, ""},
		{orders, 2 * time.Hour, ""},
		{orders, MaxDedupWindow, ""},
		{orders, -time.Minute, "must not be negative"},
		{orders, MaxDedupWindow + time.Second, "too long"},
		{noID, 0, ""},
		{noID, time.Hour, "needs the schema's id field (schemas.n.id)"},
	}
	for _, tt := range tests {
		err := tt.s.CheckDedupWindow(tt.d)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s, %v: err %v, want %q", tt.s.Name, tt.d, err, tt.wantErr)
		}
	}
}
