package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// tmpPrefix marks files being written; List skips them, so a crash mid-Put
// leaves debris but never a visible half object.
const tmpPrefix = ".tmp-"

var _ Store = (*DirStore)(nil)

// DirStore is a Store in a local folder. Put writes a temporary file and
// renames it into place, which is atomic on POSIX file systems. Conditional
// writes (ConditionalStore) compare and rename under a flock on one lock
// file at the root, so they hold between processes on one host (not over
// NFS, whose flock is unreliable).
type DirStore struct {
	root string
}

// NewDirStore opens (creating if needed) a lake folder.
func NewDirStore(root string) (*DirStore, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("lake: create %s: %w", root, err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("lake: %w", err)
	}
	return &DirStore{root: abs}, nil
}

func (s *DirStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

func (s *DirStore) Put(ctx context.Context, key string, body io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	dst := s.path(key)
	tmp, err := s.writeTemp(ctx, dst, body)
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lake: put %s: %w", key, err)
	}
	return nil
}

// writeTemp writes body, synced, to a temporary file beside dst (so a
// rename can move it into place) and returns its name.
func (s *DirStore) writeTemp(ctx context.Context, dst string, body io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, ctxReader{ctx, body})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (s *DirStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, key)
	}
	if err != nil {
		return nil, fmt.Errorf("lake: get %s: %w", key, err)
	}
	return f, nil
}

func (s *DirStore) List(ctx context.Context, prefix string) ([]Object, error) {
	// Walk only the deepest folder the prefix names in full.
	dir := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	var out []Object
	err := filepath.WalkDir(s.path(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		out = append(out, Object{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lake: list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *DirStore) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := os.Remove(s.path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lake: delete %s: %w", key, err)
	}
	// Tidy empty partition folders so listings and `ls` stay readable.
	for dir := path.Dir(key); dir != "." && err == nil; dir = path.Dir(dir) {
		err = os.Remove(s.path(dir)) // fails, and stops, on a non-empty folder
	}
	return nil
}

var _ io.Reader = ctxReader{}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
