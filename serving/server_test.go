package serving

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// runServer serves f's API on a loopback port with cfg's timeouts until
// the test ends, and returns its base URL.
func runServer(t *testing.T, f *fixture, cfg Config) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Registerer, cfg.Gatherer = f.reg, f.reg
	srv := New(cfg)
	f.api.Register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); srv.Addr() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("server did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "http://" + srv.Addr().String()
}

// answersQuickly checks that the server still answers /healthz and a query
// at once while a hostile client holds a connection.
func answersQuickly(t *testing.T, base string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	for _, target := range []string{"/healthz", "/v1/views/revenue/query?from=2026-11-27T09:00:00Z&to=2026-11-27T10:00:00Z"} {
		req, _ := http.NewRequest("GET", base+target, nil)
		req.Header.Set("Authorization", "Bearer "+readTok)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("GET %s while a client stalls: %v", target, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || time.Since(start) > time.Second {
			t.Errorf("GET %s while a client stalls: %d in %v", target, resp.StatusCode, time.Since(start))
		}
	}
}

// Slow and idle clients are cut after their timeout, while everybody else
// is served.
func TestTimeouts(t *testing.T) {
	f := newFixture(t, func(c *APIConfig) { c.BodyTimeout = 400 * time.Millisecond })
	f.speedOK()
	base := runServer(t, f, Config{ReadHeaderTimeout: 300 * time.Millisecond, BodyTimeout: 400 * time.Millisecond,
		WriteTimeout: 5 * time.Second, IdleTimeout: 400 * time.Millisecond})
	addr := strings.TrimPrefix(base, "http://")
	tests := []struct {
		name string
		// send writes the client's part; it runs in its own goroutine and
		// stops when stop is closed.
		send func(c net.Conn, stop <-chan struct{})
		// wantStatus: the status line expected before the close ("" = the
		// server closes without answering).
		wantStatus string
		within     time.Duration
	}{
		{"slow body", func(c net.Conn, stop <-chan struct{}) {
			io.WriteString(c, "POST /v1/events?schema=orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+writeTok+
				"\r\nContent-Type: application/x-ndjson\r\nContent-Length: 4000\r\n\r\n{")
			trickle(c, stop)
		}, "HTTP/1.1 408", 3 * time.Second},
		{"slow headers", func(c net.Conn, stop <-chan struct{}) {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			trickle(c, stop)
		}, "", 3 * time.Second},
		{"nothing sent", func(c net.Conn, stop <-chan struct{}) {}, "", 3 * time.Second},
		{"idle keep-alive", func(c net.Conn, stop <-chan struct{}) {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		}, "HTTP/1.1 200", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stop := make(chan struct{})
			defer close(stop)
			go tt.send(c, stop)
			start := time.Now()
			c.SetReadDeadline(start.Add(tt.within + 2*time.Second)) // the test's own bound
			r := bufio.NewReader(c)
			time.Sleep(100 * time.Millisecond)
			answersQuickly(t, base)
			status, _ := r.ReadString('\n')
			if tt.wantStatus != "" && !strings.HasPrefix(status, tt.wantStatus) {
				t.Errorf("status line %q, want %s", status, tt.wantStatus)
			}
			// Then the server closes the connection: EOF (or a reset),
			// not our own read deadline.
			_, err = io.Copy(io.Discard, r)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v", time.Since(start))
			}
			if d := time.Since(start); d > tt.within {
				t.Errorf("cut after %v, want within %v", d, tt.within)
			}
		})
	}
	if n := testutil.ToFloat64(httpRequests(t, f, "POST /v1/events", "408")); n != 1 {
		t.Errorf("408 answers to the slow body: %v", n)
	}
	if len(f.writer.msgs) != 0 {
		t.Errorf("%d events produced from a body that never arrived", len(f.writer.msgs))
	}
}

// trickle writes one byte every 50ms until stop or a write fails.
func trickle(c net.Conn, stop <-chan struct{}) {
	tk := time.NewTicker(50 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}
}

func httpRequests(t *testing.T, f *fixture, route, code string) prometheus.Collector {
	t.Helper()
	m, err := newHTTPMetrics(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	return m.requests.WithLabelValues(route, code)
}

// Paths the mux would redirect are a 404 like any unknown one.
func TestNonCanonicalPaths(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"/v1/views/../jobs", "//v1/views", "/v1/./views", "/v1/views/revenue/../../jobs", "/v1/views/%2e%2e/jobs"} {
		req := httptest.NewRequest("GET", "http://x/", nil)
		req.URL.Path = p
		if u, err := url.PathUnescape(p); err == nil {
			req.URL.Path = u
		}
		req.Header.Set("Authorization", "Bearer "+adminTok)
		rec := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"error":"no such endpoint`) {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	if code, _, _ := f.do(t, "GET", "/v1/views/", readTok, nil); code != 404 {
		t.Errorf("/v1/views/: %d", code)
	}
}
