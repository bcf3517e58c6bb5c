package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/trail-audit/trail/internal/store"
)

// RunSecrets runs the conformance tests of store.Secrets, in parallel.
// newDB must make a new, empty database on each call and return a function
// that opens a new store on it; every store it opens is closed when the
// test ends (t.Cleanup), and may be closed earlier by the test if it is an
// io.Closer.
func RunSecrets(t *testing.T, newDB func(t *testing.T) (open func() store.Secrets)) {
	tests := []struct {
		name string
		test func(*testing.T, func() store.Secrets)
	}{
		{"PutGet", testSecretPutGet},
		{"FirstWriterWins", testSecretFirstWriterWins},
		{"Reopen", testSecretReopen},
		{"Reseal", testSecretReseal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, newDB(t))
		})
	}
}

func testSecretPutGet(t *testing.T, open func() store.Secrets) {
	ctx := context.Background()
	s := open()
	if got, err := s.Secret(ctx, "log/a/signer"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Secret(missing) = %q, %v; want ErrNotFound", got, err)
	}
	// Any bytes, NUL and invalid UTF-8 included, and an empty secret.
	want := map[string][]byte{
		"log/a/signer": {0, 1, 2, 0xff, 0xfe, 'x', 0},
		"log/b/signer": bytes.Repeat([]byte{0xa5}, 4096),
		"session":      {},
	}
	for name, data := range want {
		if err := s.PutSecret(ctx, name, data); err != nil {
			t.Fatalf("PutSecret(%q) = %v", name, err)
		}
	}
	for name, data := range want {
		got, err := s.Secret(ctx, name)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Secret(%q) = %x, %v; want %x", name, got, err, data)
		}
	}
	if err := s.PutSecret(ctx, "log/a/signer", []byte("other")); !errors.Is(err, store.ErrExists) {
		t.Errorf("PutSecret(taken name) = %v, want ErrExists", err)
	}
	if got, err := s.Secret(ctx, "log/a/signer"); err != nil || !bytes.Equal(got, want["log/a/signer"]) {
		t.Errorf("Secret after a refused PutSecret = %x, %v; want the first %x", got, err, want["log/a/signer"])
	}
	if got, err := s.Secret(ctx, "log/A/signer"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret(name differing in case) = %q, %v; want ErrNotFound", got, err)
	}
}

// testSecretFirstWriterWins races PutSecret under one name through several
// stores on one database: exactly one succeeds, the others get ErrExists,
// and every store then reads the winner's bytes.
func testSecretFirstWriterWins(t *testing.T, open func() store.Secrets) {
	ctx := context.Background()
	const n = 8
	stores := make([]store.Secrets, n)
	for i := range stores {
		stores[i] = open()
	}
	for round := range 5 {
		name := fmt.Sprintf("log/race%d/signer", round)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() { errs[i] = s.PutSecret(ctx, name, []byte{byte(i)}) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: PutSecret(%q) succeeded through stores %d and %d", round, name, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrExists):
				t.Fatalf("round %d: PutSecret(%q) through store %d = %v, want nil or ErrExists", round, name, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no PutSecret(%q) succeeded", round, name)
		}
		for i, s := range stores {
			if got, err := s.Secret(ctx, name); err != nil || !bytes.Equal(got, []byte{byte(winner)}) {
				t.Errorf("round %d: Secret(%q) through store %d = %x, %v; want the winner's %x", round, name, i, got, err, winner)
			}
		}
	}
}

// testSecretReopen checks that secrets survive closing the store.
func testSecretReopen(t *testing.T, open func() store.Secrets) {
	ctx := context.Background()
	s := open()
	if err := s.PutSecret(ctx, "session", []byte("kept")); err != nil {
		t.Fatalf("PutSecret = %v", err)
	}
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
	}
	s = open()
	if got, err := s.Secret(ctx, "session"); err != nil || string(got) != "kept" {
		t.Errorf("Secret after reopening = %q, %v; want %q", got, err, "kept")
	}
	if err := s.PutSecret(ctx, "session", []byte("new")); !errors.Is(err, store.ErrExists) {
		t.Errorf("PutSecret(taken name) after reopening = %v, want ErrExists", err)
	}
}

// testSecretReseal: ResealSecrets replaces every secret with what its
// function returns, seen by every store on the database, and changes
// nothing when the function fails on any of them.
func testSecretReseal(t *testing.T, open func() store.Secrets) {
	ctx := context.Background()
	s, other := open(), open()
	names := []string{"log/a/signer", "log/b/signer", "session"}
	for _, name := range names {
		if err := s.PutSecret(ctx, name, []byte("old "+name)); err != nil {
			t.Fatalf("PutSecret(%q) = %v", name, err)
		}
	}
	failing := errors.New("cannot unseal")
	_, err := s.ResealSecrets(ctx, func(name string, sealed []byte) ([]byte, error) {
		if name == "log/b/signer" {
			return nil, failing
		}
		return []byte("new " + name), nil
	})
	if !errors.Is(err, failing) {
		t.Errorf("ResealSecrets with a failing function = %v, want its error", err)
	}
	for _, name := range names {
		if got, err := other.Secret(ctx, name); err != nil || string(got) != "old "+name {
			t.Errorf("after a failed reseal, Secret(%q) = %q, %v; want it unchanged", name, got, err)
		}
	}
	seen := map[string]string{}
	n, err := s.ResealSecrets(ctx, func(name string, sealed []byte) ([]byte, error) {
		seen[name] = string(sealed)
		return []byte("new " + name), nil
	})
	if err != nil || n != len(names) {
		t.Fatalf("ResealSecrets = %d, %v; want %d, nil", n, err, len(names))
	}
	for _, name := range names {
		if seen[name] != "old "+name {
			t.Errorf("reseal got %q for %q, want its stored bytes", seen[name], name)
		}
		if got, err := other.Secret(ctx, name); err != nil || string(got) != "new "+name {
			t.Errorf("after the reseal, another store's Secret(%q) = %q, %v; want the new bytes", name, got, err)
		}
	}
	if err := s.PutSecret(ctx, "session", []byte("x")); !errors.Is(err, store.ErrExists) {
		t.Errorf("PutSecret over a resealed secret = %v, want ErrExists", err)
	}
}
