package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// The derived data as stored (store.Derived): what the indexer wrote into
// the posting lists (index tables and tail), the full-text index, the
// rollup table and the actions table, read back for Log.VerifyIndex, and
// dropped for Log.Reindex.

var _ store.Derived = (*Store)(nil)

// The rollup table's dims are store.CountDim's numbers (rollupCounts.add),
// and indexTables' are store.Index's.
var (
	_ [0]struct{} = [dimOutcome - int(store.CountOutcome)]struct{}{}
	_ [0]struct{} = [dimAction - int(store.CountAction)]struct{}{}
	_ [0]struct{} = [dimActor - int(store.CountActor)]struct{}{}
	_ [0]struct{} = [dimFailedIP - int(store.CountFailedIP)]struct{}{}
	_ [0]struct{} = [targetIndex - int(store.IndexTarget)]struct{}{}
	_ [0]struct{} = [ftsIndex - int(store.IndexText)]struct{}{}
)

// postingKey is a value of one of the posting-list indexes.
type postingKey struct {
	ix   store.Index
	a, b string
}

// Postings implements store.Derived. It reads, in one read transaction,
// the rows of the index tables and the tail of each segment the range
// touches, as segmentKeys does for a search, and the full-text index's
// rows for words.
func (s *Store) Postings(ctx context.Context, log, from, to int64, words []string) ([]store.Posting, error) {
	if _, err := s.logName(ctx, log); err != nil {
		return nil, err
	}
	from, to = max(from, 0), min(to, 1<<seqBits)
	if from >= to {
		return nil, nil
	}
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	lo, hi := eventKey(log, from), eventKey(log, to-1)
	got := map[postingKey]*store.Posting{}
	posting := func(p postingKey) *store.Posting {
		pg := got[p]
		if pg == nil {
			pg = &store.Posting{Index: p.ix, Value: p.a, ID: p.b}
			got[p] = pg
		}
		return pg
	}
	var keys []int64
	// add files the keys in [lo, hi] of the posting row (k, ks) under
	// the value; a row that does not decode marks the value damaged.
	add := func(p postingKey, k int64, ks []byte) {
		var err error
		keys, err = appendPosting(keys[:0], k, ks, lo, hi)
		if len(keys) == 0 && err == nil {
			return
		}
		pg := posting(p)
		for _, k := range keys {
			pg.Seqs = append(pg.Seqs, k&(1<<seqBits-1))
		}
		if err != nil {
			pg.Damaged = true
		}
	}
	for seg := segOf(lo); seg <= segOf(hi); seg++ {
		for t, ix := range postingIndexes {
			rows, err := tx.QueryContext(ctx, "SELECT "+ix.cols+", k, ks FROM "+ix.table+" WHERE seg = ?", seg)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", ix.table, err)
			}
			for rows.Next() {
				p := postingKey{ix: store.Index(t)}
				var k int64
				var ks []byte
				dst := []any{&p.a}
				if t == targetIndex {
					dst = append(dst, &p.b)
				}
				if err := rows.Scan(append(dst, &k, &ks)...); err != nil {
					rows.Close()
					return nil, err
				}
				add(p, k, ks)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("read %s: %w", ix.table, err)
			}
		}
		rows, err := tx.QueryContext(ctx, "SELECT t, data FROM posting_tail WHERE seg = ?", seg)
		if err != nil {
			return nil, fmt.Errorf("read posting_tail: %w", err)
		}
		for rows.Next() {
			var t int
			var data []byte
			if err := rows.Scan(&t, &data); err != nil {
				rows.Close()
				return nil, err
			}
			if t < 0 || t >= tailIndexes {
				continue // no search reads it
			}
			err := decodeTail(seg, data, func(a, b []byte, k int64, ks []byte) error {
				add(postingKey{store.Index(t), string(a), string(b)}, k, ks)
				return nil
			})
			if err != nil {
				posting(postingKey{ix: store.Index(t)}).Damaged = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read posting_tail: %w", err)
		}
	}
	for _, w := range words {
		p := postingKey{ix: store.IndexText, a: w}
		rows, err := tx.QueryContext(ctx, "SELECT rowid FROM events_fts WHERE events_fts MATCH ? AND rowid BETWEEN ? AND ?", `"`+strings.ReplaceAll(w, `"`, `""`)+`"`, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("read events_fts: %w", err)
		}
		for rows.Next() {
			var k int64
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			add(p, k, nil)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read events_fts: %w", err)
		}
	}
	out := make([]store.Posting, 0, len(got))
	for _, p := range got {
		if p.Index == store.IndexOutcome && p.Value != "" {
			p.Value = outcomeName(p.Value)
		}
		// A merge writes the tail's rows into the index tables before it
		// deletes the tail: an event may be listed twice meanwhile.
		slices.Sort(p.Seqs)
		p.Seqs = slices.Compact(p.Seqs)
		out = append(out, *p)
	}
	return out, nil
}

