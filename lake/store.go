package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/internal/backoff"
)

// ErrNotExist is returned by Get for a key that does not exist.
var ErrNotExist = errors.New("lake: object does not exist")

// Object describes one stored object.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Store is an object store. Keys are slash-separated paths relative to the
// lake root. Implementations are safe for concurrent use.
type Store interface {
	// Put stores body under key atomically, replacing any object there.
	Put(ctx context.Context, key string, body io.Reader) error
	// Get opens an object; ErrNotExist if there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ReadAll reads a whole object. A body that breaks off after a successful
// Get is read again from the start (see readWhole).
func ReadAll(ctx context.Context, s Store, key string) ([]byte, error) {
	return readWhole(ctx, func(ctx context.Context) ([]byte, bool, error) {
		rc, err := s.Get(ctx, key)
		if err != nil {
			return nil, false, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return nil, true, fmt.Errorf("lake: read %s: %w", key, err)
		}
		return b, false, nil
	})
}

// bodyAttempts bounds readWhole: a body that breaks off (a connection reset
// mid-body on S3; LocalStack answering a read that races an overwrite of
// the key, or a PUT cut off by a kill) is usually over in milliseconds,
// while an object that always breaks must still fail its reader soon. Four
// attempts over 140 ms were once not enough on a loaded machine (a fresh
// clone's make test, a checkpoint read right after a kill mid-PUT): eight
// attempts wait about 2.3 s in all.
const bodyAttempts = 8

// bodyRetry is the wait between readWhole's attempts.
var bodyRetry = backoff.Policy{Initial: 20 * time.Millisecond, Max: time.Second}

// readWhole runs read, which fetches and reads one whole object, again
// while its body broke off (broken true), at most bodyAttempts times. The
// AWS SDK retries requests, not a body it has handed over, so one reset
// connection would otherwise end the caller's run (a compactor start, a
// watermark, a recompute). Errors of the request itself (missing object,
// refused, the SDK's own retries spent) are returned at once.
func readWhole(ctx context.Context, read func(context.Context) (b []byte, broken bool, err error)) ([]byte, error) {
	for n := 0; ; n++ {
		b, broken, err := read(ctx)
		if err == nil || !broken || n+1 >= bodyAttempts || ctx.Err() != nil {
			return b, err
		}
		if !backoff.Sleep(ctx, bodyRetry.Delay(n)) {
			return nil, err
		}
	}
}

// PutBytes stores b under key.
func PutBytes(ctx context.Context, s Store, key string, b []byte) error {
	return s.Put(ctx, key, bytes.NewReader(b))
}

// Config says where the lake is and how to reach S3.
type Config struct {
	URL string // s3://bucket/prefix or file:///dir
	S3  S3Config
}

// Open returns the Store for a lake URL.
func Open(ctx context.Context, cfg Config) (Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("lake: parse url %q: %w", cfg.URL, err)
	}
	switch u.Scheme {
	case "s3":
		return NewS3Store(ctx, u.Host, strings.Trim(u.Path, "/"), cfg.S3)
	case "file":
		return NewDirStore(u.Path)
	}
	return nil, fmt.Errorf("lake: url %q: scheme %q not supported (want s3:// or file://)", cfg.URL, u.Scheme)
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("lake: bad key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("lake: bad key %q", key)
		}
	}
	return nil
}
