package serving

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// The fast path of appendJSONString must write exactly what encoding/json
// writes.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "acme", "a b-c_d.e", `quo"te`, `back\slash`, "tab\there", "<script>", "a&b", "ünïcode", "\u2028", "\x7f", "nul\x00"} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func TestAppendValue(t *testing.T) {
	ts := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC).UnixMicro()
	for _, c := range []struct {
		t    schemas.Type
		v    schemas.Value
		want string
	}{
		{schemas.String, schemas.Value{Str: "x"}, `"x"`},
		{schemas.String, schemas.Value{Null: true}, `null`},
		{schemas.Int64, schemas.Value{Int: -42}, `-42`},
		{schemas.Bool, schemas.Value{Int: 1}, `true`},
		{schemas.Float64, schemas.Value{Float: 0.30000000000000004}, `0.30000000000000004`},
		{schemas.Float64, schemas.Value{Float: 1e21}, `1e+21`},
		{schemas.Timestamp, schemas.Value{Int: ts}, `"2026-11-27T09:00:00Z"`},
	} {
		got := string(appendValue(nil, c.t, c.v))
		if got != c.want {
			t.Errorf("%v %+v: %s, want %s", c.t, c.v, got, c.want)
		}
		var x any
		if err := json.Unmarshal([]byte(got), &x); err != nil {
			t.Errorf("%s is not JSON: %v", got, err)
		}
	}
}