// outcomeName is the outcome that the outcome index's value (its code)
// stands for; a code no outcome has is returned as "code N".
func outcomeName(code string) string {
	n, err := strconv.Atoi(code)
	if err != nil || n <= 0 || n >= len(outcomes) {
		return "code " + code
	}
	return string(outcomes[n])
}

// Words implements store.Derived through an fts5vocab table over the
// full-text index, on a connection of its own: it lists every (word,
// event key) pair the index holds, in order of word, for every log, and
// the log's pairs are picked out by key.
func (s *Store) Words(ctx context.Context, log, to int64, fn func(word string, seq int64) error) error {
	if _, err := s.logName(ctx, log); err != nil {
		return err
	}
	to = min(to, 1<<seqBits)
	// The vocabulary table lives in the connection's temporary schema,
	// which the query-only readers may not write.
	db, err := sql.Open(DriverName, readerDSN(s.path))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{
		"PRAGMA query_only = 0",
		"CREATE VIRTUAL TABLE temp.trail_words USING fts5vocab(main, 'events_fts', 'instance')",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("read the free-text index's words: %w", err)
		}
	}
	rows, err := conn.QueryContext(ctx, "SELECT term, doc FROM temp.trail_words WHERE doc >= ? AND doc < ?", eventKey(log, 0), eventKey(log, 0)+to)
	if err != nil {
		return fmt.Errorf("read the free-text index's words: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var word string
		var k int64
		if err := rows.Scan(&word, &k); err != nil {
			return err
		}
		if err := fn(word, k&(1<<seqBits-1)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the free-text index's words: %w", err)
	}
	return nil
}

// Counts implements store.Derived: the rollup table's rows, hourly
// (dims below byDay) and daily, and the actions table's, with the
// watermarks they go to, in one read transaction. Rows of a dim no query
// reads are left out.
func (s *Store) Counts(ctx context.Context, log int64, fn func(store.CountRow) error) (store.CountsTo, error) {
	var to store.CountsTo
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return to, err
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, "SELECT indexed_size, rolled_size FROM logs WHERE id = ?", log).Scan(&to.Indexed, &to.Rolled)
	if errors.Is(err, sql.ErrNoRows) {
		return to, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return to, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT dim, hour, value, n_total, n_failure, n_denied, n_error FROM rollup WHERE log = ?", log)
	if err != nil {
		return to, fmt.Errorf("read rollup: %w", err)
	}
	for rows.Next() {
		var r store.CountRow
		var dim int
		if err := rows.Scan(&dim, &r.Hour, &r.Value, &r.Total, &r.Failure, &r.Denied, &r.Error); err != nil {
			rows.Close()
			return to, err
		}
		switch {
		case dim >= dimOutcome && dim <= dimFailedIP:
			r.Dim, r.Span = store.CountDim(dim), store.SpanHour
		case dim > byDay+dimOutcome && dim <= byDay+dimFailedIP:
			r.Dim, r.Span = store.CountDim(dim-byDay), store.SpanDay
		default:
			continue
		}
		if err := fn(r); err != nil {
			rows.Close()
			return to, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return to, fmt.Errorf("read rollup: %w", err)
	}
	rows, err = tx.QueryContext(ctx, "SELECT action, count FROM actions WHERE log = ?", log)
	if err != nil {
		return to, fmt.Errorf("read actions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := store.CountRow{CountKey: store.CountKey{Dim: store.CountAction, Span: store.SpanAll}}
		if err := rows.Scan(&r.Value, &r.Total); err != nil {
			return to, err
		}
		if err := fn(r); err != nil {
			return to, err
		}
	}
	if err := rows.Err(); err != nil {
		return to, fmt.Errorf("read actions: %w", err)
	}
	return to, nil
}

// ResetIndex implements store.Derived. In one transaction it deletes the
// log's rows of the index tables, tail and rollup table, zeroes its action
// counts (keeping the rows, which searches resolve action filters with and
// commits add only for new actions) and its watermarks. The full-text
// index is shared by every log and, being contentless, keeps no copy of
// the text: one event's entries can only be deleted by giving FTS5 the
// very words it holds, which a damaged index may not. It is emptied
// instead, and the other logs' indexed events are written into it again
// from their events.
func (s *Store) ResetIndex(ctx context.Context, log int64) error {
	if s.w == nil {
		return ErrReadOnly
	}
	if _, err := s.logName(ctx, log); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.syncFull(ctx); err != nil {
		return err
	}
	first, end := segOf(eventKey(log, 0)), segOf(eventKey(log+1, 0))
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		var qs []string
		for _, ix := range postingIndexes {
			qs = append(qs, "DELETE FROM "+ix.table+" WHERE seg >= ?1 AND seg < ?2")
		}
		qs = append(qs,
			"DELETE FROM posting_tail WHERE seg >= ?1 AND seg < ?2",
			"DELETE FROM rollup WHERE log = ?3",
			"UPDATE actions SET count = 0 WHERE log = ?3",
			"UPDATE logs SET indexed_size = 0, posted_size = 0, rolled_size = 0 WHERE id = ?3",
			"INSERT INTO events_fts (events_fts) VALUES ('delete-all')",
		)
		for _, q := range qs {
			if _, err := tx.ExecContext(ctx, q, first, end, log); err != nil {
				return fmt.Errorf("reset index: %w", err)
			}
		}
		return s.rewriteText(ctx, tx, log)
	})
	if err != nil {
		return err
	}
	delete(s.ix.pending, log)
	s.ix.reset(log)
	s.ix.wake()
	return nil
}

// rewriteText writes the full-text entries of the indexed events of every
// log but skip again, in tx, from their events, a segment at a time.
func (s *Store) rewriteText(ctx context.Context, tx *sql.Tx, skip int64) error {
	type logSize struct{ id, indexed int64 }
	var logs []logSize
	rows, err := tx.QueryContext(ctx, "SELECT id, indexed_size FROM logs WHERE id <> ? AND indexed_size > 0 ORDER BY id", skip)
	if err != nil {
		return err
	}
	for rows.Next() {
		var l logSize
		if err := rows.Scan(&l.id, &l.indexed); err != nil {
			rows.Close()
			return err
		}
		logs = append(logs, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range logs {
		for from := int64(0); from < l.indexed; from += 1 << segBits {
			to := min(l.indexed, from+1<<segBits)
			var docs []indexDoc
			err := eventsAround(ctx, tx, l.id, from, to, func(e *event.Event) {
				if e.Seq >= from && e.Seq < to {
					docs = append(docs, indexDoc{eventKey(l.id, e.Seq), derive.Text(e)})
				}
			})
			if err != nil {
				return fmt.Errorf("log %d: read events [%d, %d): %w", l.id, from, to, err)
			}
			if n := int64(len(docs)); n != to-from {
				return fmt.Errorf("log %d: expected %d events in [%d, %d), found %d", l.id, to-from, from, to, n)
			}
			if err := writeText(ctx, tx, docs); err != nil {
				return err
			}
		}
	}
	return nil
}
