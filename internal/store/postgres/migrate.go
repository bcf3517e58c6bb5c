package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/trail-audit/trail/internal/store/schema"
)

// Schema versions. A database's version is the highest in its
// schema_version table, which has a row per migration applied. The
// migrations are the files migrations/NNNN_name.sql, embedded in the
// binary and numbered from 1 without gaps. Each is applied in a
// transaction of its own, which adds its row, and which first takes a
// transaction-level advisory lock (migrationLock): nodes that start at
// once apply each migration once, one after the other, and a node that
// waited finds it applied and skips it.
//
// A migration is never edited once released: a change to the schema is a
// new file, with a test.
//
//	1. The first layout: logs, events in bundles of 16, tiles, checkpoints,
//	   keys and idempotency records (0001_init.sql).
//	2. Sealed secrets: signing keys and the session secret (0002_secrets.sql).
//	3. Search indexes (event_fields, event_targets, bundle_text) and counts,
//	   written in the commit (0003_indexes.sql).
//	4. Cosigned checkpoints, store.Witnessed (0004_witnessed.sql).

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the key of the advisory lock migrations take: "trail
// schema" in ASCII, shared by every Trail process on the database.
const migrationLock int64 = 0x747261696c736368

// migration is one numbered step of the schema.
type migration = schema.Migration

// migrations are the embedded migrations, in order.
var migrations = schema.MustLoad(migrationFiles, "migrations")

// createVersionTable creates the schema_version table if it is missing.
// Version 0, an empty database, has it empty.
const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
	version    bigint PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// version reads the database's schema version: 0 if it has none.
func version(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_version') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int64
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func newerError(db, last int64) error {
	return fmt.Errorf("%w (database has schema %d, this build knows up to %d; upgrade trail)", ErrNewerSchema, db, last)
}

// checkVersion fails unless the database is at the last of ms.
func checkVersion(ctx context.Context, pool *pgxpool.Pool, ms []migration) error {
	v, err := version(ctx, pool)
	if err != nil {
		return err
	}
	last := ms[len(ms)-1].Version
	switch {
	case v == 0:
		return fmt.Errorf("%w (this build's is schema %d)", ErrNoSchema, last)
	case v > last:
		return newerError(v, last)
	case v < last:
		return fmt.Errorf("%w (database has schema %d, this build has %d)", ErrNeedsUpgrade, v, last)
	}
	return nil
}

// checkEmpty fails unless the schema Trail's tables would go in (the
// first of the search path) holds no table but schema_version: Trail is
// given a database, or a schema, of its own, and never mixes its tables
// with an application's.
func checkEmpty(ctx context.Context, q pgx.Tx) error {
	var schema string
	var names []string
	err := q.QueryRow(ctx, `SELECT current_schema(), coalesce(array_agg(relname ORDER BY relname) FILTER (WHERE relname IS NOT NULL), '{}')
		FROM (SELECT c.relname FROM pg_class c
			WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			AND c.relname <> 'schema_version' ORDER BY c.relname LIMIT 6) t`).Scan(&schema, &names)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	shown := strings.Join(names[:min(len(names), 5)], ", ")
	if len(names) > 5 {
		shown += ", …"
	}
	return fmt.Errorf("the database's schema %q holds tables that are not Trail's (%s): give Trail a database of its own (CREATE DATABASE trail), or a schema of its own (CREATE SCHEMA trail, and search_path=trail in the URL's query)", schema, shown)
}

// migrate brings the database up to the last of ms, one migration per
// transaction under the advisory lock. A migration that fails is rolled
// back, and the database stays at the version before it; a database past
// the last of ms is refused with ErrNewerSchema and left as it is.
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration, log *slog.Logger) error {
	last := ms[len(ms)-1].Version
	for _, m := range ms {
		applied := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			// Waiting for another node's migration, and building an
			// index of a large table, may take longer than an answer
			// usually does.
			defer unbounded(tx.Conn().PgConn())()
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, createVersionTable); err != nil {
				return err
			}
			ver, err := version(ctx, tx)
			if err != nil {
				return err
			}
			if ver > last {
				return newerError(ver, last)
			}
			if ver >= m.Version {
				return nil
			}
			if ver != m.Version-1 {
				return fmt.Errorf("database has schema %d, migration %s needs %d", ver, m.Name, m.Version-1)
			}
			if ver == 0 {
				if err := checkEmpty(ctx, tx); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.Version, m.Name)
			applied = err == nil
			return err
		})
		if errors.Is(err, ErrNewerSchema) {
			return err
		}
		if err != nil {
			return fmt.Errorf("schema migration %s: %w", m.Name, err)
		}
		if applied {
			log.InfoContext(ctx, "applied schema migration", "migration", m.Name, "version", m.Version)
		}
	}
	return nil
}
