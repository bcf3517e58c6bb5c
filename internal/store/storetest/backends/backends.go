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
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/postgres/postgrestest"
	"github.com/trail-audit/trail/internal/store/sqlite/sqlitetest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// Backend is one store backend, as tests see it. A store is named by its
// location: a data directory for SQLite, a postgres:// URL for PostgreSQL.
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
	// MasterKey is the key that seals the logs' signing keys in a store
	// that keeps them in the database (trail.Options.MasterKey), the same
	// for every store of the backend; nil for SQLite, which keeps them in
	// files.
	MasterKey []byte
}

// EnvVar names the environment variable that limits the backends All
// returns to those it lists, comma-separated ("sqlite"); unset or empty,
// All returns every one. CI's race-detector run uses it to run the
// cross-package tests on SQLite alone, as the PostgreSQL store's own
// tests run under the race detector anyway.
const EnvVar = "TRAIL_TEST_BACKENDS"

// All returns every backend: SQLite, then Postgres, less those EnvVar
// leaves out.
func All() []Backend {
	all := []Backend{SQLite, Postgres}
	only := os.Getenv(EnvVar)
	if only == "" {
		return all
	}
	names := strings.Split(only, ",")
	return slices.DeleteFunc(all, func(b Backend) bool { return !slices.Contains(names, b.Name) })
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

// SQLite is the SQLite backend. A store is a data directory.
var SQLite = Backend{
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

// Postgres is the PostgreSQL backend. A store is a database on the server
// that package pgtest uses (TRAIL_TEST_POSTGRES), named by its postgres://
// URL; a test that asks for one is skipped when the server cannot be
// reached, and fails under CI=true.
var Postgres = Backend{
	Name: "postgres",
	// New returns the URL of a new, empty database, dropped when t ends.
	New: pgtest.DB,
	Copy: func(t testing.TB, src string) string {
		t.Helper()
		return copyDatabase(t, src)
	},
	Tamper: func(t testing.TB, loc string) storetest.Tamperer {
		t.Helper()
		tp, err := postgrestest.Open(context.Background(), loc)
		if err != nil {
			t.Fatalf("open the database of %s for tampering: %v", loc, err)
		}
		t.Cleanup(func() { tp.Close() })
		return tp
	},
	MasterKey: []byte{
		0x6b, 0x1f, 0xc4, 0x52, 0x9e, 0x07, 0xd3, 0x38, 0xa1, 0x5c, 0x80, 0xe2, 0x4d, 0x96, 0x3b, 0x71,
		0x0f, 0xca, 0x27, 0x58, 0xbd, 0x94, 0x13, 0x6e, 0xf0, 0x29, 0x85, 0xd7, 0x42, 0xab, 0x1c, 0x60,
	},
}

// copyDatabase creates a database holding a copy of the one at src (a
// URL pgtest.DB returned), which no one may have connected, and returns
// its URL; it is dropped when t ends.
func copyDatabase(t testing.TB, src string) string {
	t.Helper()
	u, err := url.Parse(src)
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	from := strings.TrimPrefix(u.Path, "/")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	defer conn.Close(context.Background())
	var b [8]byte
	rand.Read(b[:])
	name := "trail_test_" + hex.EncodeToString(b[:])
	// A store just closed may still be letting go of its connections,
	// which CREATE DATABASE ... TEMPLATE refuses: try again a while.
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{from}.Sanitize())
		if err == nil || i == 40 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("copy database %s: %v (is a store still open on it?)", from, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgtest.ServerURL())
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
