package querymix

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Both loops send what they say: the closed loop until Duration, the paced
// one exactly Rate × Duration requests, each answer read and counted once,
// and a failing request counted as an error with its path.
func TestRun(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path == "/bad" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		rate     float64
		path     string
		wantReqs int // 0: any number above 0
		wantErrs bool
	}{
		{"closed loop", 0, "/q", 0, false},
		{"paced", 100, "/q", 30, false},
		{"paced, failing", 100, "/bad", 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			served.Store(0)
			res := Run(context.Background(), LoadConfig{Base: srv.URL, Clients: 4, Duration: 300 * time.Millisecond, Rate: tt.rate,
				Next: func() (string, bool) { return tt.path, false }})
			if res.Requests == 0 || int64(res.Requests) != served.Load() || (tt.wantReqs > 0 && res.Requests != tt.wantReqs) {
				t.Fatalf("%d requests counted, %d served, want %d", res.Requests, served.Load(), tt.wantReqs)
			}
			if tt.wantErrs != (res.Errors == res.Requests) || tt.wantErrs == (len(res.Latencies) == res.Requests) {
				t.Fatalf("%d errors, %d latencies of %d requests", res.Errors, len(res.Latencies), res.Requests)
			}
			if tt.wantErrs && res.FirstError == "" {
				t.Fatal("no first error")
			}
		})
	}
}
