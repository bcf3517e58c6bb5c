package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/trail-audit/trail/internal/event"
)

// migrate upgrades the database from schema version ver to schemaVersion.
// Open calls it on the write connection before the indexer starts. Each
// step commits in transactions of bounded size and can be interrupted: the
// next Open resumes it.
func (s *Store) migrate(ctx context.Context, ver int64) error {
	if ver < 2 {
		if err := upgradeTo2(ctx, s.w, s.logger, backfillBatch, nil); err != nil {
			return err
		}
	}
	return nil
}

// backfillBatch is how many events one transaction of the rollup backfill
// counts.
const backfillBatch = 1 << 16

// upgradeTo2 upgrades a version 1 database to version 2: it creates the
// rollup table and counts the events each log's indexer had reached
// (indexed_size) into it, batch events per transaction, calling afterBatch
// (if not nil) after each. The indexer counts the rest as it goes on.
//
// The progress is kept in the table rollup_backfill, created with the
// rollup table and dropped when user_version becomes 2. A version 1 build
// may open the database between an interrupted upgrade and its resumption,
// and index more events or create logs: the resumed upgrade counts up to
// each log's indexed_size as it finds it.
func upgradeTo2(ctx context.Context, w *sql.DB, logger *slog.Logger, batch int64, afterBatch func() error) error {
	err := inTx(ctx, w, func(tx *sql.Tx) error {
		var started int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'rollup_backfill'").Scan(&started); err != nil {
			return err
		}
		if started == 0 {
			for _, q := range []string{
				"DROP TABLE IF EXISTS rollup",
				rollupSchema,
				"CREATE TABLE rollup_backfill (log INTEGER PRIMARY KEY, done INTEGER NOT NULL)",
			} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO rollup_backfill (log, done) SELECT id, 0 FROM logs")
		return err
	})
	if err != nil {
		return fmt.Errorf("create rollup table: %w", err)
	}

	type progress struct{ log, done, indexed int64 }
	var logs []progress
	rows, err := w.QueryContext(ctx, "SELECT b.log, b.done, l.indexed_size FROM rollup_backfill b JOIN logs l ON l.id = b.log ORDER BY b.log")
	if err != nil {
		return err
	}
	for rows.Next() {
		var p progress
		if err := rows.Scan(&p.log, &p.done, &p.indexed); err != nil {
			rows.Close()
			return err
		}
		logs = append(logs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	for _, p := range logs {
		if p.done >= p.indexed {
			continue
		}
		start := time.Now()
		logger.InfoContext(ctx, "counting indexed events into the rollup table", "log", p.log, "from", p.done, "to", p.indexed)
		for done := p.done; done < p.indexed; {
			end := min(done+batch, p.indexed)
			err := inTx(ctx, w, func(tx *sql.Tx) error {
				counts, err := countEvents(ctx, tx, p.log, done, end)
				if err != nil {
					return err
				}
				many, err := tx.PrepareContext(ctx, addRollup(rowsPerRollup))
				if err != nil {
					return err
				}
				defer many.Close()
				one, err := tx.PrepareContext(ctx, addRollup(1))
				if err != nil {
					return err
				}
				defer one.Close()
				if err := addCounts(ctx, many, one, p.log, counts.rows()); err != nil {
					return err
				}
				_, err = tx.ExecContext(ctx, "UPDATE rollup_backfill SET done = ? WHERE log = ?", end, p.log)
				return err
			})
			if err != nil {
				return fmt.Errorf("log %d: count events [%d, %d): %w", p.log, done, end, err)
			}
			done = end
			if afterBatch != nil {
				if err := afterBatch(); err != nil {
					return err
				}
			}
		}
		logger.InfoContext(ctx, "counted indexed events into the rollup table", "log", p.log, "events", p.indexed-p.done, "duration", time.Since(start))
	}

	return inTx(ctx, w, func(tx *sql.Tx) error {
		for _, q := range []string{"DROP TABLE rollup_backfill", "PRAGMA user_version = 2"} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// countEvents gathers the rollup counts of events [from, to) of log.
func countEvents(ctx context.Context, tx *sql.Tx, log, from, to int64) (rollupCounts, error) {
	rows, err := tx.QueryContext(ctx, "SELECT k, time, outcome, actor_id, action, ip FROM events WHERE k >= ? AND k < ?", eventKey(log, from), eventKey(log, to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := rollupCounts{}
	n := int64(0)
	for rows.Next() {
		var k, tm, out int64
		var e event.Event
		if err := rows.Scan(&k, &tm, &out, &e.Actor.ID, &e.Action, &e.Source.IP); err != nil {
			return nil, err
		}
		if out < 0 || out >= int64(len(outcomes)) {
			return nil, fmt.Errorf("seq %d: bad outcome code %d", k&(1<<seqBits-1), out)
		}
		e.Time, e.Outcome = time.Unix(0, tm).UTC(), outcomes[out]
		counts.add(&e)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n != to-from {
		return nil, fmt.Errorf("expected %d events, found %d", to-from, n)
	}
	return counts, nil
}

// inTx runs f in a transaction on w and commits it if f returns nil.
func inTx(ctx context.Context, w *sql.DB, f func(*sql.Tx) error) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}
