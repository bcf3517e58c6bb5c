package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// The tests that run on every backend (backends.Run) name a store by the
// flags storeOn gives for it, and open it in this process with openOn.

// storeOn returns the flags that name the store at loc, a location b
// gave: --data DIR for a data directory; for a store URL, --store URL and
// --master-key-file, a file holding b.MasterKey, removed when t ends.
func storeOn(t *testing.T, b backends.Backend, loc string) []string {
	t.Helper()
	if b.MasterKey == nil {
		return []string{"--data", loc}
	}
	key := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(b.MasterKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--store", loc, "--master-key-file", key}
}

// at returns the command line of trail with the store flags st, as
// global flags, then args: a command and its own.
func at(st []string, args ...string) []string {
	return append(slices.Clone(st), args...)
}

// openOn opens the store at loc, a location b gave: a data directory
// (trail.Open), or a URL (trail.OpenStore, with b's master key).
func openOn(ctx context.Context, b backends.Backend, loc string, opts trail.Options) (*trail.DB, error) {
	if b.MasterKey == nil {
		return trail.Open(ctx, loc, opts)
	}
	opts.MasterKey = b.MasterKey
	return trail.OpenStore(ctx, loc, opts)
}
