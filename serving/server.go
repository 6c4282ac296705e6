package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// Config configures a Server.
type Config struct {
	Addr   string
	Checks map[string]Check // for /readyz, by dependency name
	// Timeouts against slow and idle clients (defaults 5s, 30s, 1m, 1m):
	// ReadHeaderTimeout for a request's headers; BodyTimeout for its body
	// (the server's read timeout is both together, and the Events API sets
	// its own body deadline); WriteTimeout from the end of the headers to
	// the end of the answer; IdleTimeout for a keep-alive connection
	// between requests.
	ReadHeaderTimeout time.Duration
	BodyTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	Gatherer          prometheus.Gatherer
	// Registerer receives the per-route request metrics; default
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Server serves the HTTP API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	handler http.Handler
	routes  []string

	mu    sync.Mutex
	addr  net.Addr
	admin func(*http.Request) bool // set by API.Register
}

// maxHeaderBytes bounds a request's headers and query string; no route
// needs more, and net/http answers 431 past it.
const maxHeaderBytes = 64 << 10

// New returns a server; Handle adds routes before Run.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.DefaultRegisterer
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.ReadHeaderTimeout, 5 * time.Second}, {&cfg.BodyTimeout, 30 * time.Second},
		{&cfg.WriteTimeout, time.Minute}, {&cfg.IdleTimeout, time.Minute}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	s.Handle("GET /readyz", http.HandlerFunc(s.readyz))
	s.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	// Anything else: a JSON 404, like every other error of the API.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Code: http.StatusNotFound, Msg: "no such endpoint: " + r.Method + " " + clip(r.URL.Path)})
	})
	// Recover inside the metrics, so a panic is counted as the 500 it becomes.
	s.handler = recoverer(cfg.Logger, canonical(s.mux))
	if m, err := newHTTPMetrics(cfg.Registerer); err != nil {
		cfg.Logger.Warn("serving: HTTP metrics not registered", "err", err)
	} else {
		s.handler = m.instrument(s.handler)
	}
	return s
}

// Handle registers a route, as http.ServeMux.Handle.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Routes lists the patterns registered, in order (for the OpenAPI check).
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// Handler is the server's routes with its middleware, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

// canonical answers a path with dot segments or doubled slashes with a
// JSON 404, as any unknown path, where the mux would redirect it (a 301
// to /v1/jobs for /v1/views/../jobs).
func canonical(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if c := path.Clean(p); p == "" || c != p && c+"/" != p {
			writeError(w, &apiError{Code: http.StatusNotFound, Msg: "no such endpoint: " + r.Method + " " + clip(p)})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged 500 JSON answer: a last resort,
// since bad input is answered with a 4xx before anything can panic.
func recoverer(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("serving: panic", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeError(w, &apiError{Code: http.StatusInternalServerError, Msg: "internal error"})
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// Addr is the address the server listens on, once Run has bound it.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// setAdmin tells the server how to recognize an admin caller, to whom
// /readyz shows the dependencies' errors.
func (s *Server) setAdmin(f func(*http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admin = f
}

func (s *Server) isAdmin(r *http.Request) bool {
	s.mu.Lock()
	f := s.admin
	s.mu.Unlock()
	return f != nil && f(r)
}

// readyz answers 200 when every dependency answers, else 503; each
// dependency is "ok" or "down", and only an admin caller also gets the
// error text (it names hosts, ports and credentials' owners).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	names := make([]string, 0, len(s.cfg.Checks))
	for n := range s.cfg.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	status := map[string]string{}
	admin := s.isAdmin(r)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range names {
		g.Go(func() error {
			res := "ok"
			if err := s.cfg.Checks[n](gctx); err != nil {
				res = "down"
				if admin {
					res = "down: " + err.Error()
				}
				s.cfg.Logger.Warn("serving: readiness check failed", "dependency", n, "err", err)
			}
			mu.Lock()
			status[n] = res
			mu.Unlock()
			return nil
		})
	}
	g.Wait()
	code := http.StatusOK
	for _, res := range status {
		if res != "ok" {
			code = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, status)
}

// Run listens on cfg.Addr and serves until ctx ends, then shuts down
// gracefully, letting requests in flight finish for up to 10 s.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("serving: listen %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:  s.cfg.ReadHeaderTimeout + s.cfg.BodyTimeout,
		WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("serving: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
