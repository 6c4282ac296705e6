package schemas

import "testing"

// The record key is the decoded id, so spellings of one id share a key;
// a schema without id has none.
func TestAppendKey(t *testing.T) {
	s := ordersSchema(t)
	d := NewDecoder(s)
	key := func(ev string) string {
		t.Helper()
		var r Row
		if err := d.Decode([]byte(ev), &r); err != nil {
			t.Fatal(err)
		}
		k, ok := s.AppendKey(nil, &r)
		if !ok {
			t.Fatal("orders has an id, no key")
		}
		return string(k)
	}
	const rest = `"ts":"2026-11-27T10:30:15Z","tenant":"a","qty":1,"amount":1,"paid":true}`
	if a, b := key(`{"order_id":"o1",`+rest), key(`{"order_id":"o\u0031",`+rest); a != "o1" || b != a {
		t.Errorf("keys %q and %q, want o1 for both", a, b)
	}
	var r0 Row
	if err := d.Decode([]byte(`{"order_id":"",`+rest), &r0); err != nil {
		t.Fatal(err)
	}
	if k, ok := s.AppendKey(nil, &r0); !ok || k == nil || len(k) != 0 {
		t.Errorf("empty id: key %#v, %v; want an empty, non-nil key", k, ok)
	}
	ms := moneySchema(t)
	var r Row
	if err := NewDecoder(ms).Decode([]byte(`{"order_id":"x","ts":"2026-11-27T10:30:15Z","amount":1}`), &r); err != nil {
		t.Fatal(err)
	}
	ms.ID = ""
	if k, ok := ms.AppendKey([]byte("keep"), &r); ok || string(k) != "keep" {
		t.Errorf("no id: key %q, %v", k, ok)
	}
	// A numeric id: its decimal text, whatever the spelling.
	ns, err := NewSchema("n", "n", "ts", "amount", ms.Fields)
	if err != nil {
		t.Fatal(err)
	}
	nd := NewDecoder(ns)
	for _, spelling := range []string{`1.5`, `"1.50"`, `15e-1`} {
		if err := nd.Decode([]byte(`{"order_id":"x","ts":"2026-11-27T10:30:15Z","amount":`+spelling+`}`), &r); err != nil {
			t.Fatal(err)
		}
		if k, _ := ns.AppendKey(nil, &r); string(k) != "1.50" {
			t.Errorf("id %s: key %q, want 1.50", spelling, k)
		}
	}
}
