package views

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func hour(h int) time.Time { return time.Date(2026, 11, 27, h, 0, 0, 0, time.UTC) }

func TestParseState(t *testing.T) {
	tests := []struct {
		name, file string
		ok         bool
	}{
		{"valid", "state_valid.json", true},
		{"hour not whole", "state_bad_hour.json", false},
		{"negative rows", "state_negative.json", false},
		{"not json", "state_truncated.json", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			st, err := parseState(b)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				h, ok := st.Hour(hour(9))
				if !ok || h.Rows != 120 || h.Version != 3 || !h.Final || !st.Boundary.Equal(hour(10)) {
					t.Errorf("decoded %+v", st)
				}
			}
		})
	}
}

func FuzzParseState(f *testing.F) {
	for _, name := range []string{"state_valid.json", "state_bad_hour.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b)
		if err != nil {
			return
		}
		// What parses survives a round trip.
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseState(out)
		if err != nil {
			t.Fatalf("re-encoded state does not parse: %v", err)
		}
		if !reflect.DeepEqual(back, st) {
			t.Fatalf("round trip changed the state:\n got %+v\nwant %+v", back, st)
		}
	})
}
