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

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, s Store, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("lake: read %s: %w", key, err)
	}
	return b, nil
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
