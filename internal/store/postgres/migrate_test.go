package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

func schemaVersion(t *testing.T, url string) int64 {
	t.Helper()
	conn := raw(t, url)
	v, err := version(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMigrateConcurrently opens one empty database from several Stores at
// once: the advisory lock lets one apply each migration and the others
// find it applied.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.DB(t)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := Open(context.Background(), url, Options{Migrate: true, Logger: testLogger(t)})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open(migrate) %d of %d at once = %v", i, n, err)
		}
	}
	last := migrations[len(migrations)-1].Version
	if got := schemaVersion(t, url); got != last {
		t.Errorf("schema version after concurrent Opens = %d, want %d", got, last)
	}
	var rows int
	if err := raw(t, url).QueryRow(context.Background(), "SELECT count(*) FROM schema_version").Scan(&rows); err != nil || rows != len(migrations) {
		t.Errorf("schema_version holds %d rows, %v; want one per migration, %d", rows, err, len(migrations))
	}
	// And the schema works.
	s := open(t, url)
	if _, err := s.CreateLog(context.Background(), "a", "o", "k"); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateSteps applies a made-up series of migrations one version at a
// time: each applies only what the database lacks, a failing one leaves
// the version before it, and a database newer than the build is refused
// by Open, migrating or not, naming both versions, and left as it is.
func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url) // the real schema, version len(migrations)
	last := migrations[len(migrations)-1].Version
	extra := func(sqls ...string) []migration {
		ms := append([]migration(nil), migrations...)
		for i, q := range sqls {
			v := last + int64(i) + 1
			ms = append(ms, migration{Version: v, Name: fmt.Sprintf("%04d_test.sql", v), SQL: q})
		}
		return ms
	}
	// A failing migration is rolled back whole.
	err := migrate(ctx, s.pool, extra("CREATE TABLE t1 (x int); SELECT no_such_function()"), testLogger(t))
	if err == nil || schemaVersion(t, url) != last {
		t.Fatalf("migrate(failing migration) = %v, version %d; want an error, version %d", err, schemaVersion(t, url), last)
	}
	var t1 bool
	if err := raw(t, url).QueryRow(ctx, "SELECT to_regclass('t1') IS NOT NULL").Scan(&t1); err != nil || t1 {
		t.Errorf("table of the failed migration exists = %v, %v; want false", t1, err)
	}
	// Two more migrations, applied once each.
	ms := extra("CREATE TABLE t1 (x int)", "INSERT INTO t1 VALUES (1)")
	for range 2 {
		if err := migrate(ctx, s.pool, ms, testLogger(t)); err != nil {
			t.Fatalf("migrate(+2) = %v", err)
		}
	}
	var rows int
	if err := raw(t, url).QueryRow(ctx, "SELECT count(*) FROM t1").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("t1 holds %d rows, %v; want 1 (each migration applied once)", rows, err)
	}
	if got := schemaVersion(t, url); got != last+2 {
		t.Fatalf("schema version = %d, want %d", got, last+2)
	}

	// This build knows up to last: the database is newer.
	for _, migrate := range []bool{false, true} {
		s2, err := Open(ctx, url, Options{Migrate: migrate})
		if err == nil {
			s2.Close()
		}
		want := fmt.Sprintf("database has schema %d, this build knows up to %d", last+2, last)
		if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(Migrate: %v) of a newer database = %v, want ErrNewerSchema saying %q", migrate, err, want)
		}
	}
	if got := schemaVersion(t, url); got != last+2 {
		t.Errorf("schema version after the refused Opens = %d, want %d", got, last+2)
	}
}

// TestOpenNeedsUpgrade: without Migrate, an empty database is refused
// with ErrNoSchema, and one that lacks migrations with ErrNeedsUpgrade,
// both left as they are.
func TestOpenNeedsUpgrade(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s, err := Open(ctx, url, Options{})
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, ErrNoSchema) || errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("Open(empty database, no Migrate) = %v, want ErrNoSchema", err)
	}
	if got := schemaVersion(t, url); got != 0 {
		t.Errorf("schema version after the refused Open = %d, want 0", got)
	}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	err = migrate(ctx, pool, migrations[:1], slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		t.Fatalf("migrate to schema 1: %v", err)
	}
	s, err = Open(ctx, url, Options{})
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("Open(database at schema 1, no Migrate) = %v, want ErrNeedsUpgrade", err)
	}
	if got := schemaVersion(t, url); got != 1 {
		t.Errorf("schema version after the refused Open = %d, want 1", got)
	}

	s = open(t, url)
	if v, err := s.SchemaVersion(ctx); err != nil || v != LatestSchema() {
		t.Errorf("SchemaVersion after migrating = %d, %v; want %d", v, err, LatestSchema())
	}
	s, err = Open(ctx, url, Options{})
	if err != nil {
		t.Fatalf("Open(migrated database, no Migrate) = %v", err)
	}
	s.Close()
}

