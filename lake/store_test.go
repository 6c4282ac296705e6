package lake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/lake"
)

// storeSuite is the contract every Store implementation keeps; it runs
// against the local folder and against S3 on LocalStack.
func storeSuite(t *testing.T, s lake.Store) {
	ctx := context.Background()
	t.Run("get missing", func(t *testing.T) {
		_, err := s.Get(ctx, "nope/missing.json")
		if !errors.Is(err, lake.ErrNotExist) {
			t.Fatalf("Get missing = %v, want ErrNotExist", err)
		}
	})
	t.Run("put get replace", func(t *testing.T) {
		if err := lake.PutBytes(ctx, s, "a/b/one.json", []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := lake.PutBytes(ctx, s, "a/b/one.json", []byte("second")); err != nil {
			t.Fatal(err)
		}
		got, err := lake.ReadAll(ctx, s, "a/b/one.json")
		if err != nil || string(got) != "second" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
	})
	t.Run("list by prefix in key order", func(t *testing.T) {
		keys := []string{"l/x/2.p", "l/x/10.p", "l/y/1.p", "l/xz/1.p", "m/1.p"}
		for _, k := range keys {
			if err := lake.PutBytes(ctx, s, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		tests := map[string]string{
			"l/x/": "l/x/10.p,l/x/2.p",
			"l/x":  "l/x/10.p,l/x/2.p,l/xz/1.p",
			"l/":   "l/x/10.p,l/x/2.p,l/xz/1.p,l/y/1.p",
			"q/":   "",
		}
		for prefix, want := range tests {
			objs, err := s.List(ctx, prefix)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Key)
				if o.Size != int64(len(o.Key)) {
					t.Errorf("%s: size %d, want %d", o.Key, o.Size, len(o.Key))
				}
			}
			if strings.Join(got, ",") != want {
				t.Errorf("List(%q) = %v, want %s", prefix, got, want)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := lake.PutBytes(ctx, s, "d/gone.json", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "d/gone.json"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "d/gone.json"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := s.Get(ctx, "d/gone.json"); !errors.Is(err, lake.ErrNotExist) {
			t.Fatalf("Get after delete = %v", err)
		}
		objs, _ := s.List(ctx, "d/")
		if len(objs) != 0 {
			t.Fatalf("List after delete = %v", objs)
		}
	})
	t.Run("large object in parts", func(t *testing.T) {
		big := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16) // 12 MiB: three 5 MiB parts on S3
		if err := s.Put(ctx, "big/blob.bin", bytes.NewReader(big)); err != nil {
			t.Fatal(err)
		}
		got, err := lake.ReadAll(ctx, s, "big/blob.bin")
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("big object: %d bytes back, equal=%v, err=%v", len(got), bytes.Equal(got, big), err)
		}
	})
	t.Run("concurrent puts of one key leave one whole value", func(t *testing.T) {
		var wg sync.WaitGroup
		vals := make([][]byte, 8)
		for i := range vals {
			vals[i] = bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Put(ctx, "race/key", bytes.NewReader(vals[i])); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, err := lake.ReadAll(ctx, s, "race/key")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if bytes.Equal(got, v) {
				return
			}
		}
		t.Fatalf("value is a mix of writes (%d bytes, starts %q)", len(got), got[:8])
	})
	t.Run("bad keys", func(t *testing.T) {
		for _, k := range []string{"", "/abs", "a/../b", "dir/", "a//b"} {
			if err := lake.PutBytes(ctx, s, k, []byte("x")); err == nil {
				t.Errorf("Put(%q) accepted", k)
			}
		}
	})
}

func TestDirStore(t *testing.T) {
	s, err := lake.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storeSuite(t, s)
	t.Run("conditional", func(t *testing.T) { condSuite(t, s, 300) })
}

func TestS3Store(t *testing.T) {
	s, _ := testenv.S3Lake(t)
	storeSuite(t, s)
	t.Run("conditional", func(t *testing.T) { condSuite(t, s, 300) })
}

func TestOpenByURL(t *testing.T) {
	dir := t.TempDir()
	s, err := lake.Open(context.Background(), lake.Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*lake.DirStore); !ok {
		t.Fatalf("file URL opened %T", s)
	}
	if _, err := lake.Open(context.Background(), lake.Config{URL: "gs://b/p"}); err == nil {
		t.Fatal("gs:// accepted")
	}
	for i := range 3 {
		if err := lake.PutBytes(context.Background(), s, fmt.Sprintf("k/%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
}
