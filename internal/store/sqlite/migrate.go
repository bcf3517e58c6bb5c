package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/trail-audit/trail/event"
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
	if ver < 3 {
		if err := upgradeTo3(ctx, s.w, s.logger); err != nil {
			return err
		}
	}
	if ver < 4 {
		if err := upgradeTo4(ctx, s.w, s.logger); err != nil {
			return err
		}
	}
	if ver < 5 {
		err := inTx(ctx, s.w, func(tx *sql.Tx) error {
			for _, q := range []string{tailSchema, "PRAGMA user_version = 5"} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("add the posting tail: %w", err)
		}
	}
	if ver < 6 {
		if err := inTx(ctx, s.w, func(tx *sql.Tx) error { return upgradeTo6(ctx, tx) }); err != nil {
			return fmt.Errorf("count actions up to the index: %w", err)
		}
	}
	return nil
}

// upgradeTo6 takes each log's action counts, which counted every committed
// event, back to the events below indexed_size, which the indexer goes on
// from.
func upgradeTo6(ctx context.Context, tx *sql.Tx) error {
	type lag struct{ log, indexed, size int64 }
	var lags []lag
	rows, err := tx.QueryContext(ctx, "SELECT id, indexed_size, size FROM logs WHERE indexed_size < size")
	if err != nil {
		return err
	}
	for rows.Next() {
		var l lag
		if err := rows.Scan(&l.log, &l.indexed, &l.size); err != nil {
			rows.Close()
			return err
		}
		lags = append(lags, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range lags {
		counts := map[string]int64{}
		var n int64
		err := eventsAround(ctx, tx, l.log, l.indexed, l.size, func(e *event.Event) {
			if e.Seq >= l.indexed && e.Seq < l.size {
				counts[e.Action]++
				n++
			}
		})
		if err != nil {
			return fmt.Errorf("log %d: %w", l.log, err)
		}
		if n != l.size-l.indexed {
			return fmt.Errorf("log %d: expected %d events in [%d, %d), found %d", l.log, l.size-l.indexed, l.indexed, l.size, n)
		}
		for a, n := range counts {
			if _, err := tx.ExecContext(ctx, "UPDATE actions SET count = max(count - ?, 0) WHERE log = ? AND action = ?", n, l.log, a); err != nil {
				return err
			}
		}
	}
	_, err = tx.ExecContext(ctx, "PRAGMA user_version = 6")
	return err
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

// v2Cols are the columns of a version 2 events table, one row per event.
const v2Cols = "k, received_at, time, outcome, actor_id, action, ip, actor_type, actor_email, actor_role, actor_name, targets, reason, user_agent, request_id, trace_id, before, after, metadata"

// upgradeTo3 upgrades a version 2 database to version 3: it rewrites the
// events table's rows as bundles, fills by_action and by_outcome with the
// events each log's indexer had reached, dropping the commit-time action
// and outcome indexes, and starts the rollup watermark at the indexer's. It runs in one transaction, so an
// interrupted upgrade leaves the database as it was, readable by the build
// that wrote it, and is redone from the start.
//
// Rows are copied as they are: a row whose outcome code is not one Trail
// writes is stored as success, and gaps in the seqs stay gaps, so damage
// done before the upgrade is still reported by Verify after it.
func upgradeTo3(ctx context.Context, w *sql.DB, logger *slog.Logger) error {
	start := time.Now()
	logger.InfoContext(ctx, "rewriting events as bundles (schema 3)")
	var n int64
	err := inTx(ctx, w, func(tx *sql.Tx) error {
		for _, q := range []string{
			"DROP TABLE IF EXISTS events_v3",
			"CREATE TABLE events_v3 (k INTEGER PRIMARY KEY, data BLOB NOT NULL)",
			"ALTER TABLE logs ADD COLUMN rolled_size INTEGER NOT NULL DEFAULT 0",
			"UPDATE logs SET rolled_size = indexed_size",
			"CREATE TABLE by_action (seg INTEGER NOT NULL, action TEXT NOT NULL, k INTEGER NOT NULL, PRIMARY KEY (seg, action, k)) WITHOUT ROWID",
			"CREATE TABLE by_outcome (seg INTEGER NOT NULL, outcome INTEGER NOT NULL, k INTEGER NOT NULL, PRIMARY KEY (seg, outcome, k)) WITHOUT ROWID",
			`INSERT INTO by_action (seg, action, k) SELECT e.k >> ` + fmt.Sprint(segBits) + `, e.action, e.k FROM events e JOIN logs l ON l.id = e.k >> ` + fmt.Sprint(seqBits) + `
				WHERE e.k < (l.id << ` + fmt.Sprint(seqBits) + `) + l.indexed_size ORDER BY 1, 2, 3`,
			`INSERT INTO by_outcome (seg, outcome, k) SELECT e.k >> ` + fmt.Sprint(segBits) + `, e.outcome, e.k FROM events e JOIN logs l ON l.id = e.k >> ` + fmt.Sprint(seqBits) + `
				WHERE e.k < (l.id << ` + fmt.Sprint(seqBits) + `) + l.indexed_size AND e.outcome <> 0 ORDER BY 1, 2, 3`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		ins, err := tx.PrepareContext(ctx, "INSERT INTO events_v3 (k, data) VALUES (?, ?)")
		if err != nil {
			return err
		}
		defer ins.Close()
		rows, err := tx.QueryContext(ctx, "SELECT "+v2Cols+" FROM events ORDER BY k")
		if err != nil {
			return err
		}
		defer rows.Close()
		var run []*event.Event
		var runKey int64
		flush := func() error {
			if len(run) == 0 {
				return nil
			}
			first, data := packBundles(run)
			run = run[:0]
			for i := range first {
				if _, err := ins.ExecContext(ctx, runKey&^(1<<seqBits-1)|first[i], data[i]); err != nil {
					return err
				}
			}
			return nil
		}
		for rows.Next() {
			var k, recv, tm, out int64
			var targets, before, after, meta string
			e := &event.Event{}
			if err := rows.Scan(&k, &recv, &tm, &out, &e.Actor.ID, &e.Action, &e.Source.IP, &e.Actor.Type, &e.Actor.Email,
				&e.Actor.Role, &e.Actor.Name, &targets, &e.Reason, &e.Source.UserAgent, &e.RequestID, &e.TraceID, &before, &after, &meta); err != nil {
				return err
			}
			e.Seq = k & (1<<seqBits - 1)
			e.ReceivedAt, e.Time = time.Unix(0, recv), time.Unix(0, tm)
			if out > 0 && out < int64(len(outcomes)) {
				e.Outcome = outcomes[out]
			}
			if e.Targets, err = decodeTargets(targets, nil); err != nil {
				e.Targets = nil // stored as no targets; the leaf no longer matches
			}
			if before != "" || after != "" {
				e.Changes = &event.Changes{Before: rawOrNil(before), After: rawOrNil(after)}
			}
			e.Metadata = rawOrNil(meta)
			// Runs of consecutive seqs of one log go to packBundles, cut
			// at multiples of bundleMax to bound what is held.
			if len(run) > 0 && (k != runKey+int64(len(run)) || e.Seq%bundleMax == 0) {
				if err := flush(); err != nil {
					return err
				}
			}
			if len(run) == 0 {
				runKey = k
			}
			run = append(run, e)
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		for _, q := range []string{
			"DROP TABLE events",
			"ALTER TABLE events_v3 RENAME TO events",
			"PRAGMA user_version = 3",
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rewrite events as bundles: %w", err)
	}
	logger.InfoContext(ctx, "rewrote events as bundles", "events", n, "duration", time.Since(start))
	return nil
}

// postingIndexes are the segment-keyed indexes and their value columns.
var postingIndexes = []struct{ table, cols string }{
	{"by_action", "action"},
	{"by_outcome", "outcome"},
	{"by_actor", "actor_id"},
	{"by_ip", "ip"},
	{"by_target", "type, id"},
}

// upgradeTo4 upgrades a version 3 database to version 4: it rewrites the
// segment-keyed indexes, one row per event, as posting lists, one row per
// value and segment, starts posted_size at indexed_size, and sets how the
// full-text index merges and how big its leaves are (ftsMerge). Entries past
// a log's indexed_size, left by an index chunk cut off half-way, are
// dropped: the indexer adds them again. Like upgradeTo3 it runs in one
// transaction, so an interrupted upgrade leaves a version 3 database.
func upgradeTo4(ctx context.Context, w *sql.DB, logger *slog.Logger) error {
	start := time.Now()
	logger.InfoContext(ctx, "rewriting the indexes as posting lists (schema 4)")
	var entries, rowsOut int64
	err := inTx(ctx, w, func(tx *sql.Tx) error {
		indexed := map[int64]int64{} // log: key of its first unindexed event
		rows, err := tx.QueryContext(ctx, "SELECT id, indexed_size FROM logs")
		if err != nil {
			return err
		}
		for rows.Next() {
			var log, n int64
			if err := rows.Scan(&log, &n); err != nil {
				rows.Close()
				return err
			}
			indexed[log] = eventKey(log, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		qs := []string{
			"ALTER TABLE logs ADD COLUMN posted_size INTEGER NOT NULL DEFAULT 0",
			"UPDATE logs SET posted_size = indexed_size",
		}
		for _, ix := range postingIndexes {
			qs = append(qs, "ALTER TABLE "+ix.table+" RENAME TO "+ix.table+"_v3")
		}
		for _, q := range append(qs, postingTables, ftsMerge) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		for _, ix := range postingIndexes {
			in, out, err := rewritePostings(ctx, tx, ix.table, ix.cols, indexed)
			if err != nil {
				return fmt.Errorf("%s: %w", ix.table, err)
			}
			entries += in
			rowsOut += out
		}
		_, err = tx.ExecContext(ctx, "PRAGMA user_version = 4")
		return err
	})
	if err != nil {
		return fmt.Errorf("rewrite indexes as posting lists: %w", err)
	}
	logger.InfoContext(ctx, "rewrote indexes as posting lists", "entries", entries, "rows", rowsOut, "duration", time.Since(start))
	return nil
}

// rewritePostings fills table from table_v3, then drops the latter, and
// reports how many entries it read and rows it wrote.
func rewritePostings(ctx context.Context, tx *sql.Tx, table, cols string, indexed map[int64]int64) (int64, int64, error) {
	twoCols := strings.Contains(cols, ",")
	values := "?, ?, ?, ?"
	if twoCols {
		values += ", ?"
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO "+table+" (seg, "+cols+", k, ks) VALUES ("+values+")")
	if err != nil {
		return 0, 0, err
	}
	defer ins.Close()
	var in, out int64
	var seg int64
	var es []indexEntry
	flush := func() error {
		for _, p := range postings(es) {
			args := []any{seg, p.a}
			if twoCols {
				args = append(args, p.b)
			}
			if _, err := ins.ExecContext(ctx, append(args, p.k, p.ks)...); err != nil {
				return err
			}
			out++
		}
		es = es[:0]
		return nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT seg, "+cols+", k FROM "+table+"_v3 ORDER BY seg, "+cols+", k")
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var e indexEntry
		var sg int64
		dest := []any{&sg, &e.a}
		if twoCols {
			dest = append(dest, &e.b)
		}
		if err := rows.Scan(append(dest, &e.k)...); err != nil {
			return 0, 0, err
		}
		in++
		if end, ok := indexed[e.k>>seqBits]; !ok || e.k >= end {
			continue // past the watermark, or of no log
		}
		if sg != seg && len(es) > 0 {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
		seg = sg
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	rows.Close()
	_, err = tx.ExecContext(ctx, "DROP TABLE "+table+"_v3")
	return in, out, err
}
