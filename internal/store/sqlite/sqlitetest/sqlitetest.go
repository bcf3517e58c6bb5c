// Package sqlitetest reaches the raw storage of Trail's SQLite store for
// tests: Tamperer implements storetest.Tamperer over a database file, as
// someone who can write the file would change it. Production code never
// imports it; the tamper and damage tests of every package reach the
// SQLite backend through it (see package backends).
package sqlitetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// Tamperer is the raw database file of a SQLite store.
type Tamperer struct {
	db *sql.DB
}

var _ storetest.Tamperer = (*Tamperer)(nil)

// Open opens the SQLite database at path, which must exist, for
// tampering. It may be open in a running store meanwhile.
func Open(path string) (*Tamperer, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open(sqlite.DriverName, "file:"+path)
	if err != nil {
		return nil, err
	}
	return &Tamperer{db: db}, nil
}

// Close implements storetest.Tamperer.
func (tp *Tamperer) Close() error { return tp.db.Close() }

// conn is one connection in a write transaction.
type conn struct {
	*sql.Conn
	ctx context.Context
}

func (c conn) exec(query string, args ...any) (sql.Result, error) {
	return c.ExecContext(c.ctx, query, args...)
}

// change runs a statement that must change a row.
func (c conn) change(what, query string, args ...any) error {
	res, err := c.exec(query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: nothing stored to change", what)
	}
	return nil
}

func (c conn) queryRow(query string, args ...any) *sql.Row {
	return c.QueryRowContext(c.ctx, query, args...)
}

// write runs fn in a write transaction (BEGIN IMMEDIATE), waiting up to
// ten seconds for a running store to let go of the write lock, and
// commits if fn returns nil. log, if not "", is looked up by name and
// passed to fn by id.
func (tp *Tamperer) write(ctx context.Context, log string, fn func(c conn, id int64) error) (err error) {
	c, err := tp.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range []string{"PRAGMA busy_timeout = 10000", "BEGIN IMMEDIATE"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	defer func() {
		end := "COMMIT"
		if err != nil {
			end = "ROLLBACK"
		}
		if _, e := c.ExecContext(ctx, end); err == nil {
			err = e
		}
	}()
	cc := conn{c, ctx}
	var id int64
	if log != "" {
		err := cc.queryRow("SELECT id FROM logs WHERE name = ?", log).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no log %q", log)
		}
		if err != nil {
			return err
		}
	}
	return fn(cc, id)
}

// LockWrites implements storetest.Tamperer: it holds an exclusive
// transaction open on a connection of its own.
func (tp *Tamperer) LockWrites(ctx context.Context) (func() error, error) {
	c, err := tp.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		c.Close()
		return nil, err
	}
	return func() error {
		_, err := c.ExecContext(context.Background(), "ROLLBACK")
		return errors.Join(err, c.Close())
	}, nil
}

// FailIndexing implements storetest.Tamperer: a trigger refuses to move
// any log's posted_size, which only the indexer writes.
func (tp *Tamperer) FailIndexing(ctx context.Context) (func() error, error) {
	err := tp.write(ctx, "", func(c conn, _ int64) error {
		_, err := c.exec(`CREATE TRIGGER tamper_refuse_index BEFORE UPDATE OF posted_size ON logs
			BEGIN SELECT RAISE(ABORT, '` + storetest.IndexingRefused + `'); END`)
		return err
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		return tp.write(context.Background(), "", func(c conn, _ int64) error {
			_, err := c.exec("DROP TRIGGER tamper_refuse_index")
			return err
		})
	}, nil
}
