package lake

import (
	"context"
	"errors"
)

// ErrPreconditionFailed is returned by a conditional write whose condition
// did not hold: the object is no longer the version the caller read, or it
// exists when the caller meant to create it. Nothing was written.
var ErrPreconditionFailed = errors.New("lake: precondition failed")

// ConditionalStore is a Store that also writes conditionally: an object is
// replaced only if it is still the version the writer read (compare-and-swap
// on its ETag), or created only if it does not exist. The objects a job owns
// (_state.json, checkpoints) are written this way (DESIGN §2), so a writer
// that lost its lease fails instead of overwriting its successor's work.
// S3Store and DirStore implement it.
//
// An ETag is an opaque token of an object's content: the same bytes give
// the same ETag (S3's is the MD5 of a single-part object, DirStore's a
// SHA-256), so a value written back after a change matches again. Tokens of
// one store are not comparable with another's. Conditional objects are read
// and written whole, in memory: they are small.
type ConditionalStore interface {
	Store
	// ReadWithETag reads a whole object and its ETag; ErrNotExist if
	// there is none.
	ReadWithETag(ctx context.Context, key string) (body []byte, etag string, err error)
	// PutIfMatch replaces the object under key with body only if its ETag
	// is still etag (not empty: see PutVersion), and returns the new ETag.
	// ErrPreconditionFailed if the object changed; if it was deleted, the
	// error is also ErrNotExist.
	PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error)
	// PutIfAbsent creates key with body only if no object is there, and
	// returns the new ETag; ErrPreconditionFailed if one is.
	PutIfAbsent(ctx context.Context, key string, body []byte) (string, error)
}

// PutVersion writes body under key if the object there is still the
// version etag names, or, with etag "", if there is none yet: the write
// that follows a ReadWithETag (or its ErrNotExist).
func PutVersion(ctx context.Context, s ConditionalStore, key string, body []byte, etag string) (string, error) {
	if etag == "" {
		return s.PutIfAbsent(ctx, key, body)
	}
	return s.PutIfMatch(ctx, key, body, etag)
}

var (
	_ ConditionalStore = (*S3Store)(nil)
	_ ConditionalStore = (*DirStore)(nil)
)
