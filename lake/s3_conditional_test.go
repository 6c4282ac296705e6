package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeS3 answers PutObject with scripted statuses and GetObject with a
// fixed object, counting the PUTs, to pin down what the SDK retries.
type fakeS3 struct {
	mu     sync.Mutex
	puts   []int  // status of each PUT in turn; 200 once they run out
	stored string // what GET answers; "" is 404
	hits   int
	header http.Header // of the last PUT
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodPut:
		io.Copy(io.Discard, r.Body)
		f.header = r.Header.Clone()
		status := http.StatusOK
		if f.hits < len(f.puts) {
			status = f.puts[f.hits]
		}
		f.hits++
		if status == http.StatusOK {
			w.Header().Set("ETag", `"new"`)
			return
		}
		code := map[int]string{412: "PreconditionFailed", 409: "ConditionalRequestConflict", 404: "NoSuchKey", 500: "InternalError"}[status]
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>scripted</Message><RequestId>1</RequestId></Error>`, code)
	case http.MethodGet:
		if f.stored == "" {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>`)
			return
		}
		w.Header().Set("ETag", `"stored"`)
		fmt.Fprint(w, f.stored)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func TestS3ConditionalPutRetries(t *testing.T) {
	tests := []struct {
		name     string
		ifMatch  bool    // PutIfMatch, else PutIfAbsent
		puts     []int   // scripted PUT statuses
		stored   string  // the object a GET finds afterwards
		wantHits int     // PUT requests sent
		wantErr  []error // all must match; none: success
		wantETag string
	}{
		{name: "412 is final", puts: []int{412}, wantHits: 1, wantErr: []error{ErrPreconditionFailed}},
		{name: "412 is final even when the object holds our bytes", puts: []int{412}, stored: "body",
			wantHits: 1, wantErr: []error{ErrPreconditionFailed}},
		{name: "409 conflict is retried", puts: []int{409, 200}, wantHits: 2, wantETag: `"new"`},
		{name: "409 then 412", puts: []int{409, 412}, stored: "other", wantHits: 2, wantErr: []error{ErrPreconditionFailed}},
		{name: "412 after a retry, our bytes stored: the first attempt landed", puts: []int{500, 412}, stored: "body",
			wantHits: 2, wantETag: `"stored"`},
		{name: "412 after a retry, other bytes stored", puts: []int{500, 412}, stored: "other",
			wantHits: 2, wantErr: []error{ErrPreconditionFailed}},
		{name: "if-match on a missing object", ifMatch: true, puts: []int{404}, wantHits: 1,
			wantErr: []error{ErrPreconditionFailed, ErrNotExist}},
		{name: "if-match 412", ifMatch: true, puts: []int{412}, wantHits: 1, wantErr: []error{ErrPreconditionFailed}},
		{name: "other errors are not a failed condition", puts: []int{400}, wantHits: 1, wantErr: []error{errNotPrecondition}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeS3{puts: tt.puts, stored: tt.stored}
			srv := httptest.NewServer(f)
			defer srv.Close()
			s, err := NewS3Store(context.Background(), "b", "p", S3Config{Endpoint: srv.URL, Region: "us-east-1",
				PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s", MaxAttempts: 3})
			if err != nil {
				t.Fatal(err)
			}
			var etag string
			if tt.ifMatch {
				etag, err = s.PutIfMatch(context.Background(), "k.json", []byte("body"), `"old"`)
			} else {
				etag, err = s.PutIfAbsent(context.Background(), "k.json", []byte("body"))
			}
			if f.hits != tt.wantHits {
				t.Errorf("%d PUTs, want %d", f.hits, tt.wantHits)
			}
			for _, want := range tt.wantErr {
				if want == errNotPrecondition {
					if err == nil || errors.Is(err, ErrPreconditionFailed) {
						t.Errorf("err = %v, want an error that is not ErrPreconditionFailed", err)
					}
				} else if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
			if len(tt.wantErr) == 0 && (err != nil || etag != tt.wantETag) {
				t.Errorf("= %q, %v; want %q", etag, err, tt.wantETag)
			}
			h := "If-None-Match"
			want := "*"
			if tt.ifMatch {
				h, want = "If-Match", `"old"`
			}
			if got := f.header.Get(h); got != want {
				t.Errorf("PUT header %s = %q, want %q (headers %v)", h, got, want, strings.Join(headerNames(f.header), ","))
			}
		})
	}
}

var errNotPrecondition = errors.New("any error but a failed precondition")

func headerNames(h http.Header) []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	return out
}
