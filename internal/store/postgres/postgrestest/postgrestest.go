// Package postgrestest reaches the raw storage of Trail's PostgreSQL store
// for tests: Tamperer implements storetest.Tamperer over a database, as
// someone who can write it would change it. Production code never imports
// it; the tamper and damage tests of every package reach the PostgreSQL
// backend through it (see package backends).
//
// Each change is one transaction that first locks the log's row FOR NO
// KEY UPDATE, as Commit does, so it waits for a running store's commit to
// that log rather than interleave with it.
package postgrestest

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trail-audit/trail/internal/store/storetest"
)

// Tamperer is the raw database of a PostgreSQL store.
type Tamperer struct {
	pool *pgxpool.Pool
}

var _ storetest.Tamperer = (*Tamperer)(nil)

// Open connects to the database at url (a postgres:// URL), which must
// hold a Trail store, for tampering. A store may have it open meanwhile.
func Open(ctx context.Context, url string) (*Tamperer, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	var logs bool
	err = pool.QueryRow(ctx, "SELECT to_regclass('logs') IS NOT NULL AND to_regclass('event_fields') IS NOT NULL").Scan(&logs)
	if err == nil && !logs {
		err = errors.New("the database holds no Trail store (no logs or event_fields table); create the store first")
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgrestest: %w", err)
	}
	return &Tamperer{pool: pool}, nil
}

// Close implements storetest.Tamperer.
func (tp *Tamperer) Close() error {
	tp.pool.Close()
	return nil
}

// tx is a write transaction of the Tamperer's.
type tx struct {
	pgx.Tx
	ctx context.Context
}

func (t tx) exec(query string, args ...any) (int64, error) {
	tag, err := t.Exec(t.ctx, query, args...)
	return tag.RowsAffected(), err
}

// change runs a statement that must change a row.
func (t tx) change(what, query string, args ...any) error {
	n, err := t.exec(query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: nothing stored to change", what)
	}
	return nil
}

// write runs fn in a transaction that first locks the row of the log
// named log, and commits if fn returns nil; fn gets the log's id.
func (tp *Tamperer) write(ctx context.Context, log string, fn func(t tx, id int64) error) error {
	return pgx.BeginFunc(ctx, tp.pool, func(ptx pgx.Tx) error {
		var id int64
		err := ptx.QueryRow(ctx, "SELECT id FROM logs WHERE name = $1 FOR NO KEY UPDATE", log).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("no log %q", log)
		}
		if err != nil {
			return err
		}
		return fn(tx{ptx, ctx}, id)
	})
}

// LockWrites implements storetest.Tamperer: a transaction of its own
// holds the logs table in EXCLUSIVE mode, which every commit's FOR NO KEY
// UPDATE of its logs' rows (ROW SHARE) and Writable wait for, while reads
// go on.
func (tp *Tamperer) LockWrites(ctx context.Context) (func() error, error) {
	t, err := tp.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := t.Exec(ctx, "LOCK TABLE logs IN EXCLUSIVE MODE"); err != nil {
		t.Rollback(context.Background())
		return nil, err
	}
	return func() error { return t.Rollback(context.Background()) }, nil
}

// FailIndexing implements storetest.Tamperer. The PostgreSQL store has no
// indexer apart from its commits, which write the indexes with the
// events: there is no index write to refuse that would leave commits
// succeeding. It returns an error wrapping errors.ErrUnsupported.
func (tp *Tamperer) FailIndexing(ctx context.Context) (func() error, error) {
	return nil, fmt.Errorf("postgrestest: the PostgreSQL store indexes events in the commit that stores them, so index writes cannot fail apart from commits: %w", errors.ErrUnsupported)
}
