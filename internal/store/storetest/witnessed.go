package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// LogWitnessed is what RunWitnessed tests: a store's cosigned checkpoints,
// for the logs it holds.
type LogWitnessed interface {
	store.Log
	store.Witnessed
}

// RunWitnessed runs the conformance tests of store.Witnessed, in
// parallel. newDB must make a new, empty database on each call and return
// a function that opens a new store on it; every store it opens is closed
// when the test ends, and may be closed earlier by the test (it is an
// io.Closer).
func RunWitnessed(t *testing.T, newDB func(t *testing.T) (open func() LogWitnessed)) {
	tests := []struct {
		name string
		test func(*testing.T, func() LogWitnessed)
	}{
		{"PutGet", testWitnessedPutGet},
		{"NewestBySize", testWitnessedNewestBySize},
		{"Reopen", testWitnessedReopen},
		{"ConcurrentStores", testWitnessedConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, newDB(t))
		})
	}
}

// cosigned is a made-up cosigned checkpoint of size n: the store keeps
// bytes, so they need not verify. tag tells two of one size apart.
func cosigned(n int64, tag string) store.Checkpoint {
	return store.Checkpoint{
		Size:     n,
		Note:     fmt.Appendf(nil, "example.com/log\n%d\nroot=\n\n— log abc=\n— w1 %s=\n", n, tag),
		SignedAt: epoch.Add(time.Duration(n) * time.Second),
	}
}

func checkCosigned(t *testing.T, call string, got store.Checkpoint, err error, want store.Checkpoint) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v, want size %d", call, err, want.Size)
	}
	if got.Size != want.Size || !bytes.Equal(got.Note, want.Note) || !got.SignedAt.Equal(want.SignedAt) {
		t.Errorf("%s = size %d, signed at %v, note %q; want size %d, %v, %q", call, got.Size, got.SignedAt, got.Note, want.Size, want.SignedAt, want.Note)
	}
}

func testWitnessedPutGet(t *testing.T, open func() LogWitnessed) {
	ctx := context.Background()
	s := open()
	a, err := s.CreateLog(ctx, "a", "example.com/a", "a+00000000+AAAA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateLog(ctx, "b", "example.com/b", "b+00000000+AAAA")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Cosigned(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Cosigned(empty) = size %d, %v; want ErrNotFound", c.Size, err)
	}
	if c, err := s.CosignedAt(ctx, a.ID, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CosignedAt(empty, 1) = size %d, %v; want ErrNotFound", c.Size, err)
	}
	if err := s.PutCosigned(ctx, a.ID+b.ID+100, cosigned(1, "x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutCosigned(no such log) = %v, want ErrNotFound", err)
	}
	for _, n := range []int64{1, 7, 300} {
		if err := s.PutCosigned(ctx, a.ID, cosigned(n, "a")); err != nil {
			t.Fatalf("PutCosigned(a, %d) = %v", n, err)
		}
	}
	if err := s.PutCosigned(ctx, b.ID, cosigned(2, "b")); err != nil {
		t.Fatalf("PutCosigned(b, 2) = %v", err)
	}
	for _, n := range []int64{1, 7, 300} {
		c, err := s.CosignedAt(ctx, a.ID, n)
		checkCosigned(t, fmt.Sprintf("CosignedAt(a, %d)", n), c, err, cosigned(n, "a"))
	}
	if c, err := s.CosignedAt(ctx, a.ID, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CosignedAt(a, 2) = size %d, %v; want ErrNotFound (only b has it)", c.Size, err)
	}
	c, err := s.Cosigned(ctx, a.ID)
	checkCosigned(t, "Cosigned(a)", c, err, cosigned(300, "a"))
	c, err = s.Cosigned(ctx, b.ID)
	checkCosigned(t, "Cosigned(b)", c, err, cosigned(2, "b"))

	// A second one of a size stored keeps the first.
	if err := s.PutCosigned(ctx, a.ID, cosigned(7, "other")); err != nil {
		t.Fatalf("PutCosigned(a, 7) again = %v, want nil", err)
	}
	c, err = s.CosignedAt(ctx, a.ID, 7)
	checkCosigned(t, "CosignedAt(a, 7) after a second put", c, err, cosigned(7, "a"))
}

// An older cosigned checkpoint stored after a newer one never replaces
// it, as when two servers witness the log and one is slower.
func testWitnessedNewestBySize(t *testing.T, open func() LogWitnessed) {
	ctx := context.Background()
	s := open()
	l, err := s.CreateLog(ctx, "a", "example.com/a", "a+00000000+AAAA")
	if err != nil {
		t.Fatal(err)
	}
	var newest int64
	for _, n := range []int64{10, 1000, 3, 999, 1, 256} {
		newest = max(newest, n)
		if err := s.PutCosigned(ctx, l.ID, cosigned(n, "t")); err != nil {
			t.Fatalf("PutCosigned(%d) = %v", n, err)
		}
		c, err := s.Cosigned(ctx, l.ID)
		checkCosigned(t, fmt.Sprintf("Cosigned after PutCosigned(%d)", n), c, err, cosigned(newest, "t"))
	}
}

func testWitnessedReopen(t *testing.T, open func() LogWitnessed) {
	ctx := context.Background()
	s := open()
	l, err := s.CreateLog(ctx, "a", "example.com/a", "a+00000000+AAAA")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCosigned(ctx, l.ID, cosigned(42, "r")); err != nil {
		t.Fatal(err)
	}
	if err := s.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	c, err := s.Cosigned(ctx, l.ID)
	checkCosigned(t, "Cosigned after reopening", c, err, cosigned(42, "r"))
}

// Stores sharing the database store cosigned checkpoints of one log at
// once, sizes in any order and some sizes by both: the newest is the
// largest size, and each size holds one of the notes given for it.
func testWitnessedConcurrent(t *testing.T, open func() LogWitnessed) {
	ctx := context.Background()
	a, b := open(), open()
	l, err := a.CreateLog(ctx, "a", "example.com/a", "a+00000000+AAAA")
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, s := range []LogWitnessed{a, b} {
		tag := string(rune('a' + i))
		wg.Go(func() {
			for _, k := range rand.Perm(n) {
				if err := s.PutCosigned(ctx, l.ID, cosigned(int64(k+1), tag)); err != nil {
					errs <- fmt.Errorf("store %s: PutCosigned(%d) = %w", tag, k+1, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range []LogWitnessed{a, b} {
		c, err := s.Cosigned(ctx, l.ID)
		if err != nil || c.Size != n {
			t.Fatalf("Cosigned = size %d, %v; want %d", c.Size, err, n)
		}
		for k := int64(1); k <= n; k++ {
			c, err := s.CosignedAt(ctx, l.ID, k)
			if err != nil {
				t.Fatalf("CosignedAt(%d) = %v", k, err)
			}
			if !bytes.Equal(c.Note, cosigned(k, "a").Note) && !bytes.Equal(c.Note, cosigned(k, "b").Note) {
				t.Errorf("CosignedAt(%d) = %q, want one of the notes stored for it", k, c.Note)
			}
		}
	}
}
