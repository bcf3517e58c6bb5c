package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/trail-audit/trail/internal/store/schema"
)

// Schema versions. A database's version is its PRAGMA user_version: the
// number of the last migration applied to it. The migrations are the files
// migrations/NNNN_name.sql, embedded in the binary and numbered from 1
// without gaps; each runs in one transaction with the user_version it
// sets, so a database is always at one of them. Create applies them all
// to a new file; Open applies those a database lacks (not read-only,
// ErrNeedsUpgrade) and refuses one whose version is higher than the last
// this build knows (ErrNewerSchema), before it writes anything.
//
// A migration is never edited once released: a change to the schema is a
// new file, with a test in migrate_test.go.
//
//	1. The first layout (0001_init.sql).
//	2. Cosigned checkpoints, store.Witnessed (0002_witnessed.sql).
//	3. Idempotency records by creation time (0003_idempotency_created_at.sql).

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered step of the schema.
type migration = schema.Migration

// migrations are the embedded migrations, in order.
var migrations = schema.MustLoad(migrationFiles, "migrations")

// schemaVersion is the version a database has once every migration this
// build knows is applied.
var schemaVersion = migrations[len(migrations)-1].Version

// readableFrom is the oldest schema a read-only store reads as it is:
// the migrations after it add only indexes, which make reads faster but
// change none of their queries. Verifying a backup, or copying from one,
// thus writes nothing to it. A migration that adds or changes something
// reads use raises it to its own number.
const readableFrom = 2

// migrate brings the database behind db up to the last of ms: it applies
// each migration the database lacks, in order, in a transaction of its own
// that also sets user_version to its number. Each transaction reads the
// version first, so a migration another process applied meanwhile is
// skipped. A migration that fails is rolled back, and the database stays
// at the version before it; a database past the last of ms is refused with
// ErrNewerSchema and left as it is.
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	last := ms[len(ms)-1].Version
	for _, m := range ms {
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			var ver int64
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&ver); err != nil {
				return err
			}
			if ver > last {
				return fmt.Errorf("%w (database has schema %d, this build knows up to %d; upgrade trail)", ErrNewerSchema, ver, last)
			}
			if ver >= m.Version {
				return nil
			}
			if ver != m.Version-1 {
				return fmt.Errorf("database has schema %d, migration %s needs %d", ver, m.Name, m.Version-1)
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.Version))
			return err
		})
		if errors.Is(err, ErrNewerSchema) {
			return err
		}
		if err != nil {
			return fmt.Errorf("schema migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// inTx runs f in a transaction on db and commits it if f returns nil.
func inTx(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}
