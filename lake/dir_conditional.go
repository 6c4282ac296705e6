package lake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// lockName is the lock file of DirStore's conditional writes, at the lake
// root; named like a temporary file so that List never shows it.
const lockName = tmpPrefix + "conditional.lock"

// ReadWithETag reads a whole object and its ETag (the SHA-256 of its
// content). A Put renames a whole file into place, so the bytes read are
// one version, whatever is written meanwhile.
func (s *DirStore) ReadWithETag(ctx context.Context, key string) ([]byte, string, error) {
	if err := checkKey(key); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("lake: get %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return nil, "", fmt.Errorf("lake: get %s: %w", key, err)
	}
	return b, contentETag(b), nil
}

// PutIfMatch replaces key only if its content still has the ETag etag.
func (s *DirStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if etag == "" {
		return "", fmt.Errorf("lake: put-if-match %s: empty etag", key)
	}
	return s.putConditional(ctx, key, body, func(cur string, exists bool) error {
		switch {
		case !exists:
			return fmt.Errorf("%w (%w)", ErrPreconditionFailed, ErrNotExist)
		case cur != etag:
			return ErrPreconditionFailed
		}
		return nil
	})
}

// PutIfAbsent creates key only if there is no object under it.
func (s *DirStore) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	return s.putConditional(ctx, key, body, func(_ string, exists bool) error {
		if exists {
			return ErrPreconditionFailed
		}
		return nil
	})
}

// putConditional writes body to a temporary file, then, holding an
// exclusive lock on the lake's lock file (flock: between goroutines and
// processes alike), reads the current ETag, lets check decide, and renames
// the file into place. Checking and renaming under one lock is what makes
// two writers of one ETag unable to both win. Plain Puts take no lock: like
// S3's unconditional PUTs they are not ordered with conditional ones.
func (s *DirStore) putConditional(ctx context.Context, key string, body []byte, check func(etag string, exists bool) error) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	dst := s.path(key)
	tmp, err := s.writeTemp(ctx, dst, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("lake: conditional put %s: %w", key, err)
	}
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	unlock, err := lockFile(filepath.Join(s.root, lockName))
	if err != nil {
		return "", fmt.Errorf("lake: conditional put %s: %w", key, err)
	}
	defer unlock()
	cur, err := os.ReadFile(dst)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("lake: conditional put %s: %w", key, err)
	}
	if err := check(contentETag(cur), exists); err != nil {
		return "", fmt.Errorf("lake: conditional put %s: %w", key, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("lake: conditional put %s: %w", key, err)
	}
	return contentETag(body), nil
}

// contentETag is DirStore's ETag: the quoted SHA-256 of the content.
func contentETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}
