package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
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

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered step of the schema.
type migration struct {
	version int64
	name    string // its file name
	sql     string
}

// migrations are the embedded migrations, in order.
var migrations = mustLoadMigrations(migrationFiles, "migrations")

// schemaVersion is the version a database has once every migration this
// build knows is applied.
var schemaVersion = migrations[len(migrations)-1].version

// mustLoadMigrations reads the migrations in dir of fsys. They are part
// of the binary, so one that is misnamed or missing is a bug of the build:
// it panics.
func mustLoadMigrations(fsys fs.FS, dir string) []migration {
	ms, err := loadMigrations(fsys, dir)
	if err != nil {
		panic(err)
	}
	return ms
}

// loadMigrations reads the files dir/NNNN_name.sql of fsys, which must be
// numbered 1, 2, … without gaps.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || len(num) != 4 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: want a name NNNN_name.sql", name)
		}
		if want := int64(len(ms) + 1); v != want {
			return nil, fmt.Errorf("migration %s: numbered %d, want %d", name, v, want)
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(data)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}

// migrate brings the database behind db up to the last of ms: it applies
// each migration the database lacks, in order, in a transaction of its own
// that also sets user_version to its number. Each transaction reads the
// version first, so a migration another process applied meanwhile is
// skipped. A migration that fails is rolled back, and the database stays
// at the version before it; a database past the last of ms is refused with
// ErrNewerSchema and left as it is.
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	last := ms[len(ms)-1].version
	for _, m := range ms {
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			var ver int64
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&ver); err != nil {
				return err
			}
			if ver > last {
				return fmt.Errorf("%w (database has schema %d, this build knows up to %d; upgrade trail)", ErrNewerSchema, ver, last)
			}
			if ver >= m.version {
				return nil
			}
			if ver != m.version-1 {
				return fmt.Errorf("database has schema %d, migration %s needs %d", ver, m.name, m.version-1)
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version))
			return err
		})
		if errors.Is(err, ErrNewerSchema) {
			return err
		}
		if err != nil {
			return fmt.Errorf("schema migration %s: %w", m.name, err)
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
