package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/internal/store/sqlite/sqlitetest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// TestTamperer checks the SQLite Tamperer (package sqlitetest), through
// which the tamper and damage tests of every package reach the database.
func TestTamperer(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (func(t *testing.T) store.Store, storetest.Tamperer) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "trail.db")
		s, err := sqlite.Create(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		tp, err := sqlitetest.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Close() })
		return func(t *testing.T) store.Store {
			s, err := sqlite.Open(ctx, path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, tp
	})
}
