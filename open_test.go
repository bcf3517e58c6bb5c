package trail_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// snapshot lists what is at path: every file under it with a hash of its
// content, and every directory. It is empty if nothing is there.
func snapshot(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == path {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sqliteFile creates an SQLite database at path and runs stmts in it.
func sqliteFile(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// initDir makes a data directory holding one log with a few events.
func initDir(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.CreateLog(ctx, "audit", "example.com/trail/audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, storetest.Events(5, 3)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenNotTrail opens directories that hold no Trail database, or one
// this build cannot read, and checks that Open says so and changes nothing.
func TestOpenNotTrail(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
	}{
		{"missing directory", func(t *testing.T, dir string) {}, trail.ErrNotInitialized},
		{"empty directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}, trail.ErrNotInitialized},
		{"a file", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, trail.ErrNotInitialized},
		{"directory with other files", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, trail.ErrNotInitialized},
		{"empty trail.db", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			if err := os.WriteFile(filepath.Join(dir, trail.DatabaseFile), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, sqlite.ErrNotTrail},
		{"trail.db is a directory", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, trail.DatabaseFile), 0o700); err != nil {
				t.Fatal(err)
			}
		}, sqlite.ErrNotTrail},
		{"trail.db is not SQLite", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			if err := os.WriteFile(filepath.Join(dir, trail.DatabaseFile), []byte("id,actor\n1,alice\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, sqlite.ErrNotTrail},
		{"trail.db is another app's SQLite database", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			sqliteFile(t, filepath.Join(dir, trail.DatabaseFile),
				"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
				"INSERT INTO users (name) VALUES ('alice'), ('bob')")
		}, sqlite.ErrNotTrail},
		{"another app's database with a schema version", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			sqliteFile(t, filepath.Join(dir, trail.DatabaseFile),
				"CREATE TABLE logs (id INTEGER PRIMARY KEY, name TEXT)",
				"PRAGMA user_version = 1")
		}, sqlite.ErrNotTrail},
		{"Trail's application id without a schema version", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			sqliteFile(t, filepath.Join(dir, trail.DatabaseFile),
				"CREATE TABLE logs (id INTEGER PRIMARY KEY)",
				"PRAGMA application_id = 1414676812")
		}, sqlite.ErrNotTrail},
		{"newer schema", func(t *testing.T, dir string) {
			initDir(t, dir)
			sqliteFile(t, filepath.Join(dir, trail.DatabaseFile), "PRAGMA user_version = 99")
		}, sqlite.ErrNewerSchema},
	}
	for _, c := range cases {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ReadOnly=%v", c.name, readOnly), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "data")
				c.setup(t, dir)
				before := snapshot(t, dir)
				db, err := trail.Open(context.Background(), dir, trail.Options{ReadOnly: readOnly})
				if err == nil {
					db.Close()
					t.Fatalf("Open(%s) = nil error, want %v", c.name, c.want)
				}
				if !errors.Is(err, c.want) {
					t.Errorf("Open(%s) = %v, want an error wrapping %v", c.name, err, c.want)
				}
				if after := snapshot(t, dir); !maps.Equal(before, after) {
					t.Errorf("Open(%s) changed the directory:\nbefore %v\nafter  %v", c.name, slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
					for k, v := range after {
						if before[k] != v {
							t.Errorf("  %s changed", k)
						}
					}
				}
			})
		}
	}
}

// TestOpenMissingKey removes a log's signing key: the log cannot be
// written any more, and no new key is made in its place, but it can still
// be read and verified.
func TestOpenMissingKey(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	initDir(t, dir)
	key := filepath.Join(dir, "keys", "audit.key")
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}

	db, err := trail.Open(ctx, dir, trail.Options{})
	if err == nil {
		_, err = db.Log(ctx, "audit")
		db.Close()
	}
	if !errors.Is(err, trail.ErrMissingKey) {
		t.Errorf("opening log %q read-write without its key = %v, want an error wrapping ErrMissingKey", "audit", err)
	}
	if _, err := os.Stat(key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after opening, %s: %v; want it still missing", key, err)
	}

	db, err = trail.Open(ctx, dir, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open(read-only) = %v", err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "audit")
	if err != nil {
		t.Fatalf("Log(%q) read-only without its key = %v", "audit", err)
	}
	if rep, err := l.Verify(ctx, trail.VerifyOptions{}); err != nil || rep.Size != 5 {
		t.Errorf("Verify() read-only without the key = %+v, %v; want 5 events verified", rep, err)
	}
}

// A log's origin names it in every checkpoint, and its key: one that a
// signed note cannot carry, or that would show other than it is, or that
// another log of the store has, is refused, saying why.
func TestCreateLogOrigin(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for origin, want := range map[string]string{
		"has space":               "spaces",
		"a+b":                     "'+'",
		"example.com/\u202etrail": "formatting",
		"tab\there":               "spaces",
		strings.Repeat("o", 256):  "255 bytes",
		"example.com/trail/\xff":  "UTF-8",
	} {
		if _, err := db.CreateLog(ctx, "x", origin); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CreateLog with origin %q = %v, want an error saying %q", origin, err, want)
		}
	}
	if _, err := db.CreateLog(ctx, "first", "example.com/trail/audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLog(ctx, "second", "example.com/trail/audit"); err == nil || !strings.Contains(err.Error(), `log "first" has it`) {
		t.Errorf("CreateLog with another log's origin = %v, want it refused naming that log", err)
	}
	if _, err := db.CreateLog(ctx, "second", "例え.jp/trail/audit"); err != nil {
		t.Errorf("CreateLog with a non-ASCII printable origin: %v", err)
	}
}
