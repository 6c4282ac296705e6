package lake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
)

// breakingProxy sits between a store and LocalStack and cuts the first
// `breaks` GET responses off mid-body: the status and Content-Length go
// out whole, then half the body, then the connection closes, as a reset
// connection or LocalStack racing an overwrite leaves it.
type breakingProxy struct {
	breaks atomic.Int32 // GET bodies still to break
	gets   atomic.Int32 // GETs seen
}

func newBreakingProxy(t *testing.T, endpoint string) (*breakingProxy, string) {
	t.Helper()
	target, err := neturl.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &breakingProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Query().Has("list-type") {
			rp.ServeHTTP(w, r)
			return
		}
		p.gets.Add(1)
		if p.breaks.Add(-1) < 0 {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		panic(http.ErrAbortHandler) // the connection closes short of Content-Length
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL
}

// A body that breaks off after a successful GET is read again, a bounded
// number of times: the SDK retries requests, not bodies, and before this a
// single reset connection failed a compactor's checkpoint read (CI, 2026-11-30).
func TestS3BrokenBodyIsReadAgain(t *testing.T) {
	direct, url := testenv.S3Lake(t)
	proxy, endpoint := newBreakingProxy(t, testenv.S3Endpoint(t))
	cfg := testenv.S3Config(t)
	cfg.Endpoint = endpoint
	_, prefix, _ := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
	s, err := lake.NewS3Store(context.Background(), testenv.Bucket, prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := strings.Repeat("checkpoint ", 500)
	if err := lake.PutBytes(ctx, direct, "cp/0.json", []byte(want)); err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name string
		read func() ([]byte, error)
	}{
		{"ReadAll", func() ([]byte, error) { return lake.ReadAll(ctx, s, "cp/0.json") }},
		{"ReadWithETag", func() ([]byte, error) { b, _, err := s.ReadWithETag(ctx, "cp/0.json"); return b, err }},
	}
	tests := []struct {
		breaks   int32
		wantGets int32
		wantErr  bool
	}{
		{breaks: 0, wantGets: 1},
		{breaks: 1, wantGets: 2},
		{breaks: 7, wantGets: 8},
		{breaks: 8, wantGets: 8, wantErr: true}, // bounded: an always-broken object fails its reader
	}
	for _, r := range reads {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%d breaks", r.name, tt.breaks), func(t *testing.T) {
				proxy.breaks.Store(tt.breaks)
				proxy.gets.Store(0)
				got, err := r.read()
				if gets := proxy.gets.Load(); gets != tt.wantGets {
					t.Errorf("GETs = %d, want %d", gets, tt.wantGets)
				}
				if tt.wantErr {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("err = %v, want unexpected EOF", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Fatalf("read %d bytes, want %d", len(got), len(want))
				}
			})
		}
	}
	t.Run("missing object is not retried", func(t *testing.T) {
		proxy.breaks.Store(0)
		proxy.gets.Store(0)
		if _, err := lake.ReadAll(ctx, s, "cp/missing.json"); !errors.Is(err, lake.ErrNotExist) {
			t.Fatalf("err = %v, want ErrNotExist", err)
		}
		if gets := proxy.gets.Load(); gets != 1 {
			t.Errorf("GETs = %d, want 1", gets)
		}
	})
}