// TestCompression: on PostgreSQL 14 and newer the event bundles and the
// words are compressed with lz4; on 13 the migrations still apply, with
// pglz.
func TestCompression(t *testing.T) {
	url := pgtest.DB(t)
	open(t, url)
	conn := raw(t, url)
	ctx := context.Background()
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 140000 {
		t.Skipf("PostgreSQL %d has no per-column compression", version)
	}
	for _, col := range []struct{ table, column string }{{"event_bundles", "data"}, {"bundle_text", "words"}} {
		var method string
		err := conn.QueryRow(ctx, "SELECT attcompression::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
			col.table, col.column).Scan(&method)
		if err != nil {
			t.Fatal(err)
		}
		if method != "l" {
			t.Errorf("%s.%s compression = %q, want lz4 (l)", col.table, col.column, method)
		}
	}
}

// TestMigrateEventFields: migration 7 makes event_fields again without
// its receipt times, keeping every row and the indexes searches use.
func TestMigrateEventFields(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool, migrations[:6], slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate to schema 6: %v", err)
	}
	type row struct {
		log, seq                                         int64
		action, outcome, actor, ip, targetType, targetID string
	}
	rows := []row{
		{1, 0, "user.login", "success", "alice", "10.0.0.1", "user", "alice"},
		{1, 1, "user.login", "failure", "bob", "", "", ""},
		{2, 0, "doc.read", "denied", "zoë", "2001:db8::1", "doc", "d1"},
	}
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO event_fields (log, seq, received_at, action, outcome, actor, ip, target_type, target_id)
			VALUES ($1, $2, 42, $3, $4, $5, $6, $7, $8)`, r.log, r.seq, r.action, r.outcome, r.actor, r.ip, r.targetType, r.targetID); err != nil {
			t.Fatal(err)
		}
	}
	open(t, url) // migrates
	got, err := pool.Query(ctx, "SELECT log, seq, action, outcome, actor, ip, target_type, target_id FROM event_fields ORDER BY log, seq")
	if err != nil {
		t.Fatal(err)
	}
	var after []row
	var r row
	if _, err := pgx.ForEachRow(got, []any{&r.log, &r.seq, &r.action, &r.outcome, &r.actor, &r.ip, &r.targetType, &r.targetID}, func() error {
		after = append(after, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after, rows) {
		t.Errorf("event_fields after migration 7 = %v, want %v", after, rows)
	}
	var columns, dropped int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE attname = 'received_at'), count(*) FILTER (WHERE attisdropped)
		FROM pg_attribute WHERE attrelid = 'event_fields'::regclass`).Scan(&columns, &dropped); err != nil {
		t.Fatal(err)
	}
	if columns != 0 || dropped != 0 {
		t.Errorf("event_fields has %d received_at columns and %d dropped ones, want none", columns, dropped)
	}
	var indexes []string
	got, err = pool.Query(ctx, "SELECT indexname FROM pg_indexes WHERE tablename = 'event_fields' ORDER BY indexname")
	if err != nil {
		t.Fatal(err)
	}
	if indexes, err = pgx.CollectRows(got, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := []string{"event_fields_action", "event_fields_actor", "event_fields_ip", "event_fields_outcome", "event_fields_seq", "event_fields_target"}
	if !slices.Equal(indexes, want) {
		t.Errorf("indexes of event_fields = %v, want %v", indexes, want)
	}
}

// TestMigrateRefusesOthersTables: a database whose schema holds an
// application's tables is not given Trail's, and is left as it was; a
// schema of Trail's own in it (search_path in the URL) is.
func TestMigrateRefusesOthersTables(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	conn := raw(t, url)
	if _, err := conn.Exec(ctx, "CREATE TABLE customers (id int); CREATE SCHEMA trail"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, url, Options{Migrate: true, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), `holds tables that are not Trail's (customers)`) {
		t.Fatalf("Open(migrate) of a database holding customers = %v, want it refused naming the table", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil || n != 1 {
		t.Errorf("public holds %d tables after the refusal (%v), want customers alone", n, err)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := Open(ctx, url+sep+"search_path=trail", Options{Migrate: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(migrate) into a schema of its own: %v", err)
	}
	s.Close()
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'trail' AND tablename = 'logs'").Scan(&n); err != nil || n != 1 {
		t.Errorf("schema trail holds %d logs tables (%v), want Trail's there", n, err)
	}
}
