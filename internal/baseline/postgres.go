package baseline

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trail-audit/trail/event"
)

// The PostgreSQL baseline is what an app on PostgreSQL does without
// Trail: one plain table of audit rows, a few columns to filter on and
// the whole event as jsonb, with three btree indexes (actor, target,
// action), written through pgx with synchronous_commit on, so that every
// commit waits for its WAL to be flushed as Trail's do.

const pgSchema = `
CREATE TABLE audit (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time timestamptz NOT NULL,
	actor_id text NOT NULL,
	action text NOT NULL,
	target_type text NOT NULL,
	target_id text NOT NULL,
	ip text NOT NULL,
	outcome text NOT NULL,
	event jsonb NOT NULL);
CREATE INDEX audit_actor ON audit (actor_id);
CREATE INDEX audit_target ON audit (target_type, target_id);
CREATE INDEX audit_action ON audit (action);
`

// pgColumns are the columns an insert fills, in the order of pgRow.
var pgColumns = []string{"time", "actor_id", "action", "target_type", "target_id", "ip", "outcome", "event"}

// PGTable is the plain table in a PostgreSQL database.
type PGTable struct {
	// Pool is the table's connection pool, each connection with
	// synchronous_commit on.
	Pool *pgxpool.Pool
}

// CreatePostgres makes the table in the database that url names, which
// must not hold one yet, and returns it with a pool of up to maxConns
// connections (pgx's default when maxConns is 0).
func CreatePostgres(ctx context.Context, url string, maxConns int32) (*PGTable, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("baseline: PostgreSQL URL: %w", err)
	}
	// The server's default may be off; the baseline commits durably.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("baseline: connect to PostgreSQL: %w", err)
	}
	if _, err := pool.Exec(ctx, pgSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("baseline: create the audit table: %w", err)
	}
	return &PGTable{Pool: pool}, nil
}

// Close closes the pool.
func (t *PGTable) Close() { t.Pool.Close() }

// pgRow returns the column values of e, in the order of pgColumns.
func pgRow(e *event.Event) ([]any, error) {
	js, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("baseline: encode event: %w", err)
	}
	var tt, tid string
	if len(e.Targets) > 0 {
		tt, tid = e.Targets[0].Type, e.Targets[0].ID
	}
	return []any{e.Time, e.Actor.ID, e.Action, tt, tid, e.Source.IP, string(e.Outcome), string(js)}, nil
}

// Insert adds e as a row in a transaction of its own.
func (t *PGTable) Insert(ctx context.Context, e *event.Event) error {
	row, err := pgRow(e)
	if err != nil {
		return err
	}
	_, err = t.Pool.Exec(ctx, "INSERT INTO audit (time, actor_id, action, target_type, target_id, ip, outcome, event) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)", row...)
	return err
}

// InsertBatch adds evs as rows in one transaction, with one INSERT of
// every row (the columns passed as arrays and unnested).
func (t *PGTable) InsertBatch(ctx context.Context, evs []event.Event) error {
	n := len(evs)
	var (
		times                                        = make([]time.Time, 0, n)
		actors, actions, ttypes, tids, ips, outcomes = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		docs                                         = make([]string, 0, n)
	)
	for i := range evs {
		row, err := pgRow(&evs[i])
		if err != nil {
			return err
		}
		times = append(times, row[0].(time.Time))
		actors = append(actors, row[1].(string))
		actions = append(actions, row[2].(string))
		ttypes = append(ttypes, row[3].(string))
		tids = append(tids, row[4].(string))
		ips = append(ips, row[5].(string))
		outcomes = append(outcomes, row[6].(string))
		docs = append(docs, row[7].(string))
	}
	_, err := t.Pool.Exec(ctx, `INSERT INTO audit (time, actor_id, action, target_type, target_id, ip, outcome, event)
		SELECT t, a, ac, tt, ti, ip, o, d::jsonb
		FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u(t, a, ac, tt, ti, ip, o, d)`,
		times, actors, actions, ttypes, tids, ips, outcomes, docs)
	return err
}

// Copy adds evs as rows in one transaction with COPY.
func (t *PGTable) Copy(ctx context.Context, evs []event.Event) error {
	rows := make([][]any, 0, len(evs))
	for i := range evs {
		row, err := pgRow(&evs[i])
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	n, err := t.Pool.CopyFrom(ctx, pgx.Identifier{"audit"}, pgColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return err
	}
	if n != int64(len(evs)) {
		return fmt.Errorf("baseline: COPY stored %d rows of %d", n, len(evs))
	}
	return nil
}
