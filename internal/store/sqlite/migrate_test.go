package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// schemaDump describes the schema of the database behind db: its
// application id and version, every entry of sqlite_schema with its SQL,
// and the full-text index's settings.
func schemaDump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"application_id", "user_version"} {
		var v int64
		if err := db.QueryRow("PRAGMA " + p).Scan(&v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "PRAGMA %s = %d\n", p, v)
	}
	rows, err := db.Query("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name, tbl, q string
		if err := rows.Scan(&typ, &name, &tbl, &q); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n-- %s %s on %s\n%s\n", typ, name, tbl, q)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	cfg, err := db.Query("SELECT k, v FROM events_fts_config ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	b.WriteString("\n-- events_fts_config\n")
	for cfg.Next() {
		var k, v string
		if err := cfg.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	if err := cfg.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkGolden compares got with the file testdata/name, or rewrites the
// file with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("schema differs from %s (go test -update rewrites it):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only want has (-) and only got has (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if g[l] > 0 {
			g[l]--
			continue
		}
		out = append(out, "- "+l)
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] > 0 {
			w[l]--
			continue
		}
		out = append(out, "+ "+l)
	}
	return strings.Join(out, "\n")
}

// emptyFile makes an empty file, opens it with no Trail code in between
// and marks it as Trail's, as Create does.
func emptyFile(t *testing.T) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trail.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(DriverName, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	exec(t, db, fmt.Sprintf("PRAGMA application_id = %d", applicationID))
	return path, db
}

// goldenName is the golden file of the schema at version v.
func goldenName(v int64) string { return fmt.Sprintf("schema/%04d.golden", v) }

// TestMigration0001 applies migration 1 to an empty file and checks that
// the result is schema version 1 as recorded in testdata, and that the
// store opens it and uses every table: it commits events, indexes them,
// and searches, counts and reads back the indexes.
func TestMigration0001(t *testing.T) {
	ctx := context.Background()
	path, db := emptyFile(t)
	if err := migrate(ctx, db, migrations[:1]); err != nil {
		t.Fatalf("migrate to 0001: %v", err)
	}
	if v := userVersion(t, db); v != 1 {
		t.Fatalf("user_version after migration 0001 = %d, want 1", v)
	}
	checkGolden(t, goldenName(1), schemaDump(t, db))
	db.Close()
	if schemaVersion > 1 {
		return // the store expects the last version (TestMigrationsInOrder)
	}

	s := open(t, path, Options{Logger: testLogger(t), IndexChunk: 300})
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.RollupEvents(1000, 3)
	w.Append(t, s, t0, evs[:600]...)
	w.Append(t, s, t0, evs[600:]...)
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	storetest.CheckLog(t, s, w)
	for _, q := range []store.Query{
		{Actions: []string{"user.login"}},
		{Outcome: event.Failure},
		{Actor: "alice"},
		{IP: "10.0.0.1"},
		{TargetType: "document", TargetID: "doc-3"},
		{Text: "audit"},
	} {
		q.To = -1
		storetest.CheckSearch(t, s, w, q, false)
	}
	for _, q := range storetest.RollupQueries() {
		if r := storetest.CheckRollup(t, s, w, q); r.IndexedTo != w.Size() {
			t.Errorf("Rollup.IndexedTo = %d, want %d", r.IndexedTo, w.Size())
		}
	}
	acts, err := s.Actions(ctx, w.Info.ID)
	if err != nil || len(acts) == 0 {
		t.Errorf("Actions = %v, %v; want the actions used", acts, err)
	}
	ps, err := s.Postings(ctx, w.Info.ID, 0, w.Size(), []string{"audit"})
	if err != nil || len(ps) == 0 {
		t.Errorf("Postings = %d postings, %v; want the index's", len(ps), err)
	}
	st, err := s.IndexStatus(ctx)
	if err != nil || st.Lag[w.Info.ID] != 0 {
		t.Errorf("IndexStatus = %+v, %v; want no lag", st, err)
	}
}

