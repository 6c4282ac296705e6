package lake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/lambdalake/lambdalake/lake"
)

// condSuite is the contract of conditional writes (DESIGN §2's fenced
// objects); it runs against the local folder and against S3 on LocalStack.
// races is how many times each race is run.
func condSuite(t *testing.T, s lake.ConditionalStore, races int) {
	ctx := context.Background()
	t.Run("create if absent twice", func(t *testing.T) {
		etag, err := s.PutIfAbsent(ctx, "c/new.json", []byte("one"))
		if err != nil || etag == "" {
			t.Fatalf("first PutIfAbsent = %q, %v", etag, err)
		}
		if _, err := s.PutIfAbsent(ctx, "c/new.json", []byte("two")); !errors.Is(err, lake.ErrPreconditionFailed) {
			t.Fatalf("second PutIfAbsent = %v, want ErrPreconditionFailed", err)
		}
		body, got, err := s.ReadWithETag(ctx, "c/new.json")
		if err != nil || string(body) != "one" || got != etag {
			t.Fatalf("after a refused create: %q etag %s, %v; want %q etag %s", body, got, err, "one", etag)
		}
	})
	t.Run("put if match with a stale etag", func(t *testing.T) {
		e0, err := s.PutIfAbsent(ctx, "c/m.json", []byte("v0"))
		if err != nil {
			t.Fatal(err)
		}
		e1, err := s.PutIfMatch(ctx, "c/m.json", []byte("v1"), e0)
		if err != nil || e1 == e0 {
			t.Fatalf("PutIfMatch with the current etag = %q, %v (old %q)", e1, err, e0)
		}
		if _, err := s.PutIfMatch(ctx, "c/m.json", []byte("v2"), e0); !errors.Is(err, lake.ErrPreconditionFailed) {
			t.Fatalf("PutIfMatch with a stale etag = %v, want ErrPreconditionFailed", err)
		}
		body, got, err := s.ReadWithETag(ctx, "c/m.json")
		if err != nil || string(body) != "v1" || got != e1 {
			t.Fatalf("after a refused put: %q etag %s, %v; want v1 etag %s", body, got, err, e1)
		}
	})
	t.Run("a plain put moves the etag", func(t *testing.T) {
		e0, err := s.PutIfAbsent(ctx, "c/p.json", []byte("v0"))
		if err != nil {
			t.Fatal(err)
		}
		if err := lake.PutBytes(ctx, s, "c/p.json", []byte("plain")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutIfMatch(ctx, "c/p.json", []byte("v1"), e0); !errors.Is(err, lake.ErrPreconditionFailed) {
			t.Fatalf("PutIfMatch after a plain Put = %v, want ErrPreconditionFailed", err)
		}
		_, e1, err := s.ReadWithETag(ctx, "c/p.json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutIfMatch(ctx, "c/p.json", []byte("v1"), e1); err != nil {
			t.Fatalf("PutIfMatch with the etag read after a plain Put: %v", err)
		}
	})
	t.Run("put if match on a deleted object", func(t *testing.T) {
		e0, err := s.PutIfAbsent(ctx, "c/d.json", []byte("v0"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "c/d.json"); err != nil {
			t.Fatal(err)
		}
		_, err = s.PutIfMatch(ctx, "c/d.json", []byte("v1"), e0)
		if !errors.Is(err, lake.ErrPreconditionFailed) || !errors.Is(err, lake.ErrNotExist) {
			t.Fatalf("PutIfMatch on a deleted object = %v, want ErrPreconditionFailed and ErrNotExist", err)
		}
		if _, _, err := s.ReadWithETag(ctx, "c/d.json"); !errors.Is(err, lake.ErrNotExist) {
			t.Fatalf("refused put created the object: %v", err)
		}
	})
	t.Run("put version", func(t *testing.T) {
		e0, err := lake.PutVersion(ctx, s, "c/v.json", []byte("v0"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lake.PutVersion(ctx, s, "c/v.json", []byte("again"), ""); !errors.Is(err, lake.ErrPreconditionFailed) {
			t.Fatalf("PutVersion without etag over an object = %v", err)
		}
		if _, err := lake.PutVersion(ctx, s, "c/v.json", []byte("v1"), e0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("racing writers: exactly one wins", func(t *testing.T) {
		for i := range races {
			key := fmt.Sprintf("c/race/%d.json", i)
			win, etag := race(t, 2, func(w int) (string, error) {
				return s.PutIfAbsent(ctx, key, []byte(fmt.Sprintf("create %d", w)))
			})
			checkWinner(t, ctx, s, key, "create", win, etag)
			win, etag = race(t, 2, func(w int) (string, error) {
				return s.PutIfMatch(ctx, key, []byte(fmt.Sprintf("update %d", w)), etag)
			})
			checkWinner(t, ctx, s, key, "update", win, etag)
			if t.Failed() {
				t.Fatalf("round %d of %d", i, races)
			}
		}
	})
	t.Run("counter: no lost update", func(t *testing.T) {
		const writers, each = 4, 20
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := increment(ctx, s, "c/counter", each); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := readCounter(t, s, "c/counter"); n != writers*each {
			t.Fatalf("counter = %d after %d increments", n, writers*each)
		}
	})
}

// race runs n writers at once and returns the one that won (-1: none, -2:
// more than one) and its ETag; a loser must fail with ErrPreconditionFailed.
func race(t *testing.T, n int, write func(w int) (string, error)) (winner int, etag string) {
	t.Helper()
	start := make(chan struct{})
	etags, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			etags[w], errs[w] = write(w)
		}()
	}
	close(start)
	wg.Wait()
	winner = -1
	for w, err := range errs {
		switch {
		case err == nil && winner == -1:
			winner, etag = w, etags[w]
		case err == nil:
			winner = -2
		case !errors.Is(err, lake.ErrPreconditionFailed):
			t.Errorf("writer %d: %v, want nil or ErrPreconditionFailed", w, err)
		}
	}
	return winner, etag
}

func checkWinner(t *testing.T, ctx context.Context, s lake.ConditionalStore, key, what string, win int, etag string) {
	t.Helper()
	switch win {
	case -1:
		t.Errorf("%s %s: no writer won", what, key)
		return
	case -2:
		t.Errorf("%s %s: more than one writer won", what, key)
		return
	}
	body, got, err := s.ReadWithETag(ctx, key)
	if want := fmt.Sprintf("%s %d", what, win); err != nil || string(body) != want || got != etag {
		t.Errorf("%s %s: object %q etag %s (%v); the winner wrote %q etag %s", what, key, body, got, err, want, etag)
	}
}

// increment adds n to a decimal counter, one read-compare-and-swap at a
// time, rereading whenever another writer got in first.
func increment(ctx context.Context, s lake.ConditionalStore, key string, n int) error {
	for done := 0; done < n; {
		body, etag, err := s.ReadWithETag(ctx, key)
		if err != nil && !errors.Is(err, lake.ErrNotExist) {
			return err
		}
		v := 0
		if err == nil {
			if v, err = strconv.Atoi(string(body)); err != nil {
				return fmt.Errorf("counter %q: %w", body, err)
			}
		}
		_, err = lake.PutVersion(ctx, s, key, []byte(strconv.Itoa(v+1)), etag)
		switch {
		case err == nil:
			done++
		case !errors.Is(err, lake.ErrPreconditionFailed):
			return err
		}
	}
	return nil
}

func readCounter(t *testing.T, s lake.ConditionalStore, key string) int {
	t.Helper()
	b, _, err := s.ReadWithETag(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Two processes incrementing one counter in one lake folder lose no update:
// DirStore's lock holds between processes, not only between goroutines.
func TestDirStoreConditionalAcrossProcesses(t *testing.T) {
	const procs, each = 3, 150
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, procs)
	outs := make([]bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0]) // TestMain runs counterProcess
		cmds[i].Env = append(os.Environ(), "LAKE_COUNTER_DIR="+dir, "LAKE_COUNTER_N="+strconv.Itoa(each))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	s, err := lake.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := readCounter(t, s, "counter"); n != procs*each {
		t.Fatalf("counter = %d after %d increments by %d processes", n, procs*each, procs)
	}
}

// TestMain runs the child processes of TestDirStoreConditionalAcrossProcesses
// (LAKE_COUNTER_DIR set) instead of the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv("LAKE_COUNTER_DIR"); dir != "" {
		if err := counterProcess(dir, os.Getenv("LAKE_COUNTER_N")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// counterProcess increments the counter in the lake folder dir n times.
func counterProcess(dir, n string) error {
	times, err := strconv.Atoi(n)
	if err != nil {
		return fmt.Errorf("LAKE_COUNTER_N: %w", err)
	}
	s, err := lake.NewDirStore(dir)
	if err != nil {
		return err
	}
	return increment(context.Background(), s, "counter", times)
}
