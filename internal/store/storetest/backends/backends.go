// Package backends lists the store backends Trail's tests run on, with
// what a test needs of each: a place for a new store, a copy of a store,
// and the storetest.Tamperer that reaches its raw storage. The tamper and
// damage tests of every package loop over All, so that they run on each
// backend: a new backend is listed here, with its Tamperer in a
// test-support package of its own, and those tests run on it unchanged.
//
// It is for tests only; production code never imports it.
package backends

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/trail-audit/trail/internal/store/sqlite/sqlitetest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// Backend is one store backend, as tests see it. A store is named by its
// location: a data directory for SQLite.
type Backend struct {
	// Name names the backend, and the subtests Run runs on it.
	Name string
	// New returns the location of a new store, where none is yet: for
	// SQLite, a data directory that does not exist, which trail.Init and
	// trail.Open take. A backend whose stores are not directories returns
	// the URL that trail.InitStore and trail.OpenStore take, and the tests
	// open stores through those. The store is removed when t ends.
	New func(t testing.TB) string
	// Copy returns the location of a new store that holds a copy of the
	// store at src, which no one may have open.
	Copy func(t testing.TB, src string) string
	// Tamper opens the raw storage of the store at loc. It is closed when
	// t ends, if not before.
	Tamper func(t testing.TB, loc string) storetest.Tamperer
}

// All returns every backend.
func All() []Backend {
	return []Backend{sqliteBackend}
}

// Run runs f as a subtest of t on every backend, named after it.
func Run(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range All() {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// databaseFile is the database in a SQLite data directory
// (trail.DatabaseFile).
const databaseFile = "trail.db"

var sqliteBackend = Backend{
	Name: "sqlite",
	New: func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "data")
	},
	Copy: func(t testing.TB, src string) string {
		t.Helper()
		dst := filepath.Join(t.TempDir(), "data")
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, path)
			if err != nil {
				return err
			}
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o700)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
		})
		if err != nil {
			t.Fatalf("copy %s: %v", src, err)
		}
		return dst
	},
	Tamper: func(t testing.TB, loc string) storetest.Tamperer {
		t.Helper()
		tp, err := sqlitetest.Open(filepath.Join(loc, databaseFile))
		if err != nil {
			t.Fatalf("open the database of %s for tampering: %v", loc, err)
		}
		t.Cleanup(func() { tp.Close() })
		return tp
	},
}