// TestMigrationsInOrder checks every embedded migration: they are
// numbered from 1 without gaps; applied in order to an empty file, each
// sets user_version to its number; a database at any version, migrated
// from there, ends with the same schema as one migrated from empty, which
// is the one recorded in testdata for the last version and the one Create
// makes.
func TestMigrationsInOrder(t *testing.T) {
	ctx := context.Background()
	for i, m := range migrations {
		if m.Version != int64(i+1) {
			t.Fatalf("migration %s is number %d, want %d", m.Name, m.Version, i+1)
		}
	}
	if schemaVersion != int64(len(migrations)) {
		t.Fatalf("schemaVersion = %d, want %d, the last migration", schemaVersion, len(migrations))
	}
	_, db := emptyFile(t)
	if err := migrate(ctx, db, migrations); err != nil {
		t.Fatal(err)
	}
	want := schemaDump(t, db)
	checkGolden(t, goldenName(schemaVersion), want)

	for k := 1; k <= len(migrations); k++ {
		_, db := emptyFile(t)
		if err := migrate(ctx, db, migrations[:k]); err != nil {
			t.Fatalf("migrate to %s: %v", migrations[k-1].Name, err)
		}
		if v := userVersion(t, db); v != int64(k) {
			t.Errorf("user_version after %s = %d, want %d", migrations[k-1].Name, v, k)
		}
		if err := migrate(ctx, db, migrations); err != nil {
			t.Fatalf("migrate from version %d: %v", k, err)
		}
		if got := schemaDump(t, db); got != want {
			t.Errorf("schema migrated from version %d differs from a new one's:\n%s", k, lineDiff(want, got))
		}
	}

	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{})
	if got := schemaDump(t, s.r); got != want {
		t.Errorf("Create's schema differs from the migrations':\n%s", lineDiff(want, got))
	}
}

// TestMigrateEachInATransaction applies a migration past the embedded ones
// that fails half-way, then one that works: the first leaves nothing
// behind and the version where it was, the second moves it on.
func TestMigrateEachInATransaction(t *testing.T) {
	ctx := context.Background()
	_, db := emptyFile(t)
	if err := migrate(ctx, db, migrations); err != nil {
		t.Fatal(err)
	}
	next := schemaVersion + 1
	name := fmt.Sprintf("%04d_test.sql", next)
	bad := append(migrations[:len(migrations):len(migrations)], migration{
		Version: next, Name: name,
		SQL: "CREATE TABLE test_first (a INTEGER); INSERT INTO no_such_table VALUES (1);",
	})
	err := migrate(ctx, db, bad)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("a failing migration = %v, want an error naming %s", err, name)
	}
	if v := userVersion(t, db); v != schemaVersion {
		t.Errorf("user_version after a failed migration = %d, want %d", v, schemaVersion)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'test_first'").Scan(&n); err != nil || n != 0 {
		t.Errorf("a failed migration left its first statement's table (%d, %v)", n, err)
	}

	good := append(migrations[:len(migrations):len(migrations)], migration{
		Version: next, Name: name, SQL: "CREATE TABLE test_first (a INTEGER);",
	})
	if err := migrate(ctx, db, good); err != nil {
		t.Fatal(err)
	}
	if v := userVersion(t, db); v != next {
		t.Errorf("user_version after migration %s = %d, want %d", name, v, next)
	}
	// Applied already: nothing to do.
	if err := migrate(ctx, db, good); err != nil {
		t.Errorf("migrate again = %v, want nil", err)
	}
}

// TestNewerSchemaRefused gives a database a version past the last this
// build knows, and checks that opening it, read-write or read-only, and
// migrating it fail with ErrNewerSchema naming both versions, and leave
// its files exactly as they were. A database in rollback-journal mode is
// refused from its header, one in WAL mode once open.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	newer := schemaVersion + 1
	for _, journal := range []string{"WAL", "DELETE"} {
		t.Run(journal, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "trail.db")
			s := create(t, path, Options{})
			storetest.NewWriter(t, s, "audit").Append(t, s, t0, storetest.Events(50, 1)...)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path)
			exec(t, db, "PRAGMA journal_mode = "+journal, fmt.Sprintf("PRAGMA user_version = %d", newer))
			db.Close()
			files := func() map[string][]byte {
				t.Helper()
				out := map[string][]byte{}
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					data, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					out[e.Name()] = data
				}
				return out
			}
			before := files()
			unchanged := func(what string) {
				t.Helper()
				after := files()
				for name, data := range after {
					if b, ok := before[name]; !ok || !bytes.Equal(b, data) {
						t.Errorf("%s changed %s", what, name)
					}
				}
				for name := range before {
					if _, ok := after[name]; !ok {
						t.Errorf("%s removed %s", what, name)
					}
				}
			}
			wantMsg := []string{fmt.Sprintf("schema %d", newer), fmt.Sprintf("up to %d", schemaVersion)}
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrNewerSchema) {
					t.Errorf("%s = %v, want ErrNewerSchema", what, err)
				} else {
					for _, m := range wantMsg {
						if !strings.Contains(err.Error(), m) {
							t.Errorf("%s = %q, want it to say %q", what, err, m)
						}
					}
				}
				unchanged(what)
			}
			for _, ro := range []bool{false, true} {
				s, err := Open(ctx, path, Options{ReadOnly: ro})
				if err == nil {
					s.Close()
				}
				check(fmt.Sprintf("Open(ReadOnly: %v)", ro), err)
			}
			// migrate refuses it too, whoever calls it.
			raw, err := sql.Open(DriverName, "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			raw.SetMaxOpenConns(1)
			err = migrate(ctx, raw, migrations)
			raw.Close()
			check("migrate", err)
		})
	}
}
